//! Platform events: `customer.deleted` and the membership events out,
//! `user.deleted` in.

use serde::{Deserialize, Serialize};

use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::{CustomerId, Role, Timestamp, UserId, time};

/// `source` of every event this service publishes.
pub const SOURCE: &str = "billing.admin";
/// `detail-type` of the platform's event for a deleted user.
pub const USER_DELETED: &str = "user.deleted";
/// `detail-type` of the event published when a customer record is removed.
pub const CUSTOMER_DELETED: &str = "customer.deleted";

/// Detail of `customer.deleted`. Consumers deduplicate on `eventId`: the id of the
/// stream record that saw the customer record removed, the same on every redelivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerDeleted {
    /// Deduplication key.
    pub event_id: String,
    /// The deleted customer.
    #[serde(rename = "customerID")]
    pub customer_id: CustomerId,
    /// When the record was removed, RFC 3339.
    pub deleted_at: String,
}

/// Detail of `member.added`, `member.removed` and `member.role_changed`
/// (the `detail-type` is the audit entry's action). Consumers deduplicate on
/// `eventId`: the id of the audit entry, the same on every redelivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberEvent {
    /// Deduplication key: the audit entry's id.
    pub event_id: String,
    /// The customer.
    #[serde(rename = "customerID")]
    pub customer_id: CustomerId,
    /// The member.
    #[serde(rename = "userID")]
    pub user_id: UserId,
    /// The role after the change (the role held, for a removal).
    pub role: Role,
    /// The role before, for a role change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_role: Option<Role>,
    /// Who made the change.
    pub actor: Actor,
    /// The request that made it, when known.
    #[serde(rename = "requestID", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// When, RFC 3339 with milliseconds.
    pub at: String,
}

impl MemberEvent {
    /// The event of an audit entry of a membership action, if it is one.
    pub fn of(entry: &AuditEntry) -> Option<Self> {
        if !entry.action.is_membership() {
            return None;
        }
        let previous_role = entry
            .changes
            .get("role")
            .filter(|_| entry.action == crate::domain::audit::Action::MemberRoleChanged)
            .and_then(|c| c.from.as_deref())
            .and_then(Role::from_name);
        Some(Self {
            event_id: entry.id.to_string(),
            customer_id: entry.customer_id,
            user_id: entry.user_id?,
            role: entry.role?,
            previous_role,
            actor: entry.origin.actor.clone(),
            request_id: entry.origin.request_id.clone(),
            at: time::to_millis(&entry.at),
        })
    }
}

/// Detail of the platform's `user.deleted` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDeleted {
    /// The deleted user.
    #[serde(rename = "userID")]
    pub user_id: UserId,
}

/// Publishing failed; the caller retries (the stream redelivers).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// EventBridge failed or rejected the entry.
    #[error("publishing an event failed")]
    EventBridge(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where events go.
#[derive(Debug, Clone)]
pub enum Publisher {
    /// An EventBridge bus (with the `events` feature: cleanup-stream, billing-dev).
    #[cfg(feature = "events")]
    EventBridge {
        /// The client.
        client: aws_sdk_eventbridge::Client,
        /// Bus name or ARN.
        bus: String,
    },
    /// The log only (local stack without a bus).
    Log,
}

impl Publisher {
    /// Publishes `customer.deleted`.
    pub async fn customer_deleted(
        &self,
        event: &CustomerDeleted,
        at: &Timestamp,
    ) -> Result<(), PublishError> {
        self.publish(CUSTOMER_DELETED, event, at).await?;
        tracing::info!(customer = %event.customer_id, event_id = %event.event_id, "published {CUSTOMER_DELETED}");
        Ok(())
    }

    /// Publishes the membership event of an audit entry (`member.added`,
    /// `member.removed`, `member.role_changed`); other entries publish nothing.
    pub async fn audited(&self, entry: &AuditEntry) -> Result<(), PublishError> {
        let Some(event) = MemberEvent::of(entry) else {
            return Ok(());
        };
        self.publish(entry.action.as_str(), &event, &entry.at)
            .await?;
        tracing::info!(customer = %event.customer_id, event_id = %event.event_id, "published {}", entry.action.as_str());
        Ok(())
    }

    /// Publishes one event with `detail` as `detail_type`.
    async fn publish(
        &self,
        detail_type: &'static str,
        detail: &impl Serialize,
        at: &Timestamp,
    ) -> Result<(), PublishError> {
        let detail =
            serde_json::to_string(detail).map_err(|e| PublishError::EventBridge(Box::new(e)))?;
        match self {
            Self::Log => {
                tracing::info!(detail_type, time = at.timestamp(), %detail, "event");
            }
            #[cfg(feature = "events")]
            Self::EventBridge { client, bus } => {
                eventbridge::put(client, bus, detail_type, detail, at).await?;
            }
        }
        Ok(())
    }
}

/// Publishing to EventBridge (the `events` feature).
#[cfg(feature = "events")]
mod eventbridge {
    use aws_sdk_eventbridge::Client;
    use aws_sdk_eventbridge::primitives::DateTime;
    use aws_sdk_eventbridge::types::PutEventsRequestEntry;

    use super::{PublishError, SOURCE};
    use crate::domain::Timestamp;

    /// Puts one entry of `detail_type` with `detail` on `bus`; an entry
    /// EventBridge did not accept is an error.
    pub(super) async fn put(
        client: &Client,
        bus: &str,
        detail_type: &str,
        detail: String,
        at: &Timestamp,
    ) -> Result<(), PublishError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(bus)
            .source(SOURCE)
            .detail_type(detail_type)
            .detail(detail)
            .time(DateTime::from_secs(at.timestamp()))
            .build();
        let out = client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| {
                PublishError::EventBridge(Box::new(aws_sdk_eventbridge::Error::from(e)))
            })?;
        if out.failed_entry_count > 0 {
            let reason = out
                .entries
                .unwrap_or_default()
                .into_iter()
                .filter_map(|e| e.error_message)
                .collect::<Vec<_>>()
                .join("; ");
            return Err(PublishError::EventBridge(reason.into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::{Action, Origin};

    #[test]
    fn membership_entries_become_events_keyed_by_the_entry() {
        let origin = Origin::system("test").for_request("req-1");
        let (customer, user) = (CustomerId::random(), UserId::random());
        let entry = AuditEntry::new(Action::MemberRoleChanged, &origin, customer)
            .member(user, Role::Admin)
            .changed("role", Some("user"), Some("admin"));
        let event = MemberEvent::of(&entry).unwrap();
        assert_eq!(event.event_id, entry.id.to_string());
        assert_eq!(
            (event.role, event.previous_role),
            (Role::Admin, Some(Role::User))
        );
        assert_eq!(event.request_id.as_deref(), Some("req-1"));
        let added = AuditEntry::new(Action::MemberAdded, &origin, customer)
            .member(user, Role::User)
            .changed("role", None, Some("user"));
        assert_eq!(MemberEvent::of(&added).unwrap().previous_role, None);
        let deleted = AuditEntry::new(Action::CustomerDeleted, &origin, customer);
        assert_eq!(MemberEvent::of(&deleted), None);
    }
}
