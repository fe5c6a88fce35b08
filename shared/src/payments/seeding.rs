//! Seeding's side of Stripe (the `seed` feature, which no function links): a
//! fixture's Stripe customer and its subscription on the tier's plan, so that
//! the demo data and the tests' fixtures have Stripe objects behind them.

use std::collections::HashMap;

use stripe::{ApiErrorsCode, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::plan::{CreatePlan, CreatePlanInlineProductParams, CreatePlanProduct};
use stripe_client_core::{RequestBuilder, StripeMethod};
use stripe_core::customer::{CreateCustomer, CreateCustomerInvoiceSettings};
use uuid::Uuid;

use super::client::{Payments, PaymentsError};
use crate::domain::{CustomerId, TierName};

/// The payment method localstripe and Stripe's test mode accept.
const TEST_PAYMENT_METHOD: &str = "pm_card_visa";

/// The Stripe objects created for a seeded customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// `cus_...`
    pub customer: String,
    /// `sub_...`, for statuses that have a live subscription.
    pub subscription: Option<String>,
}

impl Payments {
    /// Creates a Stripe customer tagged `metadata[customerID]` and, when asked, a
    /// subscription on the tier's plan (created on first use, carrying the
    /// tier in its metadata, so that the subscription names its tier).
    pub async fn create_customer(
        &self,
        id: &CustomerId,
        name: &str,
        tier: &TierName,
        tier_id: Uuid,
        subscribe: bool,
    ) -> Result<Created, PaymentsError> {
        let at = |operation| move |source| PaymentsError::Stripe { operation, source };
        let customer = CreateCustomer::new()
            .name(name)
            .metadata(
                [("customerID".to_owned(), id.to_string())]
                    .into_iter()
                    .collect::<HashMap<_, _>>(),
            )
            .payment_method(TEST_PAYMENT_METHOD)
            .invoice_settings(CreateCustomerInvoiceSettings {
                default_payment_method: Some(TEST_PAYMENT_METHOD.to_owned()),
                ..CreateCustomerInvoiceSettings::new()
            })
            .send(&self.client().await.client)
            .await
            .map_err(at("create customer"))?;
        if !subscribe {
            return Ok(Created {
                customer: customer.id.to_string(),
                subscription: None,
            });
        }
        let plan = self.plan_for(tier, tier_id).await?;
        let subscription = CreateSubscription {
            customer: customer.id.as_str(),
            items: [SubscriptionItem { plan: &plan }],
        }
        .customize()
        .send(&self.client().await.client)
        .await
        .map_err(at("create subscription"))?;
        Ok(Created {
            customer: customer.id.to_string(),
            subscription: Some(subscription.id),
        })
    }

    /// The monthly plan of a tier, `tier-<name>-<tier UUID>`, created if
    /// missing with `metadata[tierName]` and `metadata[tierID]` (what
    /// `sync::stripe_events` reads a subscription's tier from). The UUID is in
    /// the id so that a plan's metadata is never another tier's.
    async fn plan_for(&self, tier: &TierName, tier_id: Uuid) -> Result<String, PaymentsError> {
        let id = format!(
            "tier-{}-{}",
            tier.as_str().to_lowercase().replace(' ', "-"),
            tier_id.simple()
        );
        let metadata: HashMap<String, String> = [
            ("tierName".to_owned(), tier.as_str().to_owned()),
            ("tierID".to_owned(), tier_id.to_string()),
        ]
        .into_iter()
        .collect();
        let created = CreatePlan::new(
            stripe_types::Currency::USD,
            stripe_shared::PlanInterval::Month,
        )
        .id(id.as_str())
        .metadata(metadata)
        .amount(1000)
        .product(CreatePlanProduct::InlineProductParams(
            CreatePlanInlineProductParams::new(tier.as_str()),
        ))
        .customize()
        // One attempt: "already exists" is the common answer, and some
        // Stripe-compatible servers send it as a retryable 409.
        .request_strategy(RequestStrategy::Once)
        .send(&self.client().await.client)
        .await;
        match created {
            Ok(_) => Ok(id),
            // Already there from an earlier seed (Stripe: 400 resource_already_exists; localstripe: 409).
            Err(StripeError::Stripe(e, status))
                if e.code == Some(ApiErrorsCode::ResourceAlreadyExists) || status == 409 =>
            {
                Ok(id)
            }
            Err(source) => Err(PaymentsError::Stripe {
                operation: "create plan",
                source,
            }),
        }
    }
}

/// Only what this service reads of a subscription. Typed requests of our own over
/// async-stripe's request machinery (same retries and timeouts): Stripe's full
/// `Subscription` type rejects the leaner objects of Stripe-compatible fakes.
#[derive(Debug, miniserde::Deserialize)]
pub(super) struct SubscriptionRef {
    pub(super) id: String,
}

/// `POST /v1/subscriptions` on one plan.
#[derive(serde::Serialize)]
struct CreateSubscription<'a> {
    customer: &'a str,
    items: [SubscriptionItem<'a>; 1],
}

#[derive(serde::Serialize)]
struct SubscriptionItem<'a> {
    plan: &'a str,
}

impl StripeRequest for CreateSubscription<'_> {
    type Output = SubscriptionRef;

    fn build(&self) -> RequestBuilder {
        RequestBuilder::new(StripeMethod::Post, "/subscriptions").form(self)
    }
}
