//! The Stripe side of a customer, through `async-stripe`: timeouts on every call,
//! retries only where Stripe says they are safe, an already-missing object counts
//! as done.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use stripe::{ApiErrorsCode, Client, ClientBuilder, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::plan::{CreatePlan, CreatePlanInlineProductParams, CreatePlanProduct};
use stripe_client_core::{RequestBuilder, StripeMethod};
use stripe_core::customer::{CreateCustomer, CreateCustomerInvoiceSettings, DeleteCustomer};

use crate::domain::{CustomerId, TierName};

/// Per-attempt timeout of every Stripe call.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per call; retries follow `Stripe-Should-Retry` and reuse one idempotency key.
const ATTEMPTS: u32 = 3;
/// The payment method localstripe and Stripe's test mode accept.
const TEST_PAYMENT_METHOD: &str = "pm_card_visa";

/// A Stripe call failed.
#[derive(Debug, thiserror::Error)]
#[error("stripe {operation} failed")]
pub struct PaymentsError {
    /// What was being done.
    pub operation: &'static str,
    /// Stripe's answer or the transport failure.
    #[source]
    pub source: StripeError,
}

/// What closing a customer's billing did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Closed {
    /// Subscriptions cancelled by this call.
    pub subscriptions_cancelled: usize,
    /// Whether this call deleted the Stripe customer (false: it was already gone).
    pub customer_deleted: bool,
    /// Stripe requests made.
    pub calls: usize,
}

/// The Stripe objects created for a seeded customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// `cus_...`
    pub customer: String,
    /// `sub_...`, for statuses that have a live subscription.
    pub subscription: Option<String>,
}

/// Stripe, at a configurable base URL.
#[derive(Clone)]
pub struct Payments {
    client: Client,
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payments").finish_non_exhaustive()
    }
}

impl Payments {
    /// A client for `base_url` (e.g. `https://api.stripe.com`) with a secret key.
    pub fn new(base_url: &str, secret_key: &SecretString) -> Result<Self, PaymentsError> {
        let client = ClientBuilder::new(secret_key.expose_secret())
            .url(base_url)
            .timeout(TIMEOUT)
            .request_strategy(RequestStrategy::ExponentialBackoff(ATTEMPTS))
            .build()
            .map_err(|source| PaymentsError {
                operation: "client setup",
                source,
            })?;
        Ok(Self { client })
    }

    /// Cancels the customer's live subscriptions, then deletes the customer.
    /// Objects already gone count as done.
    pub async fn close_customer(&self, customer: &str) -> Result<Closed, PaymentsError> {
        let mut closed = Closed::default();
        let listed = ListSubscriptions { customer }
            .customize()
            .send(&self.client)
            .await;
        closed.calls += 1;
        let subscriptions = match gone_is_none(listed, "list subscriptions")? {
            Some(list) => list.data,
            None => Vec::new(),
        };
        for subscription in subscriptions {
            let cancelled = CancelSubscription {
                id: &subscription.id,
            }
            .customize()
            .send(&self.client)
            .await;
            closed.calls += 1;
            if gone_is_none(cancelled, "cancel subscription")?.is_some() {
                closed.subscriptions_cancelled += 1;
            }
        }
        let deleted = DeleteCustomer::new(customer).send(&self.client).await;
        closed.calls += 1;
        closed.customer_deleted = gone_is_none(deleted, "delete customer")?.is_some();
        Ok(closed)
    }

    /// Creates a Stripe customer tagged `metadata[customerID]` and, when asked, a
    /// subscription on the tier's plan (created on first use).
    pub async fn create_customer(
        &self,
        id: &CustomerId,
        name: &str,
        tier: &TierName,
        subscribe: bool,
    ) -> Result<Created, PaymentsError> {
        let at = |operation| move |source| PaymentsError { operation, source };
        let customer = CreateCustomer::new()
            .name(name)
            .metadata(
                [("customerID".to_owned(), id.to_string())]
                    .into_iter()
                    .collect::<std::collections::HashMap<_, _>>(),
            )
            .payment_method(TEST_PAYMENT_METHOD)
            .invoice_settings(CreateCustomerInvoiceSettings {
                default_payment_method: Some(TEST_PAYMENT_METHOD.to_owned()),
                ..CreateCustomerInvoiceSettings::new()
            })
            .send(&self.client)
            .await
            .map_err(at("create customer"))?;
        if !subscribe {
            return Ok(Created {
                customer: customer.id.to_string(),
                subscription: None,
            });
        }
        let plan = self.plan_for(tier).await?;
        let subscription = CreateSubscription {
            customer: customer.id.as_str(),
            items: [SubscriptionItem { plan: &plan }],
        }
        .customize()
        .send(&self.client)
        .await
        .map_err(at("create subscription"))?;
        Ok(Created {
            customer: customer.id.to_string(),
            subscription: Some(subscription.id),
        })
    }

    /// The monthly plan of a tier, `tier-<name>`, created if missing.
    async fn plan_for(&self, tier: &TierName) -> Result<String, PaymentsError> {
        let id: String = format!("tier-{}", tier.as_str().to_lowercase().replace(' ', "-"));
        let created = CreatePlan::new(
            stripe_types::Currency::USD,
            stripe_shared::PlanInterval::Month,
        )
        .id(id.as_str())
        .amount(1000)
        .product(CreatePlanProduct::InlineProductParams(
            CreatePlanInlineProductParams::new(tier.as_str()),
        ))
        .customize()
        // One attempt: "already exists" is the common answer, and some
        // Stripe-compatible servers send it as a retryable 409.
        .request_strategy(RequestStrategy::Once)
        .send(&self.client)
        .await;
        match created {
            Ok(_) => Ok(id),
            // Already there from an earlier seed (Stripe: 400 resource_already_exists; localstripe: 409).
            Err(StripeError::Stripe(e, status))
                if e.code == Some(ApiErrorsCode::ResourceAlreadyExists) || status == 409 =>
            {
                Ok(id)
            }
            Err(source) => Err(PaymentsError {
                operation: "create plan",
                source,
            }),
        }
    }
}

/// `Ok(None)` for Stripe's `resource_missing` (or a 404), the value otherwise.
fn gone_is_none<T>(
    result: Result<T, StripeError>,
    operation: &'static str,
) -> Result<Option<T>, PaymentsError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(StripeError::Stripe(e, status))
            if e.code == Some(ApiErrorsCode::ResourceMissing) || status == 404 =>
        {
            Ok(None)
        }
        Err(source) => Err(PaymentsError { operation, source }),
    }
}

/// Only what this service reads of a subscription. Typed requests of our own over
/// async-stripe's request machinery (same retries and timeouts): Stripe's full
/// `Subscription` type rejects the leaner objects of Stripe-compatible fakes.
#[derive(Debug, miniserde::Deserialize)]
struct SubscriptionRef {
    id: String,
}

#[derive(Debug, miniserde::Deserialize)]
struct SubscriptionList {
    data: Vec<SubscriptionRef>,
}

/// `GET /v1/subscriptions?customer=...`: the customer's live subscriptions (Stripe
/// lists every status but canceled by default).
#[derive(serde::Serialize)]
struct ListSubscriptions<'a> {
    customer: &'a str,
}

impl StripeRequest for ListSubscriptions<'_> {
    type Output = SubscriptionList;

    fn build(&self) -> RequestBuilder {
        RequestBuilder::new(StripeMethod::Get, "/subscriptions").query(self)
    }
}

/// `DELETE /v1/subscriptions/{id}`: cancels at once.
struct CancelSubscription<'a> {
    id: &'a str,
}

impl StripeRequest for CancelSubscription<'_> {
    type Output = SubscriptionRef;

    fn build(&self) -> RequestBuilder {
        RequestBuilder::new(StripeMethod::Delete, format!("/subscriptions/{}", self.id))
    }
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
