//! Stripe's truth about a customer of ours, and what drifted from it: the
//! comparison of one customer, without I/O (the module above walks both sides).

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{Customer, CustomerId, SubscriptionStatus, TierName, now};
use crate::payments::StripeCustomer;
use crate::store::CustomerChange;
use crate::sync::stripe_events::{self, Subscription};

/// What is out of step with Stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// Our subscription status is not the subscription's.
    Status,
    /// Our tier is not the one the subscription names.
    Tier,
    /// Our Stripe customer or subscription id is not Stripe's.
    StripeIds,
    /// Our Stripe customer does not exist in Stripe, or is deleted.
    BillingGone,
}

impl DriftKind {
    /// The kind in one word, as reported.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Tier => "tier",
            Self::StripeIds => "stripe_ids",
            Self::BillingGone => "billing_gone",
        }
    }
}

/// A customer's billing as one side holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Billing {
    /// Subscription status (Stripe: none without a subscription).
    pub subscription_status: Option<SubscriptionStatus>,
    /// Tier name (Stripe: none when the subscription names none).
    pub tier_name: Option<TierName>,
    /// Tier UUID.
    #[serde(rename = "tierID")]
    pub tier_id: Option<Uuid>,
    /// `cus_...`.
    #[serde(rename = "stripeCustomerID")]
    pub stripe_customer_id: Option<String>,
    /// `sub_...`.
    #[serde(rename = "stripeSubscriptionID")]
    pub stripe_subscription_id: Option<String>,
}

impl Billing {
    /// Our side.
    pub fn of(c: &Customer) -> Self {
        Self {
            subscription_status: Some(c.subscription_status),
            tier_name: Some(c.tier_name.clone()),
            tier_id: Some(c.tier_id),
            stripe_customer_id: c.stripe_customer_id.clone(),
            stripe_subscription_id: c.stripe_subscription_id.clone(),
        }
    }
}

/// One drifted customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// The customer.
    pub customer: CustomerId,
    /// What drifted, in a fixed order.
    pub kinds: Vec<DriftKind>,
    /// Our record.
    pub ours: Billing,
    /// Stripe's truth (all empty when the billing is gone).
    pub stripe: Billing,
    /// With repair: `applied`, `unchanged` (fixed meanwhile), `stale` (a newer
    /// Stripe event applied meanwhile), `unknown_customer`, or `failed: ...`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair: Option<String>,
}

/// Stripe's side of some Stripe customers, as listed at one time: the
/// customers and each one's current subscription.
#[derive(Debug, Default)]
pub struct StripeView {
    customers: HashMap<String, StripeCustomer>,
    /// Each Stripe customer's current subscription.
    current: HashMap<String, Subscription>,
    subscriptions: u64,
    malformed: u64,
}

/// Stripe's truth about one customer of ours.
#[derive(Debug, Clone, PartialEq)]
pub enum Truth<'a> {
    /// Our Stripe customer is not in the lists, or is deleted.
    Gone,
    /// Our Stripe customer, and its current subscription if it has any.
    Found {
        /// The Stripe customer.
        customer: &'a StripeCustomer,
        /// Its current subscription.
        subscription: Option<&'a Subscription>,
    },
}

impl StripeView {
    /// The view of these customers and raw subscription objects.
    pub fn new(customers: Vec<StripeCustomer>, subscriptions: Vec<Value>) -> Self {
        let listed = subscriptions.len() as u64;
        let mut parsed = Vec::with_capacity(subscriptions.len());
        for raw in subscriptions {
            let created = raw.get("created").and_then(Value::as_i64).unwrap_or(0);
            if let Ok(sub) = stripe_events::subscription(raw) {
                parsed.push((created, sub));
            }
        }
        let mut view = Self::of(customers, parsed);
        view.malformed = listed - view.subscriptions;
        view.subscriptions = listed;
        view
    }

    /// The view of these customers and subscriptions (each with its `created`).
    pub fn of(customers: Vec<StripeCustomer>, subscriptions: Vec<(i64, Subscription)>) -> Self {
        let mut view = Self {
            subscriptions: subscriptions.len() as u64,
            customers: customers.into_iter().map(|c| (c.id.clone(), c)).collect(),
            ..Self::default()
        };
        // (not ended, created, id): the greatest is the current subscription.
        let mut ranked: HashMap<String, ((bool, i64, String), Subscription)> = HashMap::new();
        for (created, sub) in subscriptions {
            let rank = (sub.status.has_subscription(), created, sub.id.clone());
            match ranked.get(&sub.stripe_customer) {
                Some((best, _)) if *best >= rank => {}
                _ => {
                    ranked.insert(sub.stripe_customer.clone(), (rank, sub));
                }
            }
        }
        view.current = ranked.into_iter().map(|(k, (_, s))| (k, s)).collect();
        view
    }

    /// Stripe's truth about the customer of ours whose Stripe customer is
    /// `stripe_id`: gone when the view does not hold it live.
    pub fn truth(&self, stripe_id: &str) -> Truth<'_> {
        match self.customers.get(stripe_id) {
            Some(customer) if !customer.deleted => Truth::Found {
                customer,
                subscription: self.current.get(stripe_id),
            },
            _ => Truth::Gone,
        }
    }

    /// The current subscription of the Stripe customer `stripe_customer`: its
    /// newest not ended, else its newest.
    pub fn current_subscription(&self, stripe_customer: &str) -> Option<&Subscription> {
        self.current.get(stripe_customer)
    }

    /// Live Stripe customers outside `matched` (those our customers have).
    pub(super) fn only_in_stripe(&self, matched: &HashSet<String>) -> u64 {
        self.customers
            .values()
            .filter(|c| !c.deleted && !matched.contains(&c.id))
            .count() as u64
    }
}

/// For each customer of ours that live Stripe customers name (their
/// `metadata.customerID`), the newest of those: `(our id, created, cus_...)`.
pub fn newest_named(
    named: impl IntoIterator<Item = (CustomerId, i64, String)>,
) -> HashMap<CustomerId, String> {
    let mut newest: HashMap<CustomerId, (i64, String)> = HashMap::new();
    for (id, created, stripe_id) in named {
        let candidate = (created, stripe_id);
        match newest.get(&id) {
            Some(best) if *best >= candidate => {}
            _ => {
                newest.insert(id, candidate);
            }
        }
    }
    newest.into_iter().map(|(k, (_, id))| (k, id)).collect()
}

/// What drifted between our billing and Stripe's truth, and the change that
/// repairs it.
pub fn drift(
    ours: &Billing,
    truth: &Truth<'_>,
) -> (Vec<DriftKind>, Billing, Option<CustomerChange>) {
    match truth {
        Truth::Gone => (
            vec![DriftKind::BillingGone],
            Billing::default(),
            Some(CustomerChange::billing_gone(now())),
        ),
        Truth::Found {
            customer,
            subscription,
        } => {
            let tier = subscription.and_then(|s| s.tier.clone());
            let stripe = Billing {
                subscription_status: subscription.map(|s| s.status),
                tier_name: tier.as_ref().map(|t| t.0.clone()),
                tier_id: tier.as_ref().map(|t| t.1),
                stripe_customer_id: Some(customer.id.clone()),
                stripe_subscription_id: subscription.map(|s| s.id.clone()),
            };
            let mut kinds = Vec::new();
            if stripe
                .subscription_status
                .is_some_and(|s| Some(s) != ours.subscription_status)
            {
                kinds.push(DriftKind::Status);
            }
            if tier.as_ref().is_some_and(|(name, id)| {
                (Some(name), Some(id)) != (ours.tier_name.as_ref(), ours.tier_id.as_ref())
            }) {
                kinds.push(DriftKind::Tier);
            }
            if ours.stripe_customer_id != stripe.stripe_customer_id
                || ours.stripe_subscription_id != stripe.stripe_subscription_id
            {
                kinds.push(DriftKind::StripeIds);
            }
            // The subscription's change, or (without one) Stripe's ids alone.
            let change = (!kinds.is_empty()).then(|| {
                subscription.map_or_else(
                    || CustomerChange {
                        stripe_customer_id: Some(Some(customer.id.clone())),
                        stripe_subscription_id: Some(None),
                        ..CustomerChange::default()
                    },
                    Subscription::change,
                )
            });
            (kinds, stripe, change)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::{CustomerState, UserId};

    const TIER: &str = "0b8e7d8a-6a53-4a5b-9d3c-1c1d1e1f2a2b";

    fn ours(stripe: Option<&str>, sub: Option<&str>) -> Customer {
        Customer {
            id: CustomerId::random(),
            name: "Acme".into(),
            tier_name: TierName::parse("pro").unwrap(),
            tier_id: Uuid::parse_str(TIER).unwrap(),
            subscription_status: SubscriptionStatus::Active,
            member_count: 1,
            created_at: now(),
            owner_user_id: UserId::random(),
            state: CustomerState::Active,
            deleting_since: None,
            stripe_customer_id: stripe.map(str::to_owned),
            stripe_subscription_id: sub.map(str::to_owned),
            billing_version: None,
            billing_gone_at: None,
            platform_version: None,
            tier_source: None,
        }
    }

    fn stripe_customer(id: &str, named: Option<&CustomerId>, deleted: bool) -> StripeCustomer {
        StripeCustomer {
            id: id.into(),
            name: Some("Acme".into()),
            metadata: named
                .map(|c| HashMap::from([("customerID".to_owned(), c.to_string())]))
                .unwrap_or_default(),
            deleted,
            created: 1,
        }
    }

    fn sub(id: &str, customer: &str, status: &str, created: i64, tier: &str) -> Value {
        json!({
            "id": id, "customer": customer, "status": status, "created": created,
            "items": {"data": [{"plan": {"metadata": {"tierName": tier, "tierID": TIER}}}]}
        })
    }

    #[test]
    fn in_step_customers_do_not_drift() {
        let c = ours(Some("cus_1"), Some("sub_1"));
        let view = StripeView::new(
            vec![stripe_customer("cus_1", Some(&c.id), false)],
            vec![sub("sub_1", "cus_1", "active", 5, "pro")],
        );
        assert_eq!(drift(&Billing::of(&c), &view.truth("cus_1")).0, vec![]);
    }

    #[test]
    fn the_current_subscription_is_the_newest_not_ended() {
        let c = ours(Some("cus_1"), Some("sub_old"));
        let view = StripeView::new(
            vec![stripe_customer("cus_1", None, false)],
            vec![
                sub("sub_old", "cus_1", "past_due", 1, "pro"),
                sub("sub_newer_ended", "cus_1", "canceled", 9, "pro"),
                sub("sub_new", "cus_1", "active", 5, "enterprise"),
            ],
        );
        let (kinds, stripe, change) = drift(&Billing::of(&c), &view.truth("cus_1"));
        assert_eq!(kinds, vec![DriftKind::Tier, DriftKind::StripeIds]);
        assert_eq!(stripe.stripe_subscription_id.as_deref(), Some("sub_new"));
        let change = change.unwrap();
        assert_eq!(change.tier.unwrap().0.as_str(), "enterprise");
        // all ended: the newest
        let view = StripeView::new(
            vec![stripe_customer("cus_1", None, false)],
            vec![
                sub("sub_a", "cus_1", "canceled", 1, "pro"),
                sub("sub_b", "cus_1", "incomplete_expired", 3, "pro"),
            ],
        );
        let (kinds, stripe, _) = drift(&Billing::of(&c), &view.truth("cus_1"));
        assert_eq!(stripe.stripe_subscription_id.as_deref(), Some("sub_b"));
        assert_eq!(kinds, vec![DriftKind::Status, DriftKind::StripeIds]);
    }

    #[test]
    fn a_missing_or_deleted_stripe_customer_is_billing_gone() {
        let c = ours(Some("cus_gone"), Some("sub_1"));
        for customers in [vec![], vec![stripe_customer("cus_gone", None, true)]] {
            let view = StripeView::new(customers, vec![]);
            assert_eq!(view.truth("cus_gone"), Truth::Gone);
            let (kinds, _, change) = drift(&Billing::of(&c), &Truth::Gone);
            assert_eq!(kinds, vec![DriftKind::BillingGone]);
            let change = change.unwrap();
            assert_eq!(change.stripe_customer_id, Some(None));
            assert_eq!(change.status, Some(SubscriptionStatus::Canceled));
            assert!(change.billing_gone_at.is_some());
        }
    }

    #[test]
    fn a_customer_without_stripe_ids_is_found_by_metadata() {
        let c = ours(None, None);
        let other = CustomerId::random();
        // the newest of the live Stripe customers naming it
        let named = newest_named([
            (other, 1, "cus_other".to_owned()),
            (c.id, 1, "cus_old".to_owned()),
            (c.id, 5, "cus_ours".to_owned()),
            (c.id, 3, "cus_older".to_owned()),
        ]);
        assert_eq!(named.get(&c.id).map(String::as_str), Some("cus_ours"));
        assert_eq!(named.len(), 2);
        let view = StripeView::new(
            vec![
                stripe_customer("cus_other", Some(&other), false),
                stripe_customer("cus_ours", Some(&c.id), false),
            ],
            vec![sub("sub_1", "cus_ours", "active", 1, "pro")],
        );
        let (kinds, stripe, _) = drift(&Billing::of(&c), &view.truth(&named[&c.id]));
        assert_eq!(kinds, vec![DriftKind::StripeIds]);
        assert_eq!(stripe.stripe_customer_id.as_deref(), Some("cus_ours"));
    }
}
