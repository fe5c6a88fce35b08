//! Reading the table's stream records.

use serde::Deserialize;

use crate::domain::{CustomerId, CustomerState};

use std::collections::BTreeSet;

use super::audit::AuditItem;
use super::directory::{TALLY_KIND, dir, slot_attr, slot_version_attr, tally};
use super::keys::{CUSTOMER_PREFIX, PK, SK};

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
    /// A day of a customer's members directory was written: the minutes
    /// (`<group><YYYY-MM-DDTHH:MM>`) whose changes it counts moved and that
    /// hold more than [`tally::FENCE_EVERY`] members (their fences to write).
    MembersCounted(CustomerId, Vec<String>),
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
/// delta, a written day of a members directory or a new audit entry.
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
        "INSERT" | "MODIFY" if members_day(&record.change.keys).is_some() => {
            let (customer, day) = members_day(&record.change.keys)?;
            let slots = changed_minutes(&day, &record.change.old_image, &record.change.new_image);
            Some(StreamCustomer::MembersCounted(customer, slots))
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

/// The customer and the day (`<group><YYYY-MM-DD>`) of a members directory
/// day item's keys.
fn members_day(keys: &serde_dynamo::Item) -> Option<(CustomerId, String)> {
    let text = |name: &str| match keys.get(name) {
        Some(serde_dynamo::AttributeValue::S(v)) => Some(v.as_str()),
        _ => None,
    };
    let customer = CustomerId::parse(text(PK)?.strip_prefix(CUSTOMER_PREFIX)?).ok()?;
    let day = text(SK)?.strip_prefix(dir::DAY_PREFIX)?;
    Some((customer, day.to_owned()))
}

/// The minutes of `day` whose change count (`wHHMM`) differs between the two
/// images and whose entries (`sHHMM`) in the new one exceed
/// [`tally::FENCE_EVERY`].
fn changed_minutes(day: &str, old: &serde_dynamo::Item, new: &serde_dynamo::Item) -> Vec<String> {
    let number = |item: &serde_dynamo::Item, name: &str| match item.get(name) {
        Some(serde_dynamo::AttributeValue::N(v)) => v.parse::<i64>().unwrap_or(0),
        _ => 0,
    };
    let minutes: BTreeSet<&str> = old
        .keys()
        .chain(new.keys())
        .filter_map(|a| a.strip_prefix('w'))
        .filter(|m| m.len() == 4 && m.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    minutes
        .into_iter()
        .filter(|m| {
            let (hour, minute) = (&m[..2], &m[2..]);
            let version = slot_version_attr(hour, minute);
            number(old, &version) != number(new, &version)
                && number(new, &slot_attr(hour, minute)) > tally::FENCE_EVERY as i64
        })
        .map(|m| format!("{day}T{}:{}", &m[..2], &m[2..]))
        .collect()
}
