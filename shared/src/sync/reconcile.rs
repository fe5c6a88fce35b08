//! Reconciliation with Stripe: every active customer of ours compared with
//! what Stripe holds, drift reported and, when asked, repaired.
//!
//! **Stripe's truth** for a customer of ours: its Stripe customer is the one
//! whose id is our `stripeCustomerID`, else (we have none) the newest live
//! Stripe customer whose `metadata.customerID` is our id; its subscription is
//! that customer's newest one not ended (status neither `canceled` nor
//! `incomplete_expired`), else its newest.
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
//! fixed meanwhile (or linked to another Stripe customer) is left alone.
//!
//! Stripe customers that no customer of ours points at or names are no drift
//! of ours: they are counted (`stripe_only`), nothing more.
//!
//! **Memory: flat in the number of Stripe objects.** The two sides meet on the
//! Stripe customer id, but neither comes in that order: Stripe lists customers
//! and subscriptions newest first, the table's walk is in its own order, and
//! Stripe offers no lookup of many customers at once (one call per customer
//! would be 100,000 calls at 100,000 customers, past Stripe's rate limits and
//! Lambda's 15 minutes). So the comparison is a partitioned hash join spilled
//! to local disk (`spill`, Lambda's `/tmp`): three walks run at once, Stripe's
//! customers page by page, Stripe's subscriptions page by page (`status=all`)
//! and our customers page by page, and each object is reduced at once to the
//! fields compared (a row of tens of bytes; the page of full JSON is dropped)
//! and appended to the partition of its Stripe customer id. Customers of ours
//! without Stripe ids meet the Stripe customers naming them in a second set of
//! partitions keyed by our id, and join the first set once linked. Then each
//! partition is read back alone (about 1/64 of the rows) and compared. What
//! stays in memory is a page of each walk, the partitions' write buffers and
//! one partition, plus the drifts found (the report lists them); the same
//! Stripe list calls as before (one per 100 objects), and the disk holds about
//! 0.46 KB per customer while the run lasts. `make bench-scale`: peak RSS 19.2 MiB
//! at 10,000 Stripe subscriptions and 19.1 MiB at 100,000, against 222.9 MiB and
//! 2,116.6 MiB holding both lists.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::audit::Origin;
use crate::domain::{Customer, CustomerId, SubscriptionStatus, TierName, now};
use crate::payments::{Payments, PaymentsError, StripeCustomer};
use crate::store::{Applied, EventStamp, Store, StoreError};
use crate::sync::stripe_events::{self, Subscription};
use crate::telemetry::metrics;

mod drift;
mod spill;

pub use drift::{Billing, Drift, DriftKind, StripeView, Truth, drift, newest_named};
use spill::PARTITIONS;

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

/// Partition sets: Stripe customers, subscriptions and our linked customers
/// by Stripe customer id; Stripe customers naming one of ours and our
/// customers without Stripe ids by our id.
const STRIPE_CUSTOMERS: &str = "stripe-customers";
const SUBSCRIPTIONS: &str = "subscriptions";
const OURS: &str = "ours";
const NAMED: &str = "named";
const UNLINKED: &str = "unlinked";

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
    /// Bytes of compact rows written to the partitions on local disk.
    pub spilled_bytes: u64,
    /// The drifted customers, partition by partition.
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
    /// The partitions could not be written or read (local disk).
    #[error("reconcile partitions (temporary directory): {0}")]
    Spill(#[from] std::io::Error),
}

/// A Stripe customer in a partition: its id and whether it is deleted.
#[derive(Serialize, Deserialize)]
struct StripeCustomerRow(String, bool);

/// A subscription in a partition: what is compared of it.
#[derive(Serialize, Deserialize)]
struct SubscriptionRow {
    customer: String,
    id: String,
    status: SubscriptionStatus,
    created: i64,
    tier: Option<(TierName, Uuid)>,
}

/// A live Stripe customer naming a customer of ours: (our id, created, cus_...).
#[derive(Serialize, Deserialize)]
struct NamedRow(CustomerId, i64, String);

/// A customer of ours in a partition: its billing, and the Stripe customer it
/// is compared with (`via`: its own, or the one naming it; empty while unlinked).
#[derive(Serialize, Deserialize)]
struct OursRow {
    id: CustomerId,
    via: String,
    status: SubscriptionStatus,
    tier: TierName,
    tier_id: Uuid,
    stripe_customer: Option<String>,
    stripe_subscription: Option<String>,
}

impl OursRow {
    fn of(c: &Customer) -> Self {
        Self {
            id: c.id,
            via: c.stripe_customer_id.clone().unwrap_or_default(),
            status: c.subscription_status,
            tier: c.tier_name.clone(),
            tier_id: c.tier_id,
            stripe_customer: c.stripe_customer_id.clone(),
            stripe_subscription: c.stripe_subscription_id.clone(),
        }
    }

    fn billing(&self) -> Billing {
        Billing {
            subscription_status: Some(self.status),
            tier_name: Some(self.tier.clone()),
            tier_id: Some(self.tier_id),
            stripe_customer_id: self.stripe_customer.clone(),
            stripe_subscription_id: self.stripe_subscription.clone(),
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

    /// Walks Stripe's customers and subscriptions (every page) and every
    /// active customer of ours, and reports the drifted; with `repair`,
    /// repairs them. Emits the `Reconcile*` metrics. Memory stays flat in the
    /// number of Stripe objects (see the module).
    pub async fn run(&self, repair: bool) -> Result<Report, ReconcileError> {
        let started = Instant::now();
        let run_id = Uuid::new_v4().simple().to_string();
        let listed_at = now().timestamp();
        let dir = spill::Dir::create(&run_id)?;
        let (
            (stripe_customers, named_bytes),
            (subscriptions, malformed, sub_bytes),
            (checked, our_bytes),
        ) = tokio::try_join!(
            self.spill_stripe_customers(&dir),
            self.spill_subscriptions(&dir),
            self.spill_ours(&dir),
        )?;
        let linked_bytes = link_by_name(&dir)?;
        let mut report = Report {
            checked,
            stripe_customers,
            stripe_subscriptions: subscriptions,
            stripe_malformed: malformed,
            spilled_bytes: named_bytes + sub_bytes + our_bytes + linked_bytes,
            ..Report::default()
        };
        for p in 0..PARTITIONS {
            let customers: Vec<StripeCustomerRow> = dir.read(STRIPE_CUSTOMERS, p)?;
            let subscriptions: Vec<SubscriptionRow> = dir.read(SUBSCRIPTIONS, p)?;
            let ours: Vec<OursRow> = dir.read(OURS, p)?;
            let view = StripeView::of(
                customers
                    .into_iter()
                    .map(|StripeCustomerRow(id, deleted)| StripeCustomer {
                        id,
                        name: None,
                        metadata: HashMap::new(),
                        deleted,
                        created: 0,
                    })
                    .collect(),
                subscriptions
                    .into_iter()
                    .map(|s| {
                        let sub = Subscription {
                            id: s.id,
                            stripe_customer: s.customer,
                            status: s.status,
                            tier: s.tier,
                            customer: None,
                            created: s.created,
                        };
                        (s.created, sub)
                    })
                    .collect(),
            );
            let matched: HashSet<String> = ours
                .iter()
                .filter(|o| matches!(view.truth(&o.via), Truth::Found { .. }))
                .map(|o| o.via.clone())
                .collect();
            report.stripe_only += view.only_in_stripe(&matched);
            let found: Vec<Option<Drift>> = stream::iter(ours)
                .map(|o| {
                    let (view, run_id) = (&view, run_id.as_str());
                    async move { self.check(&o, view, repair, run_id, listed_at).await }
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
        }
        metrics::reconciled(report.checked, report.drifted, report.repaired);
        tracing::info!(
            checked = report.checked,
            drifted = report.drifted,
            repaired = report.repaired,
            repair_failed = report.repair_failed,
            stripe_only = report.stripe_only,
            spilled_bytes = report.spilled_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "reconciled with Stripe"
        );
        Ok(report)
    }

    /// Stripe's customers, page by page, into their partitions (and those
    /// naming a customer of ours into the names' partitions): how many were
    /// listed, and the bytes written.
    async fn spill_stripe_customers(&self, dir: &spill::Dir) -> Result<(u64, u64), ReconcileError> {
        let (mut customers, mut names) = (dir.writer(STRIPE_CUSTOMERS)?, dir.writer(NAMED)?);
        let (mut listed, mut after) = (0, None);
        loop {
            let page = self.payments.customers_page(after.as_deref()).await?;
            for c in page.data {
                listed += 1;
                let named = c.metadata.get("customerID").map(|id| CustomerId::parse(id));
                if let (false, Some(Ok(named))) = (c.deleted, named) {
                    names.put(
                        &named.to_string(),
                        &NamedRow(named, c.created, c.id.clone()),
                    )?;
                }
                customers.put(&c.id, &StripeCustomerRow(c.id.clone(), c.deleted))?;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok((listed, customers.finish()? + names.finish()?))
    }

    /// Stripe's subscriptions in any status, page by page, into their
    /// customers' partitions: how many were listed, how many could not be
    /// read, and the bytes written.
    async fn spill_subscriptions(
        &self,
        dir: &spill::Dir,
    ) -> Result<(u64, u64, u64), ReconcileError> {
        let mut rows = dir.writer(SUBSCRIPTIONS)?;
        let (mut listed, mut malformed, mut after) = (0, 0, None);
        loop {
            let page = self.payments.subscriptions_page(after.as_deref()).await?;
            for raw in page.data {
                listed += 1;
                let created = raw.get("created").and_then(Value::as_i64).unwrap_or(0);
                let Ok(sub) = stripe_events::subscription(raw) else {
                    malformed += 1;
                    continue;
                };
                let row = SubscriptionRow {
                    customer: sub.stripe_customer,
                    id: sub.id,
                    status: sub.status,
                    created,
                    tier: sub.tier,
                };
                rows.put(&row.customer, &row)?;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok((listed, malformed, rows.finish()?))
    }

    /// Our active customers, page by page, into the partition of their Stripe
    /// customer (those without one into the names' partitions): how many, and
    /// the bytes written.
    async fn spill_ours(&self, dir: &spill::Dir) -> Result<(u64, u64), ReconcileError> {
        let (mut linked, mut unlinked) = (dir.writer(OURS)?, dir.writer(UNLINKED)?);
        let (mut walked, mut after) = (0, None::<String>);
        loop {
            let (page, next) = self
                .store
                .scan_customers(after.as_deref(), SCAN_PAGE)
                .await?;
            walked += page.len() as u64;
            for c in &page {
                match &c.stripe_customer_id {
                    Some(stripe_id) => linked.put(stripe_id, &OursRow::of(c))?,
                    None => unlinked.put(&c.id.to_string(), &OursRow::of(c))?,
                }
            }
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok((walked, linked.finish()? + unlinked.finish()?))
    }

    /// The drift of one customer (its billing confirmed gone by reading it),
    /// repaired when asked.
    async fn check(
        &self,
        o: &OursRow,
        view: &StripeView,
        repair: bool,
        run_id: &str,
        listed_at: i64,
    ) -> Result<Option<Drift>, ReconcileError> {
        let ours = o.billing();
        let truth = view.truth(&o.via);
        let (kinds, stripe, _) = drift(&ours, &truth);
        if kinds.is_empty() {
            return Ok(None);
        }
        // Created after the lists were read: not gone.
        if truth == Truth::Gone && self.is_live(&o.via).await? {
            return Ok(None);
        }
        let mut found = Drift {
            customer: o.id,
            kinds,
            ours,
            stripe,
            repair: None,
        };
        if repair {
            let stamp = EventStamp {
                source: SOURCE,
                id: format!("{run_id}:{}", o.id),
                version: Some(stripe_events::version(listed_at, 0)),
            };
            // Decided again from the record as it is now, while it still
            // points where it did (gone only as confirmed just now).
            let decide = |current: &Customer| {
                (current.stripe_customer_id == o.stripe_customer)
                    .then(|| drift(&Billing::of(current), &truth).2)
                    .flatten()
            };
            let outcome = self
                .store
                .change_customer(&o.id, Some(&stamp), &Origin::system("reconcile"), decide)
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

/// Links the customers of ours without Stripe ids to the newest live Stripe
/// customer naming them, partition by partition, appending them to the
/// partitions of that Stripe customer; those nobody names have no billing to
/// compare. The bytes written.
fn link_by_name(dir: &spill::Dir) -> Result<u64, ReconcileError> {
    let mut linked = dir.writer(OURS)?;
    for p in 0..PARTITIONS {
        let named: Vec<NamedRow> = dir.read(NAMED, p)?;
        let newest = newest_named(named.into_iter().map(|NamedRow(id, t, s)| (id, t, s)));
        for mut o in dir.read::<OursRow>(UNLINKED, p)? {
            if let Some(stripe_id) = newest.get(&o.id) {
                o.via = stripe_id.clone();
                linked.put(stripe_id, &o)?;
            }
        }
    }
    Ok(linked.finish()?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repair_setting_is_a_boolean() {
        assert!(!repair_setting(None).unwrap());
        assert!(!repair_setting(Some("false")).unwrap());
        assert!(repair_setting(Some("TRUE")).unwrap());
        assert!(repair_setting(Some("yes please")).is_err());
    }
}
