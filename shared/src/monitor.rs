//! The `deletion-monitor` function: on a schedule, how many customers are in the
//! deleting state and how long the oldest has been, as the `DeletingCustomers`
//! and `OldestDeletionAgeSeconds` metrics. A cascade that stopped and was never
//! finished (neither by a retried DELETE nor by the stream consumer) shows as a
//! growing age.

use std::time::Duration;

use crate::domain::{Timestamp, now};
use crate::store::{Store, StoreError};
use crate::telemetry::metrics;

/// The function's package name (and `Function` of its metrics).
pub const FUNCTION: &str = "deletion-monitor";

/// What one run saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeletionBacklog {
    /// Customers in the deleting state.
    pub deleting: u64,
    /// Age of the oldest deletion; zero when there is none.
    pub oldest_age: Duration,
}

/// The age of a deletion that began at `since`, seen at `at` (never negative).
pub fn age(since: Option<Timestamp>, at: Timestamp) -> Duration {
    since
        .and_then(|since| (at - since).to_std().ok())
        .unwrap_or(Duration::ZERO)
}

/// Reads the backlog (one Query, every page) and emits its two metrics.
pub async fn report(store: &Store) -> Result<DeletionBacklog, StoreError> {
    let deleting = store.deleting_customers().await?;
    let backlog = DeletionBacklog {
        deleting: deleting.count,
        oldest_age: age(deleting.oldest_since, now()),
    };
    metrics::deletion_backlog(backlog.deleting, backlog.oldest_age);
    tracing::info!(
        deleting = backlog.deleting,
        oldest_age_seconds = backlog.oldest_age.as_secs_f64(),
        "deletion backlog"
    );
    Ok(backlog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_age_is_zero_without_a_deletion_and_never_negative() {
        let at = now();
        assert_eq!(age(None, at), Duration::ZERO);
        assert_eq!(
            age(Some(at - chrono::Duration::milliseconds(1500)), at),
            Duration::from_millis(1500)
        );
        assert_eq!(
            age(Some(at + chrono::Duration::seconds(5)), at),
            Duration::ZERO
        );
    }

    #[test]
    fn a_scheduled_event_parses() {
        let event: aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value> =
            serde_json::from_value(serde_json::json!({
                "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
                "detail-type": "Scheduled Event", "source": "aws.events",
                "account": "123456789012", "time": "2026-03-02T10:20:00Z", "region": "eu-west-1",
                "resources": ["arn:aws:events:eu-west-1:123456789012:rule/deletion-monitor"],
                "detail": {}
            }))
            .expect("scheduled event");
        assert_eq!(event.detail_type, "Scheduled Event");
    }
}
