//! Audit entries: a partition per customer, outside the customer's own
//! partition, so the trail outlives the customer for its retention.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Item, parse_time};
use crate::domain::audit::{Action, Actor, AuditEntry, Changes, Origin};
use crate::domain::{CustomerId, Role, UserId, time};

/// How long an entry is kept: DynamoDB's time to live removes it after this.
pub const AUDIT_RETENTION_DAYS: i64 = 400;

/// Partition of a customer's audit entries, newest last by sort key.
pub fn audit_pk(customer: &CustomerId) -> String {
    format!("AUDIT#{customer}")
}

/// Stored shape of an audit entry.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "type")]
    kind: String,
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
    /// The stored shape of `entry`, expiring [`AUDIT_RETENTION_DAYS`] after it.
    pub fn new(entry: &AuditEntry) -> Self {
        let at = time::to_millis(&entry.at);
        Self {
            pk: audit_pk(&entry.customer_id),
            sk: format!("{at}#{}", entry.id),
            kind: KIND.to_owned(),
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
        &self.sk
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
        let item = serde_dynamo::to_item::<_, Item>(AuditItem::new(&entry)).unwrap();
        assert!(AuditItem::is_one(&item));
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
}
