//! Tombstones: the ids of deleted customers and users, remembered for
//! [`TOMBSTONE_DAYS`] so that a late platform event cannot bring them back.
//!
//! | item | PK | SK | attributes |
//! |---|---|---|---|
//! | customer tombstone | `TOMBSTONE#CUSTOMER#<id>` | `TOMBSTONE` | `deletedAt`, `expiresAt` |
//! | user tombstone | `TOMBSTONE#USER#<userID>` | `TOMBSTONE` | `deletedAt`, `expiresAt` |
//!
//! A customer's is put in the transaction that deletes its record (the end of
//! the deletion cascade); a user's by `user.deleted` before anything of theirs
//! is removed. A creation from a platform event checks both ([`NOT_TOMBSTONED`]
//! in a `ConditionCheck` of its own transaction).

use crate::domain::{CustomerId, Timestamp, UserId, time};

use super::{Item, TTL_ATTRIBUTE, key, n, s};

/// How long a deleted id is remembered: as long as an applied event's id
/// (30 days, longer than EventBridge and Stripe retry), so an event that could
/// still arrive finds its customer's or owner's tombstone. DynamoDB removes an
/// item some time after its `expiresAt`, never before.
pub const TOMBSTONE_DAYS: i64 = 30;

/// `SK` of every tombstone.
const TOMBSTONE_SK: &str = "TOMBSTONE";
/// `type` of every tombstone.
const TOMBSTONE_TYPE: &str = "tombstone";
/// When the id was deleted (RFC 3339, seconds).
const DELETED_AT: &str = "deletedAt";

/// Key of a deleted customer's tombstone.
pub fn customer_tombstone_key(id: &CustomerId) -> Item {
    key(format!("TOMBSTONE#CUSTOMER#{id}"), TOMBSTONE_SK)
}

/// Key of a deleted user's tombstone.
pub fn user_tombstone_key(id: &UserId) -> Item {
    key(format!("TOMBSTONE#USER#{id}"), TOMBSTONE_SK)
}

/// The tombstone at `key` (one of the keys above) of an id deleted at `at`,
/// kept [`TOMBSTONE_DAYS`] (the table's time to live).
pub fn tombstone_item(key: Item, at: &Timestamp) -> Item {
    let mut item = key;
    item.insert("type".to_owned(), s(TOMBSTONE_TYPE));
    item.insert(DELETED_AT.to_owned(), s(time::to_seconds(at)));
    item.insert(
        TTL_ATTRIBUTE.to_owned(),
        n(at.timestamp() + TOMBSTONE_DAYS * 86_400),
    );
    item
}

/// When a tombstone's id was deleted, as stored (`None`: not a tombstone).
pub fn tombstone_deleted_at(item: &Item) -> Option<&str> {
    item.get(DELETED_AT)?.as_s().ok().map(String::as_str)
}

/// Condition on putting a tombstone (values [`tombstone_values`]): its key
/// holds nothing or a tombstone, which a new one replaces (a redelivered
/// `user.deleted`, or an id deleted again after its tombstone lapsed).
pub const TOMBSTONE_FREE_OR_KEPT: &str = "attribute_not_exists(#pk) OR #type = :tombstone";

/// Condition of a creation's `ConditionCheck` on a tombstone's key (values
/// [`tombstone_values`]): no tombstone, or one past its `expiresAt` that
/// DynamoDB has not removed yet.
pub const NOT_TOMBSTONED: &str = "attribute_not_exists(#pk) OR #expires < :now";

/// The values of [`TOMBSTONE_FREE_OR_KEPT`] and [`NOT_TOMBSTONED`] at `now`.
pub fn tombstone_values(
    now: &Timestamp,
) -> [(&'static str, aws_sdk_dynamodb::types::AttributeValue); 2] {
    [
        (":tombstone", s(TOMBSTONE_TYPE)),
        (":now", n(now.timestamp())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tombstone_outlives_the_event_memory_and_names_its_kind() {
        // GIVEN a customer and a user deleted now
        let at = crate::domain::now();
        let (customer, user) = (CustomerId::random(), UserId::random());
        // WHEN their tombstones are made
        let c = tombstone_item(customer_tombstone_key(&customer), &at);
        let u = tombstone_item(user_tombstone_key(&user), &at);
        // THEN each lives in a partition of its own kind, never a customer's or a user's
        assert_eq!(
            c["PK"].as_s().unwrap(),
            &format!("TOMBSTONE#CUSTOMER#{customer}")
        );
        assert_eq!(u["PK"].as_s().unwrap(), &format!("TOMBSTONE#USER#{user}"));
        // AND expires no sooner than 30 days after the deletion
        let expires: i64 = c[TTL_ATTRIBUTE].as_n().unwrap().parse().unwrap();
        assert!(expires - at.timestamp() >= 30 * 86_400);
        assert_eq!(
            tombstone_deleted_at(&u),
            Some(time::to_seconds(&at).as_str())
        );
    }
}
