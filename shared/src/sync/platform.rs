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

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use crate::domain::{
    CustomerId, Member, NewCustomer, Role, StripeIdKind, SubscriptionStatus, TierName, UserId,
    customer_name, now,
};
use crate::startup::Dependencies;
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
}

impl PlatformOutcome {
    /// The outcome in one word (logs and metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "applied",
            Self::Unchanged => "duplicate",
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

/// The platform's customer events over a store.
#[derive(Debug, Clone)]
pub struct Platform {
    store: Store,
}

impl From<Dependencies> for Platform {
    fn from(deps: Dependencies) -> Self {
        Self::new(deps.store)
    }
}

impl Platform {
    /// The handlers over a store.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Handles an event as EventBridge delivers it; counts it in `SyncEvents`.
    pub async fn on_event(
        &self,
        event: &serde_json::Value,
    ) -> Result<PlatformOutcome, PlatformError> {
        let result = self.apply(event).await;
        let outcome = match &result {
            Ok(o) => o.as_str(),
            Err(PlatformError::Rejected(_)) => "rejected",
            Err(PlatformError::Store(_)) => "failed",
        };
        metrics::sync_event(SOURCE, outcome);
        result
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
        let customer = NewCustomer {
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
        let owner = Member {
            role_id: Uuid::new_v4(),
            user_id: d.owner_user_id,
            role: Role::Owner,
            joined_at: created_at,
        };
        let created = self
            .store
            .create_customer_with_owner(&customer, Some(&owner), Some(stamp), &stamp.origin())
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
        let change = CustomerChange {
            name: d.name.map(|n| n.trim().to_owned()),
            tier,
            ..CustomerChange::default()
        };
        let applied = self
            .store
            .change_customer(&d.customer_id, Some(stamp), &stamp.origin(), |_| {
                Some(change.clone())
            })
            .await?;
        match applied {
            Applied::Changed => Ok(PlatformOutcome::Updated),
            Applied::Unchanged | Applied::Duplicate | Applied::Stale => {
                Ok(PlatformOutcome::Unchanged)
            }
            Applied::NotFound => Err(reject(format!(
                "customer {} does not exist or is being deleted",
                d.customer_id
            ))),
        }
    }
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

/// Runs the platform customer events Lambda (an EventBridge rule's target).
pub async fn run_lambda() -> Result<(), lambda_runtime::Error> {
    crate::telemetry::init();
    metrics::set_function(FUNCTION);
    let platform = Platform::from(Dependencies::from_env().await?);
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let platform = &platform;
            async move {
                match platform.on_event(&event.payload).await {
                    Ok(outcome) => {
                        tracing::info!(outcome = outcome.as_str(), "platform event handled");
                        Ok(())
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "platform event not applied");
                        Err(lambda_runtime::Error::from(err))
                    }
                }
            }
        },
    ))
    .await
}
