//! Stripe events, read for what they change of a customer.
//!
//! Only the fields used are read (Stripe's full types reject the leaner objects
//! of Stripe-compatible servers, and would weigh on every cold start):
//!
//! | event | change |
//! |-------|--------|
//! | `customer.subscription.created`, `.updated`, `.paused`, `.resumed`, `.deleted` | `subscriptionStatus` := the subscription's `status`; the tier := its price's (else its plan's, else its own) metadata `tierName` and `tierID` when both are there and valid; the Stripe ids := the subscription's |
//! | `customer.deleted` | the Stripe ids are removed, `subscriptionStatus` := `canceled`, billing marked gone (`billingGoneAt`); the customer stays |
//! | anything else | acknowledged, nothing changes |
//!
//! The customer is found by the Stripe customer's lookup item, else by the
//! object's `metadata.customerID`.
//!
//! **Order.** Each event has a *version*: its `created` time, then a rank
//! (subscription created 0, updated/paused/resumed 1, deleted 2, customer
//! deleted 3), so that of two events of one second the later in a
//! subscription's life wins. A customer's record keeps the version of the last
//! event applied (`billingVersion`), and an older event changes nothing. An
//! event about a subscription other than the customer's current one changes
//! nothing either, unless it creates one (a new subscription supersedes the old).

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{Customer, CustomerId, SubscriptionStatus, TierName, Timestamp};
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
}

/// Why an event cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed Stripe event: {0}")]
pub struct Malformed(String);

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
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
            serde_json::from_slice(body).map_err(|e| Malformed(format!("envelope: {e}")))?;
        let about = if SUBSCRIPTION_EVENTS.contains(&env.kind.as_str()) {
            About::Subscription(subscription(env.data.object)?)
        } else if env.kind == "customer.deleted" {
            let id = env.data.object.get("id").and_then(Value::as_str);
            let id = id.ok_or_else(|| Malformed("customer without id".into()))?;
            About::CustomerDeleted {
                stripe_customer: id.to_owned(),
                customer: customer_id(env.data.object.get("metadata")),
            }
        } else {
            About::Other
        };
        Ok(Self {
            id: env.id,
            kind: env.kind,
            created: env.created,
            about,
        })
    }

    /// Where this event sorts among a customer's billing events (see the module).
    pub fn version(&self) -> String {
        let rank = match self.kind.as_str() {
            "customer.subscription.created" => 0,
            "customer.subscription.deleted" => 2,
            "customer.deleted" => 3,
            _ => 1,
        };
        version(self.created, rank)
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

    /// What the event changes of `customer` as it is now; `None` for nothing.
    pub fn change_for(&self, customer: &Customer, now: Timestamp) -> Option<CustomerChange> {
        let (stripe_customer, _) = self.stripe_customer()?;
        if customer
            .stripe_customer_id
            .as_deref()
            .is_some_and(|ours| ours != stripe_customer)
        {
            return None;
        }
        match &self.about {
            About::Subscription(s) => {
                let current = customer.stripe_subscription_id.as_deref();
                let creates = self.kind == "customer.subscription.created";
                if current.is_some_and(|c| c != s.id) && !creates {
                    return None;
                }
                Some(s.change())
            }
            About::CustomerDeleted { .. } => Some(CustomerChange::billing_gone(now)),
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
            ..CustomerChange::default()
        }
    }
}

/// A version: `created` (fixed width), then the rank.
pub fn version(created: i64, rank: u8) -> String {
    format!("{created:012}.{rank}")
}

/// Reads a subscription object.
pub fn subscription(object: Value) -> Result<Subscription, Malformed> {
    let raw: RawSubscription =
        serde_json::from_value(object).map_err(|e| Malformed(format!("subscription: {e}")))?;
    // `customer` is an id, or the customer object when expanded.
    let stripe_customer = match &raw.customer {
        Value::String(id) => Some(id.clone()),
        other => other.get("id").and_then(Value::as_str).map(str::to_owned),
    }
    .ok_or_else(|| Malformed("subscription without customer".into()))?;
    let status = SubscriptionStatus::parse(&raw.status)
        .map_err(|_| Malformed(format!("subscription status {:?}", raw.status)))?;
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
        id: raw.id,
        stripe_customer,
        status,
        tier,
        customer: customer_id(Some(&raw.metadata)),
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

    fn event(kind: &str, created: i64, object: Value) -> StripeEvent {
        let body =
            json!({"id": "evt_1", "type": kind, "created": created, "data": {"object": object}});
        StripeEvent::parse(body.to_string().as_bytes()).unwrap()
    }

    fn sub(id: &str, status: &str, metadata: Value) -> Value {
        json!({
            "id": id, "object": "subscription", "customer": "cus_1", "status": status,
            "items": {"data": [{"plan": {"id": "tier-pro", "metadata": metadata}}]}
        })
    }

    fn customer(sub: Option<&str>) -> Customer {
        Customer {
            id: CustomerId::random(),
            name: "Acme".into(),
            tier_name: TierName::parse("basic").unwrap(),
            tier_id: Uuid::nil(),
            subscription_status: SubscriptionStatus::Active,
            member_count: 0,
            created_at: crate::domain::now(),
            owner_user_id: crate::domain::UserId::random(),
            state: crate::domain::CustomerState::Active,
            deleting_since: None,
            stripe_customer_id: Some("cus_1".into()),
            stripe_subscription_id: sub.map(str::to_owned),
            billing_version: None,
            billing_gone_at: None,
            platform_version: None,
            tier_source: None,
        }
    }

    #[test]
    fn a_subscription_event_sets_status_tier_and_ids() {
        let e = event(
            "customer.subscription.updated",
            10,
            sub(
                "sub_1",
                "past_due",
                json!({"tierName": "pro", "tierID": TIER}),
            ),
        );
        let change = e
            .change_for(&customer(Some("sub_1")), crate::domain::now())
            .unwrap();
        assert_eq!(change.status, Some(SubscriptionStatus::PastDue));
        assert_eq!(change.tier.unwrap().0.as_str(), "pro");
        assert_eq!(change.stripe_subscription_id, Some(Some("sub_1".into())));
    }

    #[test]
    fn a_subscription_without_tier_metadata_keeps_the_tier() {
        let e = event(
            "customer.subscription.deleted",
            10,
            sub("sub_1", "canceled", json!({})),
        );
        let change = e
            .change_for(&customer(Some("sub_1")), crate::domain::now())
            .unwrap();
        assert_eq!(change.status, Some(SubscriptionStatus::Canceled));
        assert_eq!(change.tier, None);
    }

    #[test]
    fn only_a_new_subscription_supersedes_the_current_one() {
        let old = event(
            "customer.subscription.deleted",
            10,
            sub("sub_old", "canceled", json!({})),
        );
        assert_eq!(
            old.change_for(&customer(Some("sub_new")), crate::domain::now()),
            None
        );
        let new = event(
            "customer.subscription.created",
            10,
            sub("sub_new", "active", json!({})),
        );
        assert!(
            new.change_for(&customer(Some("sub_old")), crate::domain::now())
                .is_some()
        );
    }

    #[test]
    fn versions_order_by_time_then_by_a_subscriptions_life() {
        let v = |kind: &str, t| event(kind, t, sub("sub_1", "active", json!({}))).version();
        assert!(v("customer.subscription.created", 5) < v("customer.subscription.updated", 5));
        assert!(v("customer.subscription.updated", 5) < v("customer.subscription.deleted", 5));
        assert!(v("customer.subscription.deleted", 5) < v("customer.subscription.created", 6));
        assert!(v("customer.subscription.updated", 99) < v("customer.subscription.updated", 100));
    }

    #[test]
    fn a_deleted_stripe_customer_leaves_the_customer_without_billing() {
        let e = event(
            "customer.deleted",
            10,
            json!({"id": "cus_1", "object": "customer"}),
        );
        let change = e
            .change_for(&customer(Some("sub_1")), crate::domain::now())
            .unwrap();
        assert_eq!(change.stripe_customer_id, Some(None));
        assert_eq!(change.status, Some(SubscriptionStatus::Canceled));
        assert!(change.billing_gone_at.is_some());
    }

    #[test]
    fn other_events_change_nothing_and_bad_ones_are_refused() {
        let e = event("invoice.paid", 10, json!({"id": "in_1"}));
        assert_eq!(e.about, About::Other);
        for body in [
            "{}",
            "not json",
            r#"{"id":"evt","type":"customer.subscription.updated","created":1,"data":{"object":{"id":"sub","customer":"cus","status":"bogus"}}}"#,
        ] {
            assert!(StripeEvent::parse(body.as_bytes()).is_err(), "{body}");
        }
    }
}
