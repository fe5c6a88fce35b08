//! Condition, update and key-condition expressions, and the attribute names
//! they use.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::domain::Customer;

use super::keys::{PK, SK, TTL_ATTRIBUTE, TYPE, s};

/// Expression attribute names used by the expressions below.
pub fn names() -> HashMap<String, String> {
    [
        ("#pk", PK),
        ("#sk", SK),
        ("#state", "state"),
        ("#count", "count"),
        ("#members", "memberCount"),
        ("#role", "role"),
        ("#customer", "customerID"),
        ("#revoked", "revokedAt"),
        ("#type", TYPE),
        ("#name", "name"),
        ("#tier", "tierName"),
        ("#status", "subscriptionStatus"),
        ("#version", "billingVersion"),
        ("#platformVersion", "platformVersion"),
        ("#tierSource", "tierSource"),
        ("#expires", TTL_ATTRIBUTE),
        ("#seq", "seq"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Condition: the item does not exist yet.
pub const NOT_EXISTS: &str = "attribute_not_exists(#pk)";
/// Condition: the customer exists and is active.
pub const CUSTOMER_ACTIVE: &str = "attribute_exists(#pk) AND #state = :active";
/// Condition: the customer exists and is being deleted.
pub const CUSTOMER_DELETING: &str = "attribute_exists(#pk) AND #state = :deleting";
/// Condition: the member exists with role `:role`.
pub const MEMBER_IS: &str = "attribute_exists(#pk) AND #role = :role";
/// Condition: the membership item exists.
pub const EXISTS: &str = "attribute_exists(#pk)";
/// Condition: the user's membership points at `:customer`.
pub const MEMBERSHIP_OF: &str = "#customer = :customer";
/// Update: change `memberCount` by `:delta`.
pub const ADD_MEMBERS: &str = "ADD #members :delta";
/// Update: mark a customer deleting and put it into GSI1's `DELETING`
/// partition, sorted by when the deletion began (`:deletingpk` =
/// [`DELETING_PARTITION`], `:deletingsk` = [`deleting_sort`]).
pub const MARK_DELETING: &str = "SET #state = :deleting, deletingSince = :now, \
     GSI1PK = :deletingpk, GSI1SK = :deletingsk";

/// Update (with [`CUSTOMER_ACTIVE`]): what re-projecting an active customer
/// does to its record: drops the keys of the listing indexes the listings
/// replaced.
pub const REPROJECT: &str = "SET #state = :active REMOVE GSI1PK, GSI2PK, GSI3PK, GSI4PK, GSI1SK";

/// Update: revoke an API key.
pub const REVOKE: &str = "SET #revoked = :now";
/// Filter: a customer record (with `:customer` = [`super::CUSTOMER_KIND`]).
pub const IS_CUSTOMER: &str = "#type = :customer";
/// Key condition: one partition.
pub const IN_PARTITION: &str = "#pk = :pk";
/// Key condition: one partition, sort keys with a prefix.
pub const IN_PARTITION_WITH_PREFIX: &str = "#pk = :pk AND begins_with(#sk, :prefix)";
/// Key condition: one partition, sort keys from `:from` to `:to`.
pub const IN_PARTITION_BETWEEN: &str = "#pk = :pk AND #sk BETWEEN :from AND :to";
/// Key condition: one partition, sort keys (attribute `#sort`) at or after `:from`.
pub const SORTED_AT_OR_AFTER: &str = "#pk = :pk AND #sort >= :from";
/// Key condition: one partition, sort keys (attribute `#sort`) after `:from`.
pub const SORTED_AFTER: &str = "#pk = :pk AND #sort > :from";
/// Key condition: one partition, sort keys after `:after`.
pub const IN_PARTITION_AFTER: &str = "#pk = :pk AND #sk > :after";

/// Condition on a customer record about to be replaced: still active and as
/// it was read (what its entries and counts were written from).
pub const CUSTOMER_AS_READ: &str = "attribute_exists(#pk) AND #state = :active \
     AND #members = :members AND #name = :name AND #tier = :tier AND #status = :status";
/// Condition (beside [`CUSTOMER_AS_READ`]) on a customer record about to be
/// replaced: its platform revision and tier owner are as read from `c`, so a
/// platform event or a tier write committed since the read cancels the
/// replacement (which then reads again and decides again). With the read
/// revision below a platform event's `version`, the event's change commits
/// only over a revision below its own. Returns the expression and its values.
pub fn provenance_as_read(c: &Customer) -> (String, Vec<(&'static str, AttributeValue)>) {
    let mut values = Vec::new();
    let version = match c.platform_version {
        Some(v) => {
            values.push((":readPlatformVersion", AttributeValue::N(v.to_string())));
            "#platformVersion = :readPlatformVersion"
        }
        None => "attribute_not_exists(#platformVersion)",
    };
    let source = match c.tier_source {
        Some(source) => {
            values.push((":readTierSource", s(source.as_str())));
            "#tierSource = :readTierSource"
        }
        None => "attribute_not_exists(#tierSource)",
    };
    (format!("{version} AND {source}"), values)
}

/// Condition on the lookup of a Stripe customer: free, or this customer's.
pub const STRIPE_FREE_OR_OF: &str = "attribute_not_exists(#pk) OR #customer = :customer";

/// Update: change a listing entry's `memberCount` by `:delta`.
pub const ADD_ENTRY_MEMBERS: &str = "ADD #members :delta";

/// Update: a membership's role (`:role`) and join time (`:joined`).
pub const SET_MEMBERSHIP_ROLE: &str = "SET #role = :role, joinedAt = :joined";
#[cfg(test)]
mod tests {
    use super::super::s;
    use super::*;
    use crate::domain::{Customer, TierSource};

    #[test]
    fn a_replacement_is_conditioned_on_the_revision_and_tier_owner_read() {
        // GIVEN a record as read, first without a revision or tier owner
        let mut c = Customer::sample();
        // THEN the condition is that neither has appeared since
        let (expr, values) = provenance_as_read(&c);
        assert_eq!(
            expr,
            "attribute_not_exists(#platformVersion) AND attribute_not_exists(#tierSource)"
        );
        assert!(values.is_empty());
        // AND with both read, that both are still as read
        c.platform_version = Some(7);
        c.tier_source = Some(TierSource::Stripe);
        let (expr, values) = provenance_as_read(&c);
        assert_eq!(
            expr,
            "#platformVersion = :readPlatformVersion AND #tierSource = :readTierSource"
        );
        assert_eq!(
            values,
            vec![
                (":readPlatformVersion", AttributeValue::N("7".into())),
                (":readTierSource", s("stripe")),
            ]
        );
        // AND every name the expressions use is defined
        for name in ["#platformVersion", "#tierSource", "#expires"] {
            assert!(names().contains_key(name), "{name}");
        }
    }
}
