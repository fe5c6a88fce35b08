//! Seeding's side of Stripe: a fixture's subscription put in the status the
//! fixture names, so that Stripe (the truth for billing) agrees with the record
//! and the webhook, applying Stripe's word, leaves it as seeded.
//!
//! A new subscription is `active` (the seeded customers pay with a card that
//! works). `canceled` is Stripe's own cancellation
//! (`DELETE /v1/subscriptions/{id}`). The other statuses follow trials, failed
//! renewals and pauses that Stripe reaches only with time (test clocks in test
//! mode) and that localstripe does not reach at all: the local fake
//! (`infra/localstripe/serve.py`) sets them with
//! `POST /_config/subscriptions/{id}/status` and sends the event Stripe would.
//! That route exists only on the fake, on loopback: against any other base URL
//! those statuses are refused, nothing sent.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use stripe::{StripeError, StripeRequest};
use stripe_client_core::{RequestBuilder, StripeMethod};

use super::client::{Payments, PaymentsError};
use super::seeding::SubscriptionRef;
use crate::domain::{StripeIdKind, SubscriptionStatus};

/// Time the fake's status route may take, connection included.
const FAKE_TIMEOUT: Duration = Duration::from_secs(5);

impl Payments {
    /// Puts the subscription `id` (just created, `active`) in `status`:
    /// nothing for `active`, Stripe's cancellation for `canceled`, the local
    /// fake's status route for the rest (see the module).
    pub async fn put_subscription_in(
        &self,
        id: &str,
        status: SubscriptionStatus,
    ) -> Result<(), PaymentsError> {
        let id = super::client::checked(StripeIdKind::Subscription, id, "set subscription status")?;
        match status {
            SubscriptionStatus::Active => Ok(()),
            SubscriptionStatus::Canceled => {
                CancelSubscription { id }
                    .customize()
                    .send(&self.client().await.client)
                    .await
                    .map_err(|source| PaymentsError::Stripe {
                        operation: "cancel subscription",
                        source,
                    })?;
                Ok(())
            }
            other => self.fake_status(id, other).await,
        }
    }

    /// `POST {base}/_config/subscriptions/{id}/status` on the local fake.
    async fn fake_status(&self, id: &str, status: SubscriptionStatus) -> Result<(), PaymentsError> {
        let failed = |why: String| PaymentsError::Stripe {
            operation: "set subscription status",
            source: StripeError::ClientError(why),
        };
        let base = self.base_url.trim_end_matches('/');
        if !base.starts_with("http://") || crate::secure_url::secure_url(base).is_err() {
            return Err(failed(format!(
                "a subscription is put in status {} only on the local fake Stripe \
                 (plain http on loopback); Stripe reaches it with test clocks",
                status.as_str()
            )));
        }
        let request = http::Request::post(format!("{base}/_config/subscriptions/{id}/status"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(format!(
                "status={}",
                status.as_str()
            ))))
            .map_err(|e| failed(e.to_string()))?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        let answer = async {
            let response = client.request(request).await.map_err(|e| e.to_string())?;
            let code = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            match code.is_success() {
                true => Ok(()),
                false => Err(format!("{code}: {}", String::from_utf8_lossy(&body))),
            }
        };
        tokio::time::timeout(FAKE_TIMEOUT, answer)
            .await
            .map_err(|_| failed(format!("no answer within {FAKE_TIMEOUT:?}")))?
            .map_err(failed)
    }
}

/// `DELETE /v1/subscriptions/{id}`: Stripe cancels it at once.
struct CancelSubscription<'a> {
    id: &'a str,
}

impl StripeRequest for CancelSubscription<'_> {
    type Output = SubscriptionRef;

    fn build(&self) -> RequestBuilder {
        RequestBuilder::new(StripeMethod::Delete, format!("/subscriptions/{}", self.id))
    }
}
