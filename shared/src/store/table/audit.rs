//! Audit entries: a partition per customer, outside the customer's own
//! partition, so the trail outlives the customer for its retention.
//!
//! Each entry is numbered: the customer's *sequence* item holds the number of
//! its newest entry, and the transaction that puts an entry (number n) also
//! moves the sequence from n - 1 to n on that condition. Numbers are therefore
//! dense, in commit order, and an entry's sort key is its number
//! (`SEQ#<n, 16 digits>`): the total is the newest number less the oldest
//! kept, and page *k* is a key range. Entries written before numbering have
//! sort keys `<at>#<id>` (they start with a digit): they sort below the
//! numbered ones, which are all newer, and below `SEQ` ([`LEGACY_TO`]); the
//! sequence item's sort key (`#SEQ`) sorts below every entry ([`ENTRIES_FROM`]).

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::items::{Header, parse_time};
use super::{Item, key, s};
use crate::domain::audit::{Action, Actor, AuditEntry, Changes, Origin};
use crate::domain::{CustomerId, Role, UserId, time};

/// How long an entry is kept: DynamoDB's time to live removes it after this.
pub const AUDIT_RETENTION_DAYS: i64 = 400;

/// Partition of a customer's audit entries, newest last by sort key.
pub fn audit_pk(customer: &CustomerId) -> String {
    format!("AUDIT#{customer}")
}

/// Sort key of the customer's audit sequence item.
const SEQUENCE_SK: &str = "#SEQ";
/// Prefix of a numbered entry's sort key.
const NUMBERED: &str = "SEQ#";
/// Every entry's sort key is at or above this; the sequence item's is below.
pub const ENTRIES_FROM: &str = "0";
/// Entries written before numbering sort below this, numbered ones above.
pub const LEGACY_TO: &str = "SEQ";
/// Condition: the sequence is still at `:seq` (written with the entries it numbers).
pub const SEQUENCE_IS: &str = "#seq = :seq";
/// `type` of the sequence item.
const SEQUENCE_KIND: &str = "auditSequence";

/// Sort key of entry number `n` (from 1).
pub fn audit_sort(n: u64) -> String {
    format!("{NUMBERED}{n:016}")
}

/// Key of a customer's audit sequence item.
pub fn audit_sequence_key(customer: &CustomerId) -> Item {
    key(audit_pk(customer), SEQUENCE_SK)
}

/// A customer's audit sequence item at `n`, the number of its newest entry.
/// It has no time to live: a few bytes per customer ever audited, kept so
/// that numbers never repeat.
pub fn audit_sequence_item(customer: &CustomerId, n: u64) -> Item {
    let mut item = audit_sequence_key(customer);
    item.insert("type".to_owned(), s(SEQUENCE_KIND));
    item.insert("seq".to_owned(), AttributeValue::N(n.to_string()));
    item
}

/// The number a sequence item holds; 0 without one.
pub fn audit_sequence_of(item: Option<&Item>) -> Option<u64> {
    match item {
        None => Some(0),
        Some(item) => item.get("seq")?.as_n().ok()?.parse().ok(),
    }
}

/// The number of the entry with sort key `sk`; `None` for an entry written
/// before numbering.
pub fn audit_number(sk: &str) -> Option<u64> {
    sk.strip_prefix(NUMBERED)?.parse().ok()
}

/// Stored shape of an audit entry.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditItem {
    #[serde(flatten)]
    header: Header,
    id: Uuid,
    action: Action,
    at: String,
    actor: Actor,
    #[serde(rename = "requestID", default, skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(rename = "customerID")]
    customer_id: CustomerId,
    #[serde(rename = "userID", default, skip_serializing_if = "Option::is_none")]
    user_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    #[serde(default)]
    changes: Changes,
    expires_at: i64,
}

/// `type` of an audit item.
const KIND: &str = "audit";

impl AuditItem {
    /// The stored shape of `entry` as number `n` of its customer's trail,
    /// expiring [`AUDIT_RETENTION_DAYS`] after it.
    pub fn new(entry: &AuditEntry, n: u64) -> Self {
        let at = time::to_millis(&entry.at);
        Self {
            header: Header::new(audit_pk(&entry.customer_id), audit_sort(n), KIND),
            id: entry.id,
            action: entry.action,
            at,
            actor: entry.origin.actor.clone(),
            request_id: entry.origin.request_id.clone(),
            customer_id: entry.customer_id,
            user_id: entry.user_id,
            role: entry.role,
            changes: entry.changes.clone(),
            expires_at: entry.at.timestamp() + AUDIT_RETENTION_DAYS * 86_400,
        }
    }

    /// Whether a stored item (or stream image) is an audit entry.
    pub fn is_one(item: &Item) -> bool {
        item.get("type")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            == Some(KIND)
    }

    /// The sort key: a page's cursor continues after it.
    pub fn sort_key(&self) -> &str {
        self.header.sk()
    }

    /// The domain value.
    pub fn into_entry(self) -> Result<AuditEntry, chrono::ParseError> {
        Ok(AuditEntry {
            id: self.id,
            action: self.action,
            at: parse_time(&self.at)?,
            origin: Origin {
                actor: self.actor,
                request_id: self.request_id,
            },
            customer_id: self.customer_id,
            user_id: self.user_id,
            role: self.role,
            changes: self.changes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::TTL_ATTRIBUTE;
    use super::*;
    use crate::domain::audit::Action;

    #[test]
    fn an_entry_round_trips_and_expires_by_the_tables_ttl() {
        let origin = Origin::system("test").for_request("r-1");
        let entry = AuditEntry::new(Action::MemberAdded, &origin, CustomerId::random())
            .member(UserId::random(), Role::Admin)
            .changed("role", None, Some("admin"));
        let item = serde_dynamo::to_item::<_, Item>(AuditItem::new(&entry, 42)).unwrap();
        assert!(AuditItem::is_one(&item));
        assert_eq!(item["SK"].as_s().unwrap(), "SEQ#0000000000000042");
        assert_eq!(audit_number(item["SK"].as_s().unwrap()), Some(42));
        let expires: i64 = item[TTL_ATTRIBUTE].as_n().unwrap().parse().unwrap();
        assert_eq!(
            expires - entry.at.timestamp(),
            AUDIT_RETENTION_DAYS * 86_400
        );
        let back = serde_dynamo::from_item::<_, AuditItem>(item)
            .unwrap()
            .into_entry()
            .unwrap();
        assert_eq!(back.at.timestamp_millis(), entry.at.timestamp_millis());
        assert_eq!(
            AuditEntry {
                at: entry.at,
                ..back
            },
            entry
        );
    }

    #[test]
    fn numbered_entries_sort_above_older_ones_and_the_sequence_below_all() {
        // GIVEN an entry written before numbering, numbered ones, the sequence
        let legacy = "2026-02-03T09:14:22.123Z#0b4e6f5c-0000-4000-8000-000000000001";
        let (first, later) = (audit_sort(1), audit_sort(10_000_000_000));
        // THEN in sort key order: sequence < legacy < numbered, numbers in order
        assert!(SEQUENCE_SK < ENTRIES_FROM);
        assert!(ENTRIES_FROM < legacy && legacy < LEGACY_TO);
        assert!(LEGACY_TO < first.as_str() && first < later);
        assert_eq!(audit_number(legacy), None);
        assert_eq!(audit_number(SEQUENCE_SK), None);
        // AND the sequence item reads back, 0 without one
        let customer = CustomerId::random();
        assert_eq!(
            audit_sequence_of(Some(&audit_sequence_item(&customer, 7))),
            Some(7)
        );
        assert_eq!(audit_sequence_of(None), Some(0));
    }
}
