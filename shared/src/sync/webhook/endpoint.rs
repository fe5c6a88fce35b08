//! The webhook endpoint itself (with the `stripe` feature: it reads Stripe).

use lambda_http::{Body, Request, Response};

use crate::domain::{Customer, CustomerState, Timestamp, now};
use crate::http::ApiError;
use crate::payments::{Payments, PaymentsError, StripeCustomer};
use crate::store::{Applied, CustomerChange, EventStamp, Store, StoreError};
use crate::telemetry::metrics;
use crate::telemetry::request::enveloped;

use super::{FUNCTION, MAX_BODY, SOURCE};
use crate::sync::reconcile::{Billing, Truth, drift};
use crate::sync::signature::{SignatureError, WebhookSecrets};
use crate::sync::stripe_events::{self, About, Malformed, StripeEvent, Subscription};

/// The webhook endpoint: the table, the endpoint secrets and Stripe.
#[derive(Clone)]
pub struct Webhooks {
    store: Store,
    secrets: WebhookSecrets,
    payments: Payments,
}

/// What became of one event; `as_str` is its outcome in the answer, the logs
/// and `SyncEvents`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The store's answer to the change.
    Store(Applied),
    /// An event type this service keeps nothing of.
    Ignored,
    /// The Stripe customer is another customer's already.
    Rejected,
    /// Sent for a connected account (Stripe Connect).
    ConnectAccount,
    /// Its `livemode` is not the mode of the configured key.
    LivemodeMismatch,
    /// It names a customer that does not exist yet: answered 409, Stripe
    /// retries.
    NotYetCreated,
}

impl Outcome {
    /// The outcome in one word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Store(applied) => applied.as_str(),
            Self::Ignored => "ignored",
            Self::Rejected => "rejected",
            Self::ConnectAccount => "connect_account",
            Self::LivemodeMismatch => "livemode_mismatch",
            Self::NotYetCreated => "customer_not_yet_created",
        }
    }
}

/// Why an event could not be applied now (answered 5xx; Stripe retries).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The table failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stripe could not be read.
    #[error(transparent)]
    Payments(#[from] PaymentsError),
}

impl From<ApplyError> for ApiError {
    fn from(err: ApplyError) -> Self {
        match err {
            ApplyError::Store(e) => e.into(),
            ApplyError::Payments(e) => ApiError::BillingUnavailable(Box::new(e)),
        }
    }
}

impl Webhooks {
    /// The endpoint over a store with these secrets, reading Stripe through
    /// `payments`.
    pub fn new(store: Store, secrets: WebhookSecrets, payments: Payments) -> Self {
        Self {
            store,
            secrets,
            payments,
        }
    }

    /// Serves one delivery: never fails, errors become error responses. Logged
    /// and counted like the admin requests (`Requests`, `Latency`), and each
    /// event in `SyncEvents` by outcome.
    pub async fn handle(&self, req: &Request) -> Response<Body> {
        enveloped(FUNCTION, req, |_| async {
            self.serve(req)
                .await
                .unwrap_or_else(ApiError::into_response)
        })
        .await
    }

    async fn serve(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        if req.method() != http::Method::POST {
            return Err(ApiError::MethodNotAllowed(vec![http::Method::POST]));
        }
        let body: &[u8] = req.body().as_ref();
        if body.len() > MAX_BODY {
            return Err(ApiError::Body {
                code: "body_too_large",
                message: "the body exceeds 256 KiB",
            });
        }
        let header = req
            .headers()
            .get("stripe-signature")
            .and_then(|v| v.to_str().ok());
        let secrets = self.secrets.current().await;
        if let Err(err) = secrets.verify(header, body, now().timestamp()) {
            metrics::sync_event(SOURCE, err.code());
            tracing::warn!(reason = err.code(), "webhook refused: {err}");
            return Err(refused(err));
        }
        let event = StripeEvent::parse(body).map_err(|err| {
            tracing::warn!(error = %err, "webhook refused");
            match err {
                Malformed::Id(invalid) => ApiError::Invalid(invalid),
                Malformed::Shape(_) => ApiError::Body {
                    code: "invalid_event",
                    message: "the body is not a Stripe event",
                },
            }
        })?;
        let outcome = self.apply(&event).await?;
        tracing::info!(
            event_id = %event.id,
            event_type = %event.kind,
            outcome = outcome.as_str(),
            "stripe event handled"
        );
        metrics::sync_event(SOURCE, outcome.as_str());
        if outcome == Outcome::NotYetCreated {
            return Err(ApiError::CustomerNotYetCreated);
        }
        Ok(crate::http::json(
            http::StatusCode::OK,
            &serde_json::json!({"received": true, "outcome": outcome.as_str()}),
        ))
    }

    /// Applies a verified event: Stripe's current state of the customer it is
    /// about (see the module).
    pub async fn apply(&self, event: &StripeEvent) -> Result<Outcome, ApplyError> {
        if event.account.is_some() {
            return Ok(Outcome::ConnectAccount);
        }
        let livemode = self.payments.livemode().await;
        if event.livemode.is_some_and(|live| live != livemode) {
            return Ok(Outcome::LivemodeMismatch);
        }
        let Some((stripe_customer, tagged)) = event.stripe_customer() else {
            return Ok(Outcome::Ignored);
        };
        let id = match self.store.customer_of_stripe(stripe_customer).await? {
            Some(id) => id,
            None => match tagged {
                Some(id) => match self.store.find_customer(&id).await? {
                    Some(c) if c.state == CustomerState::Active => id,
                    Some(_) => return Ok(Outcome::Store(Applied::NotFound)),
                    None => return Ok(Outcome::NotYetCreated),
                },
                None => return Ok(Outcome::Store(Applied::NotFound)),
            },
        };
        let mut stamp = EventStamp {
            source: SOURCE,
            id: event.id.clone(),
            version: None,
        };
        // A redelivery costs one read, not a Stripe call.
        if self.store.event_applied(&stamp).await? {
            return Ok(Outcome::Store(Applied::Duplicate));
        }
        let read_at = now();
        let state = match &event.about {
            About::CustomerDeleted { .. } => None,
            _ => self.payments.subscriptions_of(stripe_customer).await?,
        };
        stamp.version = Some(stripe_events::read_version(read_at));
        let current = state.map(stripe_events::current);
        let decide = |c: &Customer| billing_change(c, stripe_customer, current.as_ref(), read_at);
        match self
            .store
            .change_customer(&id, Some(&stamp), &stamp.origin(), decide)
            .await
        {
            Ok(applied) => Ok(Outcome::Store(applied)),
            // Stripe says this customer's Stripe customer is another's: a
            // redelivery cannot change that; the reconciliation reports it.
            Err(StoreError::StripeCustomerClaimed) => {
                tracing::warn!(customer = %id, "stripe customer claimed by another customer");
                Ok(Outcome::Rejected)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// What Stripe's state of `stripe_customer` makes of `c`: `current` is
/// `None` when Stripe no longer has the customer, else `Some` of its current
/// subscription (`Some(None)`: it has none). `None` for no change, and always
/// for a customer linked to another Stripe customer, or not linked to one that
/// is gone.
fn billing_change(
    c: &Customer,
    stripe_customer: &str,
    current: Option<&Option<Subscription>>,
    at: Timestamp,
) -> Option<CustomerChange> {
    match (c.stripe_customer_id.as_deref(), current) {
        (Some(ours), _) if ours != stripe_customer => None,
        (None, None) => None,
        (Some(_), None) => Some(CustomerChange::billing_gone(at)),
        (_, Some(subscription)) => {
            let customer = StripeCustomer::known(stripe_customer);
            let truth = Truth::Found {
                customer: &customer,
                subscription: subscription.as_ref(),
            };
            drift(&Billing::of(c), &truth).2
        }
    }
}

fn refused(err: SignatureError) -> ApiError {
    ApiError::Body {
        code: err.code(),
        message: match err {
            SignatureError::Missing => "the Stripe-Signature header is missing",
            SignatureError::Malformed | SignatureError::Mismatch => {
                "the Stripe-Signature header does not sign this body"
            }
            SignatureError::Expired => "the Stripe-Signature timestamp is too old or too new",
        },
    }
}
