//! Reconciliation with Stripe: every active customer of ours compared with
//! what Stripe holds, drift reported and, when asked, repaired.
//!
//! **Stripe's truth** for a customer of ours: its Stripe customer is the one
//! whose id is our `stripeCustomerID`, else (we have none) the Stripe customer
//! whose `metadata.customerID` is our id; its subscription is that customer's
//! newest one not ended (status neither `canceled` nor `incomplete_expired`),
//! else its newest.
//!
//! **Drift** ([`DriftKind`]): `status` (ours differs from the subscription's),
//! `tier` (the subscription names another tier), `stripe_ids` (our Stripe ids
//! are not Stripe's), `billing_gone` (our `stripeCustomerID` is unknown to
//! Stripe, or deleted, confirmed by reading it: a Stripe customer created
//! after the lists were read is not gone).
//!
//! **Repair** goes through [`Store::change_customer`] as an event of source
//! `reconcile` whose version is the time the Stripe lists were read: a webhook
//! newer than that read wins (the repair is `stale`), one older loses. The
//! change is decided again from the record as it is then, so a customer
//! fixed meanwhile is left alone.
//!
//! Stripe customers that no customer of ours points at or names are no drift
//! of ours: they are counted (`stripe_only`), nothing more.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::audit::Origin;
use crate::domain::{Customer, CustomerId, SubscriptionStatus, TierName, now};
use crate::payments::{Payments, PaymentsError, StripeCustomer};
use crate::store::{Applied, CustomerChange, EventStamp, Store, StoreError};
use crate::sync::stripe_events::{self, Subscription};
use crate::telemetry::metrics;

/// `source` of the repairs' event stamps.
pub const SOURCE: &str = "reconcile";
/// The function (and `Function` metric dimension) running it on a schedule.
pub const FUNCTION: &str = "reconcile";
/// The setting that makes the scheduled function repair what it finds.
pub const REPAIR_SETTING: &str = "RECONCILE_REPAIR";
/// Our customers read per page of the walk.
const SCAN_PAGE: u32 = 500;
/// Stripe reads (confirming a customer gone) and repairs in flight.
const IN_FLIGHT: usize = 8;

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

/// What a reconciliation found (and did).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Active customers of ours compared.
    pub checked: u64,
    /// Of those, drifted.
    pub drifted: u64,
    /// Of those, repaired.
    pub repaired: u64,
    /// Repairs that failed (the store refused or failed).
    pub repair_failed: u64,
    /// Stripe customers listed (deleted ones included).
    pub stripe_customers: u64,
    /// Stripe subscriptions listed.
    pub stripe_subscriptions: u64,
    /// Subscriptions that could not be read (no customer, unknown status).
    pub stripe_malformed: u64,
    /// Live Stripe customers that no customer of ours points at or names.
    pub stripe_only: u64,
    /// The drifted customers, in the order of the walk.
    pub drifts: Vec<Drift>,
}

/// Why a reconciliation stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Stripe failed or could not be reached.
    #[error(transparent)]
    Stripe(#[from] PaymentsError),
    /// The table failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stripe's side, as listed at one time.
#[derive(Debug, Default)]
pub struct StripeView {
    customers: HashMap<String, StripeCustomer>,
    /// Live Stripe customers by their `metadata.customerID` (the newest).
    named: HashMap<CustomerId, String>,
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
    /// No Stripe customer is ours (we name none, none names us).
    Absent,
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
        let mut view = Self {
            subscriptions: subscriptions.len() as u64,
            ..Self::default()
        };
        let mut newest: HashMap<CustomerId, (i64, String)> = HashMap::new();
        for c in &customers {
            let named = c.metadata.get("customerID").map(|id| CustomerId::parse(id));
            if let (false, Some(Ok(id))) = (c.deleted, named) {
                let candidate = (c.created, c.id.clone());
                let entry = newest.entry(id).or_insert_with(|| candidate.clone());
                if candidate > *entry {
                    *entry = candidate;
                }
            }
        }
        view.named = newest.into_iter().map(|(k, (_, id))| (k, id)).collect();
        view.customers = customers.into_iter().map(|c| (c.id.clone(), c)).collect();
        // (not ended, created, id): the greatest is the current subscription.
        let mut ranked: HashMap<String, ((bool, i64, String), Subscription)> = HashMap::new();
        for raw in subscriptions {
            let created = raw.get("created").and_then(Value::as_i64).unwrap_or(0);
            let Ok(sub) = stripe_events::subscription(raw) else {
                view.malformed += 1;
                continue;
            };
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

    /// Stripe's truth about `c`.
    pub fn truth(&self, c: &Customer) -> Truth<'_> {
        let stripe_id = match &c.stripe_customer_id {
            Some(id) => id,
            None => match self.named.get(&c.id) {
                Some(id) => id,
                None => return Truth::Absent,
            },
        };
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
    fn only_in_stripe(&self, matched: &HashSet<String>) -> u64 {
        self.customers
            .values()
            .filter(|c| !c.deleted && !matched.contains(&c.id))
            .count() as u64
    }
}

/// What drifted between `c` and Stripe's truth, and the change that repairs it.
pub fn drift(c: &Customer, truth: &Truth<'_>) -> (Vec<DriftKind>, Billing, Option<CustomerChange>) {
    match truth {
        Truth::Absent => (Vec::new(), Billing::default(), None),
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
                .is_some_and(|s| s != c.subscription_status)
            {
                kinds.push(DriftKind::Status);
            }
            if tier
                .as_ref()
                .is_some_and(|(name, id)| (name, id) != (&c.tier_name, &c.tier_id))
            {
                kinds.push(DriftKind::Tier);
            }
            if c.stripe_customer_id != stripe.stripe_customer_id
                || c.stripe_subscription_id != stripe.stripe_subscription_id
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

/// Compares our customers with Stripe.
#[derive(Debug, Clone)]
pub struct Reconciler {
    store: Store,
    payments: Payments,
}

impl Reconciler {
    /// A reconciler of `store` with `payments`.
    pub fn new(store: Store, payments: Payments) -> Self {
        Self { store, payments }
    }

    /// Lists Stripe's customers and subscriptions (every page), walks every
    /// active customer of ours, and reports the drifted; with `repair`,
    /// repairs them. Emits the `Reconcile*` metrics.
    pub async fn run(&self, repair: bool) -> Result<Report, ReconcileError> {
        let started = Instant::now();
        let run_id = Uuid::new_v4().simple().to_string();
        let listed_at = now().timestamp();
        let (customers, subscriptions) = tokio::try_join!(
            self.payments.all_customers(),
            self.payments.all_subscriptions()
        )?;
        let view = StripeView::new(customers, subscriptions);
        let mut report = Report {
            stripe_customers: view.customers.len() as u64,
            stripe_subscriptions: view.subscriptions,
            stripe_malformed: view.malformed,
            ..Report::default()
        };
        let mut matched = HashSet::new();
        let mut after: Option<String> = None;
        loop {
            let (page, next) = self
                .store
                .scan_customers(after.as_deref(), SCAN_PAGE)
                .await?;
            report.checked += page.len() as u64;
            for c in &page {
                if let Truth::Found { customer, .. } = view.truth(c) {
                    matched.insert(customer.id.clone());
                }
            }
            let found: Vec<Option<Drift>> = stream::iter(page)
                .map(|c| {
                    let (view, run_id) = (&view, run_id.as_str());
                    async move { self.check(&c, view, repair, run_id, listed_at).await }
                })
                .buffered(IN_FLIGHT)
                .try_collect()
                .await?;
            for d in found.into_iter().flatten() {
                report.drifted += 1;
                match d.repair.as_deref() {
                    Some("applied") => report.repaired += 1,
                    Some(r) if r.starts_with("failed") => report.repair_failed += 1,
                    _ => {}
                }
                report.drifts.push(d);
            }
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        report.stripe_only = view.only_in_stripe(&matched);
        metrics::reconciled(report.checked, report.drifted, report.repaired);
        tracing::info!(
            checked = report.checked,
            drifted = report.drifted,
            repaired = report.repaired,
            repair_failed = report.repair_failed,
            stripe_only = report.stripe_only,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "reconciled with Stripe"
        );
        Ok(report)
    }

    /// The drift of one customer (its billing confirmed gone by reading it),
    /// repaired when asked.
    async fn check(
        &self,
        c: &Customer,
        view: &StripeView,
        repair: bool,
        run_id: &str,
        listed_at: i64,
    ) -> Result<Option<Drift>, ReconcileError> {
        let truth = view.truth(c);
        let (kinds, stripe, _) = drift(c, &truth);
        if kinds.is_empty() {
            return Ok(None);
        }
        let gone_id = match truth {
            Truth::Gone => match &c.stripe_customer_id {
                // Created after the lists were read: not gone.
                Some(id) if self.is_live(id).await? => return Ok(None),
                other => other.clone(),
            },
            _ => None,
        };
        let mut found = Drift {
            customer: c.id,
            kinds,
            ours: Billing::of(c),
            stripe,
            repair: None,
        };
        if repair {
            let stamp = EventStamp {
                source: SOURCE,
                id: format!("{run_id}:{}", c.id),
                version: Some(stripe_events::version(listed_at, 0)),
            };
            let decide = |current: &Customer| match view.truth(current) {
                // Gone only as confirmed: the Stripe customer read just now.
                Truth::Gone if current.stripe_customer_id == gone_id => {
                    drift(current, &Truth::Gone).2
                }
                Truth::Gone => None,
                truth => drift(current, &truth).2,
            };
            let outcome = self
                .store
                .change_customer(&c.id, Some(&stamp), &Origin::system("reconcile"), decide)
                .await;
            found.repair = Some(match outcome {
                Ok(Applied::Changed) => "applied".to_owned(),
                Ok(other) => other.as_str().to_owned(),
                Err(e @ (StoreError::StripeCustomerClaimed | StoreError::Contention)) => {
                    format!("failed: {e}")
                }
                Err(e) => return Err(e.into()),
            });
        }
        Ok(Some(found))
    }

    /// Whether Stripe knows the customer `id` and it is not deleted.
    async fn is_live(&self, id: &str) -> Result<bool, ReconcileError> {
        Ok(self
            .payments
            .stripe_customer(id)
            .await?
            .is_some_and(|c| !c.deleted))
    }
}

/// Whether the scheduled function repairs: `RECONCILE_REPAIR` is `true` (or
/// `1`); absent or `false` (`0`) reports only.
pub fn repair_setting(value: Option<&str>) -> Result<bool, crate::config::ConfigError> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(_) => Err(crate::config::ConfigError::missing(
            "RECONCILE_REPAIR as true or false",
        )),
    }
}

/// The scheduled Lambda: each invocation (an EventBridge scheduled event,
/// its content ignored) reconciles every customer, repairing when
/// `RECONCILE_REPAIR=true`; logs each drift and returns the counts.
pub async fn run_lambda() -> Result<(), lambda_runtime::Error> {
    crate::telemetry::init();
    metrics::set_function(FUNCTION);
    let repair = repair_setting(std::env::var(REPAIR_SETTING).ok().as_deref())?;
    let deps = crate::startup::Dependencies::from_env().await?;
    let payments = deps
        .payments
        .ok_or_else(|| crate::config::ConfigError::missing("STRIPE_SECRET_KEY(_SECRET_ID)"))?;
    let reconciler = Reconciler::new(deps.store, payments);
    lambda_runtime::run(lambda_runtime::service_fn(
        |_: lambda_runtime::LambdaEvent<Value>| {
            let reconciler = &reconciler;
            async move {
                let report = reconciler.run(repair).await.inspect_err(|e| {
                    tracing::error!(error = %e, cause = ?std::error::Error::source(e), "reconciliation failed");
                })?;
                for d in &report.drifts {
                    let kinds: Vec<&str> = d.kinds.iter().map(|k| k.as_str()).collect();
                    tracing::warn!(
                        customer = %d.customer,
                        kinds = %kinds.join(","),
                        repair = d.repair.as_deref().unwrap_or("none"),
                        "billing drift"
                    );
                }
                Ok::<Value, lambda_runtime::Error>(serde_json::json!({
                    "checked": report.checked,
                    "drifted": report.drifted,
                    "repaired": report.repaired,
                    "repairFailed": report.repair_failed,
                    "stripeOnly": report.stripe_only,
                }))
            }
        },
    ))
    .await
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
        assert_eq!(drift(&c, &view.truth(&c)).0, vec![]);
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
        let (kinds, stripe, change) = drift(&c, &view.truth(&c));
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
        let (kinds, stripe, _) = drift(&c, &view.truth(&c));
        assert_eq!(stripe.stripe_subscription_id.as_deref(), Some("sub_b"));
        assert_eq!(kinds, vec![DriftKind::Status, DriftKind::StripeIds]);
    }

    #[test]
    fn a_missing_or_deleted_stripe_customer_is_billing_gone() {
        let c = ours(Some("cus_gone"), Some("sub_1"));
        for customers in [vec![], vec![stripe_customer("cus_gone", None, true)]] {
            let view = StripeView::new(customers, vec![]);
            assert_eq!(view.truth(&c), Truth::Gone);
            let (kinds, _, change) = drift(&c, &Truth::Gone);
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
        let view = StripeView::new(
            vec![
                stripe_customer("cus_other", Some(&other), false),
                stripe_customer("cus_ours", Some(&c.id), false),
            ],
            vec![sub("sub_1", "cus_ours", "active", 1, "pro")],
        );
        let (kinds, stripe, _) = drift(&c, &view.truth(&c));
        assert_eq!(kinds, vec![DriftKind::StripeIds]);
        assert_eq!(stripe.stripe_customer_id.as_deref(), Some("cus_ours"));
        // nobody names it: no billing to compare, no drift
        let lonely = ours(None, None);
        assert_eq!(view.truth(&lonely), Truth::Absent);
    }

    #[test]
    fn the_repair_setting_is_a_boolean() {
        assert!(!repair_setting(None).unwrap());
        assert!(!repair_setting(Some("false")).unwrap());
        assert!(repair_setting(Some("TRUE")).unwrap());
        assert!(repair_setting(Some("yes please")).is_err());
    }
}
