//! `POST /api/billing/v1/webhooks/stripe`: Stripe's events, verified and
//! applied once, in order per customer (see [`super::stripe_events`]).
//!
//! Outside the admin auth: the `Stripe-Signature` header is the credential.
//! A missing, malformed, stale or wrong signature, or a body that is not an
//! event, is 400 in the error convention and changes nothing. An event is
//! answered 200 once it is applied, was applied before, is older than what
//! the customer shows, or is about a customer this service does not have
//! (counted as `unknown_customer`): Stripe retries only what failed here
//! (5xx), until it is applied.

use std::sync::Arc;
use std::time::Instant;

use lambda_http::{Body, Request, Response};
use tracing::Instrument;

use crate::api::{finish, request_ids, request_span};
use crate::config::ConfigError;
use crate::domain::now;
use crate::error::ApiError;
use crate::secrets::Refreshing;
use crate::startup::{Dependencies, InitError};
use crate::store::{Applied, EventStamp, Store, StoreError};
use crate::telemetry::metrics;

use super::signature::{Secrets, SignatureError};
use super::stripe_events::StripeEvent;

/// The route's path.
pub const PATH: &str = "/api/billing/v1/webhooks/stripe";
/// The function (and `Function` metric dimension) serving it.
pub const FUNCTION: &str = "stripe-webhook";
/// Largest body accepted: Stripe's events are a few KiB.
pub const MAX_BODY: usize = 256 * 1024;
/// `source` of Stripe's events in the applied-event ids and the metrics.
pub const SOURCE: &str = "stripe";

/// The endpoint secrets: given, or read from Secrets Manager and refreshed.
#[derive(Clone)]
pub enum WebhookSecrets {
    /// From the environment.
    Fixed(Secrets),
    /// From Secrets Manager, read again every `secrets::REFRESH_AFTER`.
    Refreshing(Arc<Refreshing<Secrets>>),
}

impl WebhookSecrets {
    async fn current(&self) -> Arc<Secrets> {
        match self {
            Self::Fixed(s) => Arc::new(s.clone()),
            Self::Refreshing(r) => r.get().await,
        }
    }
}

/// The webhook endpoint: the table and the endpoint secrets.
#[derive(Clone)]
pub struct Webhooks {
    store: Store,
    secrets: WebhookSecrets,
}

impl TryFrom<Dependencies> for Webhooks {
    type Error = InitError;

    /// Fails when the endpoint secret is not configured.
    fn try_from(deps: Dependencies) -> Result<Self, InitError> {
        let secrets = deps
            .webhook_secrets
            .ok_or_else(|| ConfigError::missing("STRIPE_WEBHOOK_SECRET(_SECRET_ID)"))?;
        Ok(Self::new(deps.store, secrets))
    }
}

impl Webhooks {
    /// The endpoint over a store with these secrets.
    pub fn new(store: Store, secrets: WebhookSecrets) -> Self {
        Self { store, secrets }
    }

    /// Serves one delivery: never fails, errors become error responses. Logged
    /// and counted like the admin requests (`Requests`, `Latency`), and each
    /// event in `SyncEvents` by outcome.
    pub async fn handle(&self, req: &Request) -> Response<Body> {
        let started = Instant::now();
        let ids = request_ids(req);
        let span = request_span(FUNCTION, &ids);
        let work = async {
            let response = match self.serve(req).await {
                Ok(response) => response,
                Err(err) => err.into_response(),
            };
            finish(FUNCTION, &response, started, &ids);
            response
        };
        metrics::in_function(FUNCTION, work.instrument(span)).await
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
            ApiError::Body {
                code: "invalid_event",
                message: "the body is not a Stripe event",
            }
        })?;
        let outcome = self.apply(&event).await?;
        tracing::info!(
            event_id = %event.id,
            event_type = %event.kind,
            outcome,
            "stripe event handled"
        );
        metrics::sync_event(SOURCE, outcome);
        Ok(crate::http::json(
            http::StatusCode::OK,
            &serde_json::json!({"received": true, "outcome": outcome}),
        ))
    }

    /// Applies a verified event; returns its outcome (`applied`, `duplicate`,
    /// `stale`, `unchanged`, `unknown_customer`, `ignored`, `rejected`).
    pub async fn apply(&self, event: &StripeEvent) -> Result<&'static str, StoreError> {
        let Some((stripe_customer, tagged)) = event.stripe_customer() else {
            return Ok("ignored");
        };
        let id = match self.store.customer_of_stripe(stripe_customer).await? {
            Some(id) => id,
            None => match tagged {
                Some(id) => id,
                None => return Ok(Applied::NotFound.as_str()),
            },
        };
        let stamp = EventStamp {
            source: SOURCE,
            id: event.id.clone(),
            version: Some(event.version()),
        };
        let at = now();
        match self
            .store
            .change_customer(&id, Some(&stamp), &stamp.origin(), |c| {
                event.change_for(c, at)
            })
            .await
        {
            Ok(applied) => Ok(applied.as_str()),
            // Stripe says this customer's Stripe customer is another's: a
            // redelivery cannot change that; the reconciliation reports it.
            Err(StoreError::StripeCustomerClaimed) => {
                tracing::warn!(customer = %id, "stripe customer claimed by another customer");
                Ok("rejected")
            }
            Err(e) => Err(e),
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

/// Runs the webhook Lambda.
pub async fn run_lambda() -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    metrics::set_function(FUNCTION);
    let hooks = Webhooks::try_from(Dependencies::from_env().await?)?;
    lambda_http::run(lambda_http::service_fn(|req: Request| {
        let hooks = &hooks;
        async move { Ok::<_, std::convert::Infallible>(hooks.handle(&req).await) }
    }))
    .await
}
