//! Platform events: `customer.deleted` out, `user.deleted` in.

use serde::{Deserialize, Serialize};

use crate::domain::{CustomerId, Timestamp, UserId};

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
    #[error("publishing {CUSTOMER_DELETED} failed")]
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
        let detail =
            serde_json::to_string(event).map_err(|e| PublishError::EventBridge(Box::new(e)))?;
        match self {
            Self::Log => {
                tracing::info!(detail_type = CUSTOMER_DELETED, time = at.timestamp(), %detail, "event");
            }
            #[cfg(feature = "events")]
            Self::EventBridge { client, bus } => {
                eventbridge::put(client, bus, detail, at).await?;
                tracing::info!(customer = %event.customer_id, event_id = %event.event_id, "published {CUSTOMER_DELETED}");
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

    use super::{CUSTOMER_DELETED, PublishError, SOURCE};
    use crate::domain::Timestamp;

    /// Puts one `customer.deleted` entry with `detail` on `bus`; an entry
    /// EventBridge did not accept is an error.
    pub(super) async fn put(
        client: &Client,
        bus: &str,
        detail: String,
        at: &Timestamp,
    ) -> Result<(), PublishError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(bus)
            .source(SOURCE)
            .detail_type(CUSTOMER_DELETED)
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
