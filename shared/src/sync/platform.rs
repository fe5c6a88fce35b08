//! The platform's customer events: `customer.created` creates the customer with
//! its owner's membership in one transaction (so one customer per user holds
//! for them too), `customer.updated` changes its name and tier.
//!
//! Each event is applied once (by its EventBridge id, remembered 30 days), so
//! a replay is harmless. An event that breaks a rule (malformed detail, owner
//! already a member elsewhere, unknown customer) is refused with its reason and
//! nothing written: the function fails it, and Lambda sends it to the
//! dead-letter queue with that reason (`ErrorMessage`). The detail's schema is
//! `schemas/platform-customer-events.json`.
//!
//! **Order.** Both events may carry `version`, the platform's revision of the
//! customer (an integer from 1, growing with each change). The record keeps the
//! last one applied (`platformVersion`); an event whose version is at or below
//! it changes nothing and is counted `stale`. The check is the condition of the
//! transaction that writes the change (the record's revision as read, found
//! below the event's), so no interleaving lets an older revision win. An event
//! without `version` is applied as it comes and leaves the stored revision.
//!
//! **Who owns the tier.** Stripe's price metadata, whenever the customer's
//! current Stripe subscription names a tier (`tierSource = stripe`, written by
//! the Stripe sync): the platform's `tierName`/`tierID` are then ignored (its
//! name and revision still apply). Otherwise the platform sets the tier
//! (`tierSource = platform`). See [`TierSource`].
//!
//! **Deleted ids stay deleted.** A `customer.created` for a customer deleted
//! less than `TOMBSTONE_DAYS` (30) ago, or naming as owner a user removed by
//! `user.deleted` in that time, is refused (their tombstones, checked in the
//! creating transaction).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use std::num::NonZeroU64;

use crate::domain::{
    Customer, CustomerId, Member, NewCustomer, Role, StripeIdKind, SubscriptionStatus, TierName,
    TierSource, UserId, customer_name, now,
};
use crate::sender::ExpectedSender;
use crate::store::{Applied, CustomerChange, EventStamp, Store, StoreError};
use crate::telemetry::metrics;

/// `detail-type` of a new customer.
pub const CUSTOMER_CREATED: &str = "customer.created";
/// `detail-type` of a customer's new name or tier.
pub const CUSTOMER_UPDATED: &str = "customer.updated";
/// `source` of the platform's events in the applied-event ids and the metrics.
pub const SOURCE: &str = "platform";
/// The function (and `Function` metric dimension) handling them.
pub const FUNCTION: &str = "platform-customer";

/// Detail of `customer.created`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomerCreated {
    /// The new customer's UUID.
    #[serde(rename = "customerID")]
    pub customer_id: CustomerId,
    /// Display name, 1 to 200 characters.
    pub name: String,
    /// Tier name.
    pub tier_name: TierName,
    /// Tier UUID.
    #[serde(rename = "tierID")]
    pub tier_id: Uuid,
    /// The owner, who must belong to no customer yet.
    #[serde(rename = "ownerUserID")]
    pub owner_user_id: UserId,
    /// Subscription status; `incomplete` (no payment known yet) when absent.
    #[serde(default)]
    pub subscription_status: Option<SubscriptionStatus>,
    /// Creation time; the event's `time` when absent.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// The Stripe customer (`cus_...`), when billing exists already.
    #[serde(rename = "stripeCustomerID", default)]
    pub stripe_customer_id: Option<String>,
    /// The Stripe subscription (`sub_...`), when one exists.
    #[serde(rename = "stripeSubscriptionID", default)]
    pub stripe_subscription_id: Option<String>,
    /// The platform's revision of the customer (from 1).
    #[serde(default)]
    pub version: Option<Version>,
}

/// Detail of `customer.updated`: at least one of the name and the tier.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomerUpdated {
    /// The customer.
    #[serde(rename = "customerID")]
    pub customer_id: CustomerId,
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// New tier name (with `tierID`).
    #[serde(default)]
    pub tier_name: Option<TierName>,
    /// New tier UUID (with `tierName`).
    #[serde(rename = "tierID", default)]
    pub tier_id: Option<Uuid>,
    /// The platform's revision of the customer (from 1): stale at or below
    /// the one applied last.
    #[serde(default)]
    pub version: Option<Version>,
}

/// The platform's revision of a customer (`version`): an integer from 1 (a
/// JSON number with no fraction, as JSON Schema's `integer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "serde_json::Value")]
pub struct Version(NonZeroU64);

impl Version {
    /// The revision as a number.
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl TryFrom<serde_json::Value> for Version {
    type Error = String;

    fn try_from(value: serde_json::Value) -> Result<Self, Self::Error> {
        // Past 2^53 a JSON number with a fraction part is no exact integer.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        let whole = || {
            let f = value.as_f64()?;
            (f.fract() == 0.0 && (1.0..=EXACT).contains(&f)).then_some(f as u64)
        };
        value
            .as_u64()
            .or_else(whole)
            .and_then(NonZeroU64::new)
            .map(Self)
            .ok_or_else(|| "version must be an integer >= 1".to_owned())
    }
}

/// What an event led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformOutcome {
    /// The customer was created with its owner.
    Created,
    /// The customer was changed.
    Updated,
    /// Nothing to do: a replay, or no change.
    Unchanged,
    /// The event's `version` is at or below the customer's: nothing changed.
    Stale,
}

impl PlatformOutcome {
    /// The outcome in one word (logs and metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "applied",
            Self::Unchanged => "duplicate",
            Self::Stale => "stale",
        }
    }
}

/// Why an event was not applied.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The event breaks a rule; nothing was written. Retrying cannot help.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The table failed; the event is retried.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event did not come from the platform's rule (its `source` or
    /// `account` is not the platform's); nothing was done, and retrying
    /// cannot help.
    #[error("refused: {0}")]
    ForeignSender(String),
    /// Stripe could not be read; the event is retried.
    #[cfg(feature = "stripe")]
    #[error(transparent)]
    Stripe(#[from] crate::payments::PaymentsError),
}

/// The EventBridge envelope, as delivered to the function.
#[derive(Debug, Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    time: Option<DateTime<Utc>>,
    detail: serde_json::Value,
}

/// The platform's customer events over a store and, with the `stripe`
/// feature, Stripe: a customer created with its `stripeCustomerID` starts with
/// Stripe's current billing, read then.
#[derive(Debug, Clone)]
pub struct Platform {
    store: Store,
    #[cfg(feature = "stripe")]
    payments: Option<crate::payments::Payments>,
    sender: Option<ExpectedSender>,
}

impl Platform {
    /// The handlers over a store, without Stripe: a customer is created with
    /// the billing its event names.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            #[cfg(feature = "stripe")]
            payments: None,
            sender: None,
        }
    }

    /// Takes events only from `sender` (its `source` and `account`).
    pub fn with_sender(mut self, sender: ExpectedSender) -> Self {
        self.sender = Some(sender);
        self
    }

    /// The handlers over a store, reading Stripe's state of the customers
    /// created with a Stripe customer.
    #[cfg(feature = "stripe")]
    pub fn with_stripe(store: Store, payments: crate::payments::Payments) -> Self {
        Self {
            store,
            payments: Some(payments),
            sender: None,
        }
    }

    /// `customer` with Stripe's current billing of its Stripe customer, read
    /// now (the webhook's rule: `sync::stripe_events::current`), stamped with
    /// the read's version so that a webhook's older read cannot replace it.
    /// Refused when Stripe does not know that Stripe customer. Unchanged
    /// without Stripe or a Stripe customer.
    #[cfg(feature = "stripe")]
    async fn with_stripe_state(&self, mut customer: Customer) -> Result<Customer, PlatformError> {
        let (Some(payments), Some(cus)) = (&self.payments, customer.stripe_customer_id.clone())
        else {
            return Ok(customer);
        };
        let read_at = now();
        let Some(subscriptions) = payments.subscriptions_of(&cus).await? else {
            return Err(reject(format!(
                "stripeCustomerID {cus} is not a Stripe customer"
            )));
        };
        customer.billing_version = Some(super::stripe_events::read_version(read_at));
        if let Some(current) = super::stripe_events::current(subscriptions) {
            let change = current.change();
            customer = change.applied_to(&customer);
        }
        Ok(customer)
    }

    #[cfg(not(feature = "stripe"))]
    async fn with_stripe_state(&self, customer: Customer) -> Result<Customer, PlatformError> {
        Ok(customer)
    }

    /// Handles an event as EventBridge delivers it; counts it in `SyncEvents`.
    /// With an expected sender, an event from any other `source` or `account`
    /// is refused first ([`PlatformError::ForeignSender`], logged and counted).
    pub async fn on_event(
        &self,
        event: &serde_json::Value,
    ) -> Result<PlatformOutcome, PlatformError> {
        if let Some(sender) = &self.sender {
            sender
                .admit(FUNCTION, event)
                .map_err(PlatformError::ForeignSender)?;
        }
        let result = self.apply(event).await;
        let outcome = match &result {
            Ok(o) => o.as_str(),
            Err(PlatformError::Rejected(_)) => "rejected",
            Err(_) => "failed",
        };
        metrics::sync_event(SOURCE, outcome);
        result
    }

    /// One invocation of the function: `Ok` when the event was applied (or
    /// was a replay), or refused as not the platform's (logged and counted: a
    /// retry would be refused again, so Lambda does not retry it); an error
    /// (Lambda retries it, then sends it to the dead-letter queue with the
    /// reason) otherwise.
    pub async fn on_invocation(
        &self,
        event: &serde_json::Value,
    ) -> Result<(), lambda_runtime::Error> {
        match self.on_event(event).await {
            Ok(outcome) => {
                tracing::info!(outcome = outcome.as_str(), "platform event handled");
                Ok(())
            }
            Err(PlatformError::ForeignSender(_)) => Ok(()),
            Err(err) => {
                tracing::error!(error = %err, "platform event not applied");
                Err(lambda_runtime::Error::from(err))
            }
        }
    }

    async fn apply(&self, event: &serde_json::Value) -> Result<PlatformOutcome, PlatformError> {
        let env: Envelope = serde_json::from_value(event.clone())
            .map_err(|e| reject(format!("not an EventBridge event: {e}")))?;
        let stamp = EventStamp {
            source: SOURCE,
            id: env.id.clone(),
            version: None,
        };
        match env.detail_type.as_str() {
            CUSTOMER_CREATED => {
                let detail: CustomerCreated = serde_json::from_value(env.detail)
                    .map_err(|e| reject(format!("{CUSTOMER_CREATED} detail: {e}")))?;
                self.create(detail, env.time.unwrap_or_else(now), &stamp)
                    .await
            }
            CUSTOMER_UPDATED => {
                let detail: CustomerUpdated = serde_json::from_value(env.detail)
                    .map_err(|e| reject(format!("{CUSTOMER_UPDATED} detail: {e}")))?;
                self.update(detail, &stamp).await
            }
            other => Err(reject(format!(
                "detail-type {other:?} is not {CUSTOMER_CREATED} or {CUSTOMER_UPDATED}"
            ))),
        }
    }

    async fn create(
        &self,
        d: CustomerCreated,
        time: DateTime<Utc>,
        stamp: &EventStamp,
    ) -> Result<PlatformOutcome, PlatformError> {
        check_name(&d.name)?;
        if d.owner_user_id.is_nil() {
            return Err(reject("ownerUserID is the zero UUID".into()));
        }
        check_id(d.stripe_customer_id.as_deref(), StripeIdKind::Customer)?;
        check_id(
            d.stripe_subscription_id.as_deref(),
            StripeIdKind::Subscription,
        )?;
        let created_at = d.created_at.unwrap_or(time);
        let new = NewCustomer {
            id: d.customer_id,
            name: d.name.trim().to_owned(),
            tier_name: d.tier_name,
            tier_id: d.tier_id,
            subscription_status: d
                .subscription_status
                .unwrap_or(SubscriptionStatus::Incomplete),
            created_at,
            owner_user_id: d.owner_user_id,
            stripe_customer_id: d.stripe_customer_id,
            stripe_subscription_id: d.stripe_subscription_id,
        };
        let customer = self
            .with_stripe_state(Customer {
                platform_version: d.version.map(Version::get),
                tier_source: Some(TierSource::Platform),
                ..Customer::from(&new)
            })
            .await?;
        let owner = Member {
            role_id: Uuid::new_v4(),
            user_id: d.owner_user_id,
            role: Role::Owner,
            joined_at: created_at,
        };
        let created = self
            .store
            .create_customer_from_event(&customer, &owner, stamp, &stamp.origin())
            .await;
        match created {
            Ok(Applied::Duplicate) => Ok(PlatformOutcome::Unchanged),
            Ok(_) => Ok(PlatformOutcome::Created),
            Err(StoreError::CustomerExists) => {
                match self.store.find_customer(&customer.id).await? {
                    Some(c) if c.owner_user_id == customer.owner_user_id => {
                        Ok(PlatformOutcome::Unchanged)
                    }
                    _ => Err(reject(format!(
                        "customer {} exists with another owner",
                        customer.id
                    ))),
                }
            }
            Err(StoreError::AlreadyMember) => Err(reject(format!(
                "owner {} already belongs to a customer",
                customer.owner_user_id
            ))),
            Err(StoreError::StripeCustomerClaimed) => Err(reject(
                "stripeCustomerID belongs to another customer".into(),
            )),
            Err(StoreError::CustomerDeleted(at)) => Err(reject(format!(
                "customer {} was deleted at {at}; a deleted customer is not created again",
                customer.id
            ))),
            Err(StoreError::OwnerDeleted(at)) => Err(reject(format!(
                "owner {} was deleted (user.deleted) at {at}",
                customer.owner_user_id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn update(
        &self,
        d: CustomerUpdated,
        stamp: &EventStamp,
    ) -> Result<PlatformOutcome, PlatformError> {
        let tier = match (d.tier_name, d.tier_id) {
            (Some(name), Some(id)) => Some((name, id)),
            (None, None) => None,
            _ => return Err(reject("tierName and tierID go together".into())),
        };
        if let Some(name) = &d.name {
            check_name(name)?;
        }
        if d.name.is_none() && tier.is_none() {
            return Err(reject(
                "nothing to update: give name or tierName and tierID".into(),
            ));
        }
        let name = d.name.map(|n| n.trim().to_owned());
        let version = d.version.map(Version::get);
        let applied = self
            .store
            .change_customer(&d.customer_id, Some(stamp), &stamp.origin(), |c| {
                update_of(c, name.clone(), tier.clone(), version)
            })
            .await?;
        match applied {
            Applied::Changed => Ok(PlatformOutcome::Updated),
            Applied::Unchanged | Applied::Duplicate => Ok(PlatformOutcome::Unchanged),
            Applied::Stale => Ok(PlatformOutcome::Stale),
            Applied::NotFound => Err(reject(format!(
                "customer {} does not exist or is being deleted",
                d.customer_id
            ))),
        }
    }
}

/// What a `customer.updated` changes of the customer `c` as it is now: the
/// name; the tier, unless Stripe owns it ([`TierSource::platform_may_set`]),
/// then owned by the platform; the revision. `None` when that is nothing.
/// (Whether the revision is stale is the store's to decide, in the transaction.)
fn update_of(
    c: &Customer,
    name: Option<String>,
    tier: Option<(TierName, Uuid)>,
    version: Option<u64>,
) -> Option<CustomerChange> {
    let tier = tier.filter(|_| TierSource::platform_may_set(c.tier_source));
    let change = CustomerChange {
        name,
        tier_source: tier.as_ref().map(|_| TierSource::Platform),
        tier,
        platform_version: version,
        ..CustomerChange::default()
    };
    (change != CustomerChange::default()).then_some(change)
}

fn reject(reason: String) -> PlatformError {
    PlatformError::Rejected(reason)
}

fn check_name(name: &str) -> Result<(), PlatformError> {
    customer_name(name).map(drop).map_err(|e| reject(e.into()))
}

/// A Stripe id, when given, of Stripe's alphabet ([`StripeIdKind::check`]).
fn check_id(id: Option<&str>, kind: StripeIdKind) -> Result<(), PlatformError> {
    match id.map(|id| kind.check(id)) {
        Some(Err(invalid)) => Err(reject(invalid.message)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn customer(tier_source: Option<TierSource>) -> Customer {
        Customer {
            tier_source,
            ..Customer::sample()
        }
    }

    fn gold() -> Option<(TierName, Uuid)> {
        Some((TierName::parse("gold").unwrap(), Uuid::nil()))
    }

    #[test]
    fn the_platform_sets_a_tier_stripe_does_not_own() {
        for owner in [None, Some(TierSource::Platform)] {
            // GIVEN a customer whose tier Stripe does not name
            let c = customer(owner);
            // WHEN the platform moves its tier at revision 3
            let change = update_of(&c, None, gold(), Some(3)).unwrap();
            // THEN the tier moves, owned by the platform, with the revision
            assert_eq!(change.tier, gold());
            assert_eq!(change.tier_source, Some(TierSource::Platform));
            assert_eq!(change.platform_version, Some(3));
        }
    }

    #[test]
    fn a_tier_stripe_owns_is_left_to_stripe() {
        // GIVEN a customer whose current Stripe subscription names its tier
        let c = customer(Some(TierSource::Stripe));
        // WHEN the platform renames it and moves its tier
        let change = update_of(&c, Some("New".into()), gold(), Some(4)).unwrap();
        // THEN only the name and the revision apply
        assert_eq!(
            (
                change.name.as_deref(),
                change.tier.clone(),
                change.tier_source
            ),
            (Some("New"), None, None)
        );
        assert_eq!(change.platform_version, Some(4));
        // AND a tier alone, without a revision, is nothing to do
        assert_eq!(update_of(&c, None, gold(), None), None);
    }

    #[test]
    fn a_version_is_an_integer_from_1() {
        for ok in [json!(1), json!(42), json!(u64::MAX)] {
            let v: Version = serde_json::from_value(ok.clone()).unwrap();
            assert_eq!(json!(v.get()), ok);
        }
        let whole: Version = serde_json::from_value(json!(7.0)).unwrap();
        assert_eq!(whole.get(), 7);
        for bad in [
            json!(0),
            json!(0.0),
            json!(1e300),
            json!(-3),
            json!(2.5),
            json!("5"),
            json!(null),
            json!([1]),
        ] {
            let err = serde_json::from_value::<Version>(bad.clone()).unwrap_err();
            assert!(err.to_string().contains("version must be"), "{bad}: {err}");
        }
    }
}
