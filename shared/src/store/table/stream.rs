//! Reading the table's stream records.

use serde::Deserialize;

use crate::domain::{CustomerId, CustomerState};

use super::audit::AuditItem;
use super::directory::TALLY_KIND;
use super::keys::PK;

/// What a stream record says about a customer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamCustomer {
    /// The record was written in the deleting state.
    Deleting(CustomerId),
    /// The record was removed.
    Removed(CustomerId),
    /// A listing's directory (in this partition) got a change to compact (a
    /// shard's day counts, or a delta a previous release wrote).
    Counted(String),
    /// An audit entry was written (the outbox of the membership events).
    Audited(Box<crate::domain::audit::AuditEntry>),
}

/// The customer-record fields a stream image is read for.
#[derive(Debug, Deserialize)]
struct ImageCustomer {
    #[serde(rename = "type")]
    kind: String,
    id: CustomerId,
    state: CustomerState,
}

/// Reads a stream record: `None` for anything but a customer record entering the
/// deleting state or being removed, a written shard of day counts, a directory
/// delta or a new audit entry.
pub fn stream_customer(
    record: &aws_lambda_events::dynamodb::EventRecord,
) -> Option<StreamCustomer> {
    let image = |item: &serde_dynamo::Item| {
        serde_dynamo::from_item::<_, ImageCustomer>(item.clone())
            .ok()
            .filter(|c| c.kind == "customer")
    };
    match record.event_name.as_str() {
        "REMOVE" => image(&record.change.old_image).map(|c| StreamCustomer::Removed(c.id)),
        "INSERT" if is_kind(&record.change.new_image, "audit") => {
            serde_dynamo::from_item::<_, AuditItem>(record.change.new_image.clone())
                .ok()
                .and_then(|i| i.into_entry().ok())
                .map(|e| StreamCustomer::Audited(Box::new(e)))
        }
        "INSERT" | "MODIFY" if is_kind(&record.change.new_image, TALLY_KIND) => {
            match record.change.keys.get(PK) {
                Some(serde_dynamo::AttributeValue::S(pk)) => {
                    Some(StreamCustomer::Counted(pk.clone()))
                }
                _ => None,
            }
        }
        "INSERT" if is_kind(&record.change.new_image, "delta") => {
            match record.change.keys.get(PK) {
                Some(serde_dynamo::AttributeValue::S(pk)) => {
                    Some(StreamCustomer::Counted(pk.clone()))
                }
                _ => None,
            }
        }
        "INSERT" | "MODIFY" => image(&record.change.new_image)
            .filter(|c| c.state == CustomerState::Deleting)
            .map(|c| StreamCustomer::Deleting(c.id)),
        _ => None,
    }
}

fn is_kind(image: &serde_dynamo::Item, kind: &str) -> bool {
    matches!(image.get("type"), Some(serde_dynamo::AttributeValue::S(t)) if t == kind)
}
