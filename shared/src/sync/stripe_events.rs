//! Stripe events, read for whom they are about.
//!
//! Only the fields used are read (Stripe's full types reject the leaner objects
//! of Stripe-compatible servers, and would weigh on every cold start):
//!
//! | event | about |
//! |-------|-------|
//! | `customer.subscription.created`, `.updated`, `.paused`, `.resumed`, `.deleted` | the subscription's Stripe customer and its `metadata.customerID` |
//! | `customer.deleted` | that Stripe customer, gone for good |
//! | anything else | nothing this service keeps |
//!
//! An event's snapshot of the subscription is **not** what is applied: Stripe
//! does not deliver events in order, so the webhook applies Stripe's current
//! state of the customer's billing, read when the event arrives (see
//! [`super::webhook`]). [`current`] picks the subscription that state shows.
//!
//! Every Stripe id an event names is checked ([`StripeIdKind::check`]): an
//! event with any other is refused whole.

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{
    CustomerId, Invalid, StripeIdKind, SubscriptionStatus, TierName, TierSource, Timestamp,
};
use crate::store::CustomerChange;

/// An event's envelope and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct StripeEvent {
    /// `evt_...`.
    pub id: String,
    /// The event type, e.g. `customer.subscription.updated`.
    pub kind: String,
    /// When Stripe created it (unix seconds).
    pub created: i64,
    /// The connected account it comes from (Stripe Connect), when it does.
    pub account: Option<String>,
    /// Whether it is a live-mode event (`None` when the body does not say).
    pub livemode: Option<bool>,
    /// What it is about.
    pub about: About,
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq)]
pub enum About {
    /// A subscription was created, changed or ended.
    Subscription(Subscription),
    /// A Stripe customer was deleted.
    CustomerDeleted {
        /// `cus_...`.
        stripe_customer: String,
        /// Its `metadata.customerID`, when it parses.
        customer: Option<CustomerId>,
    },
    /// Nothing this service keeps.
    Other,
}

/// The fields of a subscription this service keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// `sub_...`.
    pub id: String,
    /// `cus_...`.
    pub stripe_customer: String,
    /// Its status.
    pub status: SubscriptionStatus,
    /// Its tier, when its metadata names one.
    pub tier: Option<(TierName, Uuid)>,
    /// Its `metadata.customerID`, when it parses.
    pub customer: Option<CustomerId>,
    /// When it was created (unix seconds; 0 when not given).
    pub created: i64,
}

/// Why an event or a subscription cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Malformed {
    /// Not the shape of one.
    #[error("malformed Stripe event: {0}")]
    Shape(String),
    /// A Stripe id in it is not of Stripe's alphabet.
    #[error("{0}")]
    Id(Invalid),
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    livemode: Option<bool>,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    object: Value,
}

#[derive(Deserialize)]
struct RawSubscription {
    id: String,
    customer: Value,
    status: String,
    #[serde(default)]
    created: i64,
    #[serde(default)]
    metadata: Value,
    #[serde(default)]
    items: Option<RawItems>,
}

#[derive(Deserialize)]
struct RawItems {
    #[serde(default)]
    data: Vec<RawItem>,
}

#[derive(Deserialize)]
struct RawItem {
    #[serde(default)]
    price: Option<WithMetadata>,
    #[serde(default)]
    plan: Option<WithMetadata>,
}

#[derive(Deserialize)]
struct WithMetadata {
    #[serde(default)]
    metadata: Value,
}

/// Event types about a subscription's life.
const SUBSCRIPTION_EVENTS: [&str; 5] = [
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.deleted",
];

impl StripeEvent {
    /// Reads an event from a webhook's body.
    pub fn parse(body: &[u8]) -> Result<Self, Malformed> {
        let env: Envelope =
            serde_json::from_slice(body).map_err(|e| Malformed::Shape(format!("envelope: {e}")))?;
        let about = if SUBSCRIPTION_EVENTS.contains(&env.kind.as_str()) {
            About::Subscription(subscription(env.data.object)?)
        } else if env.kind == "customer.deleted" {
            let id = env.data.object.get("id").and_then(Value::as_str);
            let id = id.ok_or_else(|| Malformed::Shape("customer without id".into()))?;
            About::CustomerDeleted {
                stripe_customer: checked(StripeIdKind::Customer, id)?,
                customer: customer_id(env.data.object.get("metadata")),
            }
        } else {
            About::Other
        };
        Ok(Self {
            id: env.id,
            kind: env.kind,
            created: env.created,
            account: env.account,
            livemode: env.livemode,
            about,
        })
    }

    /// The Stripe customer the event is about, and its `metadata.customerID`.
    pub fn stripe_customer(&self) -> Option<(&str, Option<CustomerId>)> {
        match &self.about {
            About::Subscription(s) => Some((&s.stripe_customer, s.customer)),
            About::CustomerDeleted {
                stripe_customer,
                customer,
            } => Some((stripe_customer, *customer)),
            About::Other => None,
        }
    }
}

impl Subscription {
    /// What the subscription makes of its customer: status, tier, Stripe ids.
    pub fn change(&self) -> CustomerChange {
        CustomerChange {
            status: Some(self.status),
            tier: self.tier.clone(),
            stripe_customer_id: Some(Some(self.stripe_customer.clone())),
            stripe_subscription_id: Some(Some(self.id.clone())),
            tier_source: Some(TierSource::after_stripe(self.tier.is_some())),
            ..CustomerChange::default()
        }
    }
}

/// A version: `created` (fixed width), then the rank.
pub fn version(created: i64, rank: u8) -> String {
    format!("{created:012}.{rank}")
}

/// The version of a state of Stripe read at `at`: the read's time to the
/// nanosecond, so that of two reads the later (which saw at least as much of
/// Stripe) sorts last. Reads sort after [`version`]s of the same second made
/// with rank 0 (the reconciliation's list time).
pub fn read_version(at: Timestamp) -> String {
    format!("{:012}.{:09}", at.timestamp(), at.timestamp_subsec_nanos())
}

/// The current subscription among a Stripe customer's `subscriptions` (raw
/// objects, any status): its newest not ended (neither `canceled` nor
/// `incomplete_expired`), else its newest; ties of `created` go to the greater
/// id. Unreadable objects are skipped.
pub fn current(subscriptions: Vec<Value>) -> Option<Subscription> {
    subscriptions
        .into_iter()
        .filter_map(|raw| subscription(raw).ok())
        .max_by(|a, b| rank(a).cmp(&rank(b)))
}

/// Where a subscription sorts for [`current`]: not ended first, then newest.
fn rank(s: &Subscription) -> (bool, i64, &str) {
    (s.status.has_subscription(), s.created, &s.id)
}

/// `id` as an owned id of `kind`, or why it is none.
fn checked(kind: StripeIdKind, id: &str) -> Result<String, Malformed> {
    kind.check(id).map(str::to_owned).map_err(Malformed::Id)
}

/// Reads a subscription object.
pub fn subscription(object: Value) -> Result<Subscription, Malformed> {
    let raw: RawSubscription = serde_json::from_value(object)
        .map_err(|e| Malformed::Shape(format!("subscription: {e}")))?;
    // `customer` is an id, or the customer object when expanded.
    let stripe_customer = match &raw.customer {
        Value::String(id) => Some(id.clone()),
        other => other.get("id").and_then(Value::as_str).map(str::to_owned),
    }
    .ok_or_else(|| Malformed::Shape("subscription without customer".into()))?;
    let stripe_customer = checked(StripeIdKind::Customer, &stripe_customer)?;
    let id = checked(StripeIdKind::Subscription, &raw.id)?;
    let status = SubscriptionStatus::parse(&raw.status)
        .map_err(|_| Malformed::Shape(format!("subscription status {:?}", raw.status)))?;
    let item = raw.items.and_then(|i| i.data.into_iter().next());
    let tier = [
        item.as_ref()
            .and_then(|i| i.price.as_ref())
            .map(|p| &p.metadata),
        item.as_ref()
            .and_then(|i| i.plan.as_ref())
            .map(|p| &p.metadata),
        Some(&raw.metadata),
    ]
    .into_iter()
    .flatten()
    .find_map(tier_of);
    Ok(Subscription {
        id,
        stripe_customer,
        status,
        tier,
        customer: customer_id(Some(&raw.metadata)),
        created: raw.created,
    })
}

/// The tier metadata names: `tierName` and `tierID`, both valid.
fn tier_of(metadata: &Value) -> Option<(TierName, Uuid)> {
    let name = TierName::parse(metadata.get("tierName")?.as_str()?).ok()?;
    let id = Uuid::parse_str(metadata.get("tierID")?.as_str()?).ok()?;
    Some((name, id))
}

fn customer_id(metadata: Option<&Value>) -> Option<CustomerId> {
    CustomerId::parse(metadata?.get("customerID")?.as_str()?).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const TIER: &str = "0b8e7d8a-6a53-4a5b-9d3c-1c1d1e1f2a2b";

    fn body(kind: &str, object: Value) -> Value {
        json!({"id": "evt_1", "type": kind, "created": 10, "livemode": false, "data": {"object": object}})
    }

    fn event(kind: &str, object: Value) -> StripeEvent {
        StripeEvent::parse(body(kind, object).to_string().as_bytes()).unwrap()
    }

    fn sub(id: &str, status: &str, created: i64, metadata: Value) -> Value {
        json!({
            "id": id, "object": "subscription", "customer": "cus_1", "status": status,
            "created": created,
            "items": {"data": [{"plan": {"id": "tier-pro", "metadata": metadata}}]}
        })
    }

    #[test]
    fn a_subscription_event_names_its_stripe_customer_and_tag() {
        // GIVEN a subscription event tagged with our customer's id
        let ours = CustomerId::random();
        let object = json!({"id": "sub_1", "customer": "cus_1", "status": "past_due",
            "metadata": {"customerID": ours.to_string()}});
        // WHEN it is read
        let e = event("customer.subscription.updated", object);
        // THEN it is about that Stripe customer and names our customer
        assert_eq!(e.stripe_customer(), Some(("cus_1", Some(ours))));
        assert_eq!((e.account.as_deref(), e.livemode), (None, Some(false)));
    }

    #[test]
    fn the_current_subscription_is_the_newest_not_ended_else_the_newest() {
        // GIVEN a canceled newest, an active older and an active oldest
        let tier = json!({"tierName": "enterprise", "tierID": TIER});
        let subs = vec![
            sub("sub_oldest", "active", 1, json!({})),
            sub("sub_live", "past_due", 5, tier),
            sub("sub_ended", "canceled", 9, json!({})),
        ];
        // THEN the newest live one is current, with its tier
        let live = current(subs).unwrap();
        assert_eq!(live.id, "sub_live");
        assert_eq!(live.tier.unwrap().0.as_str(), "enterprise");
        // AND with none live the newest ended one is; same second: greater id
        let ended = vec![
            sub("sub_a", "canceled", 3, json!({})),
            sub("sub_b", "incomplete_expired", 3, json!({})),
        ];
        assert_eq!(current(ended).unwrap().id, "sub_b");
        assert_eq!(current(Vec::new()), None);
    }

    #[test]
    fn a_subscription_without_tier_metadata_names_no_tier() {
        let change = subscription(sub("sub_1", "canceled", 1, json!({})))
            .unwrap()
            .change();
        assert_eq!(change.status, Some(SubscriptionStatus::Canceled));
        assert_eq!(change.tier, None);
        assert_eq!(change.stripe_subscription_id, Some(Some("sub_1".into())));
    }

    #[test]
    fn reads_sort_by_time_and_after_the_same_seconds_list_version() {
        let at = |s, ns| chrono::DateTime::from_timestamp(s, ns).unwrap();
        assert!(read_version(at(5, 1)) < read_version(at(5, 2)));
        assert!(read_version(at(5, 999_999_999)) < read_version(at(6, 0)));
        assert!(read_version(at(99, 0)) < read_version(at(100, 0)));
        assert!(version(5, 0) < read_version(at(5, 0)));
        assert!(read_version(at(5, 0)) < version(6, 0));
    }

    #[test]
    fn events_naming_ids_outside_stripes_alphabet_are_refused() {
        for (kind, object) in [
            (
                "customer.subscription.updated",
                json!({"id": "sub_1", "customer": "cus_abc/../../v1/customers", "status": "active"}),
            ),
            (
                "customer.subscription.created",
                json!({"id": "sub_1?x", "customer": "cus_1", "status": "active"}),
            ),
            ("customer.deleted", json!({"id": "cus_1 2"})),
        ] {
            let parsed = StripeEvent::parse(body(kind, object).to_string().as_bytes());
            assert!(matches!(parsed, Err(Malformed::Id(_))), "{kind}");
        }
    }

    #[test]
    fn other_events_are_about_nothing_and_bad_ones_are_refused() {
        let e = event("invoice.paid", json!({"id": "in_1"}));
        assert_eq!(e.about, About::Other);
        assert_eq!(e.stripe_customer(), None);
        for body in [
            "{}",
            "not json",
            r#"{"id":"evt","type":"customer.subscription.updated","created":1,"data":{"object":{"id":"sub_1","customer":"cus_1","status":"bogus"}}}"#,
        ] {
            assert!(StripeEvent::parse(body.as_bytes()).is_err(), "{body}");
        }
    }
}
