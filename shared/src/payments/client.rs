//! The Stripe client and its calls: each bounded by a deadline (the attempts
//! that fit before it), retried only where Stripe says it is safe; a missing
//! object counts as done. The deletion cascade's one call, closing a customer,
//! is here.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use stripe::{ApiErrorsCode, Client, ClientBuilder, RequestStrategy, StripeError, StripeRequest};
use stripe_core::customer::DeleteCustomer;

use super::closed::Closed;
use crate::deadline::Deadline;
use crate::domain::StripeIdKind;
use crate::secrets::{Refreshing, SecretError, SecretSource};
use crate::secure_url::{InsecureUrl, secure_url};

/// Timeout of one attempt of a Stripe call.
///
/// Sized for the DELETE request's budget (`cascade::DEFAULT_BUDGET`, 20 s): the
/// worst case of one call, every attempt running into its timeout plus the backoff
/// sleeps async-stripe takes between attempts (1 s, then 2 s), is
/// 3 × 5 s + 3 s = 18 s, inside a fresh budget. A healthy Stripe answers in well
/// under a second, so 5 s only cuts off an attempt that is stuck. Calls made later
/// in a cascade get fewer or shorter attempts ([`Attempts::within`]), never one
/// that outlasts the deadline. (It was 10 s: one call alone could take
/// 3 × 10 s + 3 s = 33 s, past the function's 29 s timeout.)
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per call at most; retries follow `Stripe-Should-Retry` and reuse one
/// idempotency key.
pub const ATTEMPTS: u32 = 3;
/// The shortest attempt worth starting: with less time than this left for it, a
/// call (or a retry) is not started at all.
pub const MIN_ATTEMPT: Duration = Duration::from_secs(1);

/// A Stripe call failed, or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    /// Stripe answered with an error, or the transport failed (every attempt
    /// timing out included).
    #[error("stripe {operation} failed")]
    Stripe {
        /// What was being done.
        operation: &'static str,
        /// Stripe's answer or the transport failure.
        #[source]
        source: StripeError,
    },
    /// Not even one attempt of the call fits before the deadline; nothing was sent.
    #[error("stripe {operation} not attempted: no time left before the deadline")]
    OutOfTime {
        /// What was to be done.
        operation: &'static str,
    },
    /// The base URL is not HTTPS (plain HTTP is only for a fake Stripe on loopback).
    #[error("the Stripe base URL (STRIPE_API_BASE) {0}")]
    InsecureBaseUrl(#[from] InsecureUrl),
    /// An id that is not of Stripe's alphabet was to go into a request; nothing
    /// was sent.
    #[error("stripe {operation} not attempted: {reason}")]
    InvalidId {
        /// What was to be done.
        operation: &'static str,
        /// What is wrong with the id.
        reason: String,
    },
}

/// `id` when it is a Stripe id of `kind`, else the error refusing `operation`.
pub(super) fn checked<'a>(
    kind: StripeIdKind,
    id: &'a str,
    operation: &'static str,
) -> Result<&'a str, PaymentsError> {
    kind.check(id).map_err(|invalid| PaymentsError::InvalidId {
        operation,
        reason: invalid.message,
    })
}

impl PaymentsError {
    /// Whether the call ran out of time: every attempt timed out, or none fitted
    /// before the deadline.
    pub fn timed_out(&self) -> bool {
        matches!(
            self,
            Self::OutOfTime { .. }
                | Self::Stripe {
                    source: StripeError::Timeout,
                    ..
                }
        )
    }
}

/// How one Stripe call is attempted with the time left before a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    /// Attempts at most (async-stripe stops earlier where Stripe says not to retry).
    pub count: u32,
    /// Timeout of each attempt.
    pub timeout: Duration,
}

impl Attempts {
    /// The most attempts, up to [`ATTEMPTS`], whose worst case (every attempt
    /// running into its timeout, plus the backoff sleeps between them) ends within
    /// `remaining`; each gets up to [`ATTEMPT_TIMEOUT`] and at least [`MIN_ATTEMPT`].
    /// `None` when not even one attempt of [`MIN_ATTEMPT`] fits.
    pub fn within(remaining: Duration) -> Option<Self> {
        (1..=ATTEMPTS).rev().find_map(|count| {
            let for_attempts = remaining.checked_sub(backoff_before(count))?;
            let timeout = (for_attempts / count).min(ATTEMPT_TIMEOUT);
            (timeout >= MIN_ATTEMPT).then_some(Self { count, timeout })
        })
    }

    /// The longest the call can take: every attempt timing out, plus the sleeps.
    pub fn worst_case(self) -> Duration {
        self.timeout * self.count + backoff_before(self.count)
    }
}

/// The sleeps async-stripe's `ExponentialBackoff` takes over `attempts` attempts:
/// 2^(k-1) s before the (k+1)-th attempt (a unit test holds it to the library).
fn backoff_before(attempts: u32) -> Duration {
    (1..attempts)
        .map(|k| Duration::from_secs(1 << (k - 1)))
        .sum()
}

/// A Stripe client and the mode of its key.
pub(super) struct Keyed {
    pub(super) client: Client,
    /// Whether the key is a live-mode key (`sk_live_…`, `rk_live_…`), whose
    /// events carry `livemode: true`; test-mode keys' events carry `false`.
    livemode: bool,
}

/// A Stripe client for `base_url` (which must be HTTPS unless on loopback).
fn client(base_url: &str, secret_key: &SecretString) -> Result<Keyed, PaymentsError> {
    secure_url(base_url)?;
    let key = secret_key.expose_secret();
    let client = ClientBuilder::new(key)
        .url(base_url)
        .timeout(ATTEMPT_TIMEOUT)
        .request_strategy(RequestStrategy::ExponentialBackoff(ATTEMPTS))
        .build()
        .map_err(|source| PaymentsError::Stripe {
            operation: "client setup",
            source,
        })?;
    Ok(Keyed {
        client,
        livemode: key.get(2..8) == Some("_live_"),
    })
}

/// Stripe, at a configurable base URL.
#[derive(Clone)]
pub struct Payments {
    client: Clients,
    /// Stripe's base URL (seeding reaches a local fake's `/_config/` routes).
    #[cfg(feature = "seed")]
    pub(super) base_url: Arc<str>,
}

/// The Stripe client: built once from a key, or from a secret read again on
/// its TTL so that a rotated key is picked up without a cold start.
#[derive(Clone)]
enum Clients {
    Fixed(Arc<Keyed>),
    Secret(Arc<Refreshing<Keyed>>),
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payments").finish_non_exhaustive()
    }
}

impl Payments {
    /// A client for `base_url` (e.g. `https://api.stripe.com`) with a secret key.
    /// The URL must be HTTPS unless it is on loopback (a fake Stripe in tests).
    pub fn new(base_url: &str, secret_key: &SecretString) -> Result<Self, PaymentsError> {
        Ok(Self {
            client: Clients::Fixed(Arc::new(client(base_url, secret_key)?)),
            #[cfg(feature = "seed")]
            base_url: base_url.into(),
        })
    }

    /// A client for `base_url` whose key is `source`, read now and again every
    /// `ttl` ([`crate::secrets::REFRESH_AFTER`] in the functions); a key that fails to
    /// read or build later keeps the current client.
    pub async fn from_secret(
        base_url: &str,
        source: SecretSource,
        secrets: aws_sdk_secretsmanager::Client,
        ttl: Duration,
    ) -> Result<Self, SecretError> {
        let url = base_url.to_owned();
        let clients = Refreshing::load(
            source,
            secrets,
            Box::new(move |key| client(&url, key).map_err(|e| e.to_string())),
            ttl,
        )
        .await?;
        Ok(Self {
            client: Clients::Secret(Arc::new(clients)),
            #[cfg(feature = "seed")]
            base_url: base_url.into(),
        })
    }

    /// Whether the current key is a live-mode key (else a test-mode one).
    pub async fn livemode(&self) -> bool {
        self.client().await.livemode
    }

    /// The current client.
    pub(super) async fn client(&self) -> Arc<Keyed> {
        match &self.client {
            Clients::Fixed(client) => client.clone(),
            Clients::Secret(clients) => clients.get().await,
        }
    }

    /// Deletes the Stripe customer within `deadline`; one call. Stripe's
    /// customer deletion also cancels the customer's active subscriptions at
    /// once (API reference, "Delete a customer"), so nothing is listed or
    /// cancelled first. A customer Stripe no longer knows (an earlier run
    /// deleted it) counts as done.
    pub async fn close_customer(
        &self,
        customer: &str,
        deadline: Deadline,
    ) -> Result<Closed, PaymentsError> {
        let mut closed = Closed::default();
        let customer = checked(StripeIdKind::Customer, customer, "delete customer")?;
        let deleted = self
            .send(
                &DeleteCustomer::new(customer),
                deadline,
                "delete customer",
                &mut closed.calls,
            )
            .await?;
        closed.customer_deleted = deleted.is_some();
        Ok(closed)
    }

    /// Sends one request with the attempts that fit before `deadline`; `Ok(None)`
    /// when Stripe answers that the object is missing. Counts the call in `calls`
    /// when it is sent.
    pub(super) async fn send<R>(
        &self,
        request: &R,
        deadline: Deadline,
        operation: &'static str,
        calls: &mut usize,
    ) -> Result<Option<R::Output>, PaymentsError>
    where
        R: StripeRequest,
        R::Output: miniserde::Deserialize,
    {
        let attempts =
            Attempts::within(deadline.remaining()).ok_or(PaymentsError::OutOfTime { operation })?;
        *calls += 1;
        let sent = request
            .customize()
            .request_strategy(RequestStrategy::ExponentialBackoff(attempts.count))
            .timeout(attempts.timeout)
            .send(&self.client().await.client)
            .await;
        let result = gone_is_none(sent, operation);
        crate::telemetry::metrics::stripe_call(operation, result.is_ok());
        result
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
        Err(source) => Err(PaymentsError::Stripe { operation, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stripe_client_core::Outcome;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn stripe_must_be_https_outside_loopback() {
        for ok in [
            "https://api.stripe.com",
            "https://api.stripe.com/",
            "HTTPS://api.stripe.com",
            "https://stripe.internal:8443",
            "http://127.0.0.1:8420",
            "http://127.0.0.1",
            "http://127.8.9.10:1234",
            "http://[::1]:8420",
            "http://localhost:8420",
            "http://LocalHost:8420/",
        ] {
            assert!(secure_url(ok).is_ok(), "{ok} is accepted");
        }
        for bad in [
            "http://api.stripe.com",
            "http://10.0.0.5:8420",
            "http://192.168.1.1",
            "http://[::2]:8420",
            "http://localhost.example.com",
            "http://localhost@evil.example.com",
            "http://0.0.0.0:8420",
            "ftp://api.stripe.com",
            "api.stripe.com",
            "https://",
            "",
            "not a url",
        ] {
            let err = PaymentsError::from(secure_url(bad).unwrap_err());
            assert!(err.to_string().contains("https://"), "{err}");
        }
        let key = SecretString::from("sk_test_x");
        let err = Payments::new("http://api.stripe.com", &key).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the Stripe base URL (STRIPE_API_BASE) must be an https:// URL; plain http is \
             accepted only on loopback (127.0.0.1, ::1, localhost), got scheme \"http\" and \
             host \"api.stripe.com\""
        );
        assert!(Payments::new("https://api.stripe.com", &key).is_ok());
        assert!(Payments::new("http://127.0.0.1:8420", &key).is_ok());
    }

    #[test]
    fn backoff_arithmetic_matches_async_stripe() {
        // The sleeps async-stripe takes between the attempts of one call, as its
        // own strategy decides them for a retryable failure.
        for count in 1..=ATTEMPTS {
            let strategy = RequestStrategy::ExponentialBackoff(count);
            let mut slept = Duration::ZERO;
            assert_eq!(strategy.test(None, None, 0), Outcome::Continue(None));
            for retry in 1..count {
                match strategy.test(Some(500), Some(true), retry) {
                    Outcome::Continue(sleep) => slept += sleep.unwrap_or_default(),
                    Outcome::Stop => panic!("{count} attempts stop after {retry}"),
                }
            }
            assert_eq!(
                strategy.test(Some(500), Some(true), count),
                Outcome::Stop,
                "{count} attempts at most"
            );
            assert_eq!(slept, backoff_before(count), "{count} attempts");
        }
        assert_eq!(backoff_before(ATTEMPTS), Duration::from_secs(3));
    }

    #[test]
    fn attempts_fit_the_time_left() {
        let plan = |ms| Attempts::within(MS(ms)).map(|a| (a.count, a.timeout.as_millis()));
        // A fresh 20 s budget: every attempt at full length, 18 s worst case.
        assert_eq!(plan(20_000), Some((3, 5_000)));
        assert_eq!(
            Attempts::within(MS(20_000)).unwrap().worst_case(),
            Duration::from_secs(18)
        );
        assert_eq!(plan(18_000), Some((3, 5_000)));
        // Less left: shorter attempts, then fewer, never below MIN_ATTEMPT.
        assert_eq!(plan(12_000), Some((3, 3_000)));
        assert_eq!(plan(6_000), Some((3, 1_000)));
        assert_eq!(plan(5_999), Some((2, 2_499)));
        assert_eq!(plan(3_000), Some((2, 1_000)));
        assert_eq!(plan(2_999), Some((1, 2_999)));
        assert_eq!(plan(1_950), Some((1, 1_950)));
        assert_eq!(plan(1_000), Some((1, 1_000)));
        assert_eq!(plan(999), None);
        assert_eq!(plan(0), None);
        // Whatever is left, the worst case ends before the deadline.
        for ms in (0..=30_000).step_by(7) {
            match Attempts::within(MS(ms)) {
                Some(a) => {
                    assert!(a.worst_case() <= MS(ms), "{ms} ms: {a:?}");
                    assert!(a.timeout >= MIN_ATTEMPT && a.timeout <= ATTEMPT_TIMEOUT);
                    assert!((1..=ATTEMPTS).contains(&a.count));
                }
                None => assert!(MS(ms) < MIN_ATTEMPT, "{ms} ms left, no attempt"),
            }
        }
    }

    #[test]
    fn only_timeouts_count_as_out_of_time() {
        assert!(PaymentsError::OutOfTime { operation: "x" }.timed_out());
        assert!(
            PaymentsError::Stripe {
                operation: "x",
                source: StripeError::Timeout
            }
            .timed_out()
        );
        assert!(
            !PaymentsError::Stripe {
                operation: "x",
                source: StripeError::ClientError("refused".into())
            }
            .timed_out()
        );
    }
}
