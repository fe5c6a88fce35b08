//! Stripe's webhook signatures: `Stripe-Signature: t=<unix time>,v1=<hex>,...`,
//! where each `v1` is HMAC-SHA256 of `<t>.<raw body>` under an endpoint secret.
//!
//! During a secret roll Stripe sends one `v1` per live secret, and the endpoint
//! may hold both secrets too: a delivery is genuine when any `v1` matches any
//! secret. Comparisons are constant-time.

use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secrets::Refreshing;

/// How far a signature's timestamp may be from now, either way: Stripe's
/// libraries' default (5 minutes) against replays of captured deliveries.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Why a delivery is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    #[error("the Stripe-Signature header is missing")]
    Missing,
    /// The header has no timestamp or no `v1` signature.
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    /// The timestamp is outside the tolerance.
    #[error("the Stripe-Signature timestamp is outside the tolerance")]
    Expired,
    /// No signature matches the body under any secret.
    #[error("no Stripe-Signature signature matches the body")]
    Mismatch,
}

impl SignatureError {
    /// The error code of the 400 answer.
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing_signature",
            Self::Malformed | Self::Mismatch => "invalid_signature",
            Self::Expired => "signature_expired",
        }
    }
}

/// The endpoint's secrets (`whsec_...`): one, or two during a roll.
#[derive(Clone)]
pub struct Secrets(Vec<SecretString>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} redacted)", self.0.len())
    }
}

impl Secrets {
    /// The secrets in `raw`, separated by commas (`whsec_new,whsec_old`).
    pub fn parse(raw: &SecretString) -> Option<Self> {
        let secrets: Vec<SecretString> = raw
            .expose_secret()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(SecretString::from)
            .collect();
        (!secrets.is_empty()).then_some(Self(secrets))
    }

    /// Checks `header` against `body` at `now` (unix seconds); returns the
    /// signed timestamp.
    pub fn verify(
        &self,
        header: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<i64, SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
                Some(("v1", sig)) => signatures.extend(decode_hex(sig)),
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
        if signatures.is_empty() {
            return Err(SignatureError::Malformed);
        }
        let genuine = self.0.iter().any(|secret| {
            let expected = sign(secret, timestamp, body);
            signatures
                .iter()
                .any(|sig| bool::from(sig.as_slice().ct_eq(&expected)))
        });
        if !genuine {
            return Err(SignatureError::Mismatch);
        }
        if (now - timestamp).abs() > TOLERANCE_SECONDS {
            return Err(SignatureError::Expired);
        }
        Ok(timestamp)
    }
}

/// HMAC-SHA256 of `<timestamp>.<body>` under `secret`.
fn sign(secret: &SecretString, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// The `Stripe-Signature` header Stripe would send for `body` at `timestamp`
/// (tests, and `billing-dev` to sign events it sends).
pub fn header(secret: &SecretString, timestamp: i64, body: &[u8]) -> String {
    let hex: String = sign(secret, timestamp, body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

fn decode_hex(raw: &str) -> Option<Vec<u8>> {
    if !raw.len().is_multiple_of(2) {
        return None;
    }
    (0..raw.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(raw.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The endpoint secrets: given, or read from Secrets Manager and refreshed.
#[derive(Clone)]
pub enum WebhookSecrets {
    /// From the environment.
    Fixed(Secrets),
    /// From Secrets Manager, read again every `secrets::REFRESH_AFTER`.
    Refreshing(Arc<Refreshing<Secrets>>),
}

impl WebhookSecrets {
    /// The secrets in force now.
    pub async fn current(&self) -> Arc<Secrets> {
        match self {
            Self::Fixed(s) => Arc::new(s.clone()),
            Self::Refreshing(r) => r.get().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"customer.subscription.updated"}"#;

    fn secret(raw: &str) -> SecretString {
        SecretString::from(raw.to_owned())
    }

    fn secrets(raw: &str) -> Secrets {
        Secrets::parse(&secret(raw)).unwrap()
    }

    #[test]
    fn accepts_a_genuine_signature_within_the_tolerance() {
        let header = header(&secret("whsec_a"), NOW - 60, BODY);
        assert_eq!(
            secrets("whsec_a").verify(Some(&header), BODY, NOW),
            Ok(NOW - 60)
        );
    }

    #[test]
    fn signs_as_stripe_does() {
        // HMAC-SHA256 of "1614556800.{}" under "whsec_test", computed with
        // Python's hmac module.
        assert_eq!(
            header(&secret("whsec_test"), 1_614_556_800, b"{}"),
            "t=1614556800,v1=6bd5ebbc9cbce4fe6d9c728ba6c962ae7ec5510179f82646471f20bba89e7ffd"
        );
    }

    #[test]
    fn refuses_a_tampered_body_a_wrong_secret_and_a_missing_header() {
        let good = header(&secret("whsec_a"), NOW, BODY);
        let s = secrets("whsec_a");
        assert_eq!(
            s.verify(Some(&good), b"{}", NOW),
            Err(SignatureError::Mismatch)
        );
        let wrong = header(&secret("whsec_b"), NOW, BODY);
        assert_eq!(
            s.verify(Some(&wrong), BODY, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(s.verify(None, BODY, NOW), Err(SignatureError::Missing));
        for bad in ["", "t=1", "v1=00", "t=x,v1=zz", "garbage"] {
            assert_eq!(
                s.verify(Some(bad), BODY, NOW),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_old_and_future_timestamps() {
        let s = secrets("whsec_a");
        for at in [NOW - TOLERANCE_SECONDS - 1, NOW + TOLERANCE_SECONDS + 1] {
            let h = header(&secret("whsec_a"), at, BODY);
            assert_eq!(s.verify(Some(&h), BODY, NOW), Err(SignatureError::Expired));
        }
    }

    #[test]
    fn any_v1_under_any_secret_matches_during_a_roll() {
        let new = header(&secret("whsec_new"), NOW, BODY);
        let old = header(&secret("whsec_old"), NOW, BODY);
        let both = format!("{},v1={}", old, new.split_once(",v1=").unwrap().1);
        assert!(secrets("whsec_new").verify(Some(&both), BODY, NOW).is_ok());
        assert!(secrets("whsec_old").verify(Some(&both), BODY, NOW).is_ok());
        assert!(
            secrets("whsec_new, whsec_old")
                .verify(Some(&old), BODY, NOW)
                .is_ok()
        );
        assert!(Secrets::parse(&secret(" , ")).is_none());
    }
}
