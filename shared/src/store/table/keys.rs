//! Key formats, key attributes and index names of the single table.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::domain::{CustomerId, Role, UserId};

/// A DynamoDB item or key.
pub type Item = HashMap<String, AttributeValue>;

/// Partition key attribute.
pub const PK: &str = "PK";
/// Sort key attribute.
pub const SK: &str = "SK";
/// Attribute naming an item's kind (`customer`, `entry`, `tally`, ...).
pub const TYPE: &str = "type";
/// Sort key of the members-by-rank local index.
pub const LSI1SK: &str = "LSI1SK";
/// Partition key of the deletions index.
pub const GSI1PK: &str = "GSI1PK";
/// Sort key of the deletions index.
pub const GSI1SK: &str = "GSI1SK";

/// Local index listing a customer's record first, then its members by rank and join time.
pub const MEMBERS_INDEX: &str = "LSI1";
/// Global index of the customers being deleted (name, partition key attribute).
pub const DELETING_INDEX: (&str, &str) = ("GSI1", GSI1PK);
/// `LSI1SK` of a customer record: sorts before every member.
pub(super) const CUSTOMER_RANK_SORT: &str = "#";

/// GSI1 partition of the customers being deleted: no listing reads it, and it
/// has no counter; the record's final delete takes the customer out of it.
pub const DELETING_PARTITION: &str = "DELETING";
/// `GSI1SK` of a deleting customer: its `deletingSince` (RFC 3339 with
/// milliseconds, fixed width) then its id, so the oldest deletion sorts first.
pub fn deleting_sort(since: &str, id: &CustomerId) -> String {
    format!("{since}#{id}")
}
/// Projection of a deletion backlog query: when each deletion began.
pub const DELETING_SINCE: &str = "deletingSince";

/// Partition of the counters of the listing indexes the listings replaced.
pub const LEGACY_COUNTERS: &str = "COUNTER";

/// `SK` prefix of member items.
pub const MEMBER_PREFIX: &str = "MEMBER#";

/// Key of the lookup from a Stripe customer (`cus_...`) to its customer.
pub fn stripe_customer_key(stripe_id: &str) -> Item {
    key(format!("STRIPE#{stripe_id}"), "CUSTOMER")
}

/// The key of the item recording that an event was applied.
pub fn applied_event_key(source: &str, event_id: &str) -> Item {
    key(format!("EVENT#{source}#{event_id}"), "EVENT")
}

/// The table's time-to-live attribute (epoch seconds): items past it are
/// removed by DynamoDB within days.
pub const TTL_ATTRIBUTE: &str = "expiresAt";

/// A string attribute value.
pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute value.
pub fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The key of an item.
pub fn key(pk: String, sk: &str) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

/// Key of a customer record.
pub fn customer_key(id: &CustomerId) -> Item {
    key(customer_pk(id), CUSTOMER_SK)
}

/// What a customer's partition key starts with.
pub const CUSTOMER_PREFIX: &str = "CUSTOMER#";

/// Partition of a customer: its record and its member items.
pub fn customer_pk(id: &CustomerId) -> String {
    format!("{CUSTOMER_PREFIX}{id}")
}

/// Key of a member item within its customer's partition.
pub fn member_key(customer: &CustomerId, user: &UserId) -> Item {
    key(customer_pk(customer), &format!("{MEMBER_PREFIX}{user}"))
}

/// The group of a member in its customer's members directory: its rank.
pub fn member_group(role: Role) -> String {
    format!("{}#", role.rank())
}

/// Key of a user's membership item: the table key that makes a user belong to one customer.
pub fn membership_key(user: &UserId) -> Item {
    key(user_pk(user), MEMBERSHIP_SK)
}

pub(super) fn user_pk(user: &UserId) -> String {
    format!("USER#{user}")
}

pub(super) const MEMBERSHIP_SK: &str = "MEMBERSHIP";

/// Key of an API key item. Every key lives in one partition, so that listing
/// the keys is one Query: there are few, and each request reads one.
pub fn api_key_key(key_id: &str) -> Item {
    key(API_KEY_PK.to_owned(), &format!("{API_KEY_PREFIX}{key_id}"))
}

/// Key of the item marking the table reindexed: every active customer has its
/// listing entries (see `Store::mark_reindexed`). Every function whose writes
/// allow for a customer without entries reads its customer's partition
/// (`CUSTOMER#*` under `dynamodb:LeadingKeys`), so the marker has a partition
/// of that form, which no customer id (a UUID) takes; nothing but a GetItem
/// of this key reads it (the scans select customers, audit entries and counts
/// by `type`).
pub fn reindexed_key() -> Item {
    key(format!("CUSTOMER#{REINDEXED}"), REINDEXED)
}

/// Partition suffix and sort key of the reindex marker.
const REINDEXED: &str = "REINDEXED";

/// Partition of the API keys.
pub const API_KEY_PK: &str = "APIKEY";
/// `SK` prefix of API key items.
pub const API_KEY_PREFIX: &str = "APIKEY#";

/// Sort key of a customer record (and of a Stripe customer's lookup).
pub(super) const CUSTOMER_SK: &str = "CUSTOMER";
