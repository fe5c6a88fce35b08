//! The identity provider's JWKS document: fetched on demand, cached on its TTL,
//! refreshed once on an unknown `kid`, and rate-limited so that made-up key ids
//! cannot hammer the provider. A warm request with a known `kid` makes no call.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::time::Instant;

/// Cache and refresh policy.
#[derive(Debug, Clone)]
pub struct JwksOptions {
    /// TTL when the response has no usable `Cache-Control: max-age`.
    pub default_ttl: Duration,
    /// Lower bound of the TTL, whatever the provider says.
    pub min_ttl: Duration,
    /// Upper bound of the TTL.
    pub max_ttl: Duration,
    /// Least time between two fetches that an unknown `kid`, an expired TTL
    /// or an earlier failure triggers.
    pub cooldown: Duration,
    /// Longest a fetch may take, connection included.
    pub timeout: Duration,
    /// Largest accepted document.
    pub max_bytes: usize,
    /// How long past their TTL cached keys keep verifying while every refresh
    /// fails; after that, tokens are 503 `auth_unavailable` until one succeeds
    /// (a key the provider revoked must not live on for ever in an outage).
    pub max_stale: Duration,
}

impl Default for JwksOptions {
    /// Ten minutes unless the provider says otherwise (bounded to 1 min..1 day);
    /// at most one triggered fetch per 15 s; 3 s per fetch; 256 KiB; cached
    /// keys used at most 24 h past their TTL while refreshes fail.
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(600),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(86_400),
            cooldown: Duration::from_secs(15),
            timeout: Duration::from_secs(3),
            max_bytes: 256 * 1024,
            max_stale: Duration::from_secs(24 * 3600),
        }
    }
}

/// Why no key could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JwksError {
    /// The document could not be fetched or parsed, and no key is cached.
    #[error("JWKS unavailable: {0}")]
    Unavailable(String),
    /// The URL is not acceptable.
    #[error("JWT_JWKS_URL: {0}")]
    Url(String),
}

/// What a key can verify, from its type and curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA: RS256/384/512 and PS256/384/512.
    Rsa,
    /// EC P-256: ES256.
    P256,
    /// EC P-384: ES384.
    P384,
    /// OKP Ed25519: EdDSA.
    Ed25519,
}

impl KeyKind {
    /// Whether a key of this kind may verify a token signed with `alg`.
    pub fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Self::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Self::P256 => alg == ES256,
            Self::P384 => alg == ES384,
            Self::Ed25519 => alg == EdDSA,
        }
    }
}

/// A verification key with what it may be used for.
#[derive(Clone)]
pub struct VerifyingKey {
    /// The key.
    pub key: DecodingKey,
    /// Its type.
    pub kind: KeyKind,
    /// The one algorithm the key names, when it names one.
    pub alg: Option<Algorithm>,
}

impl VerifyingKey {
    /// Whether the key may verify a token signed with `alg`: its type fits and
    /// its own `alg`, when given, is the same.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.kind.fits(alg) && self.alg.is_none_or(|own| own == alg)
    }

    /// A signature key from a JWK: `None` for symmetric keys, encryption keys,
    /// unsupported curves and algorithms, or an `alg` that does not fit the type.
    pub fn from_jwk(jwk: &Jwk) -> Option<Self> {
        let common = &jwk.common;
        if common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            return None;
        }
        if common
            .key_operations
            .as_ref()
            .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
        {
            return None;
        }
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyKind::Rsa,
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => KeyKind::P256,
                EllipticCurve::P384 => KeyKind::P384,
                _ => return None,
            },
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                KeyKind::Ed25519
            }
            _ => return None,
        };
        let alg = match common.key_algorithm {
            None => None,
            Some(named) => {
                let alg = Algorithm::try_from(named).ok()?;
                if !kind.fits(alg) {
                    return None;
                }
                Some(alg)
            }
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        Some(Self { key, kind, alg })
    }
}

/// Keys by `kid`, as of one fetch.
struct Snapshot {
    keys: HashMap<String, Arc<VerifyingKey>>,
    expires: Instant,
    generation: u64,
}

/// Refresh bookkeeping, held while a fetch runs (one fetch at a time).
#[derive(Default)]
struct Refresh {
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// The JWKS document of one URL, cached.
pub struct Jwks {
    url: http::Uri,
    client: HttpsClient,
    options: JwksOptions,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    refresh: tokio::sync::Mutex<Refresh>,
    fetches: std::sync::atomic::AtomicU64,
}

/// What a lookup found.
pub enum Lookup {
    /// The key with this `kid`.
    Found(Arc<VerifyingKey>),
    /// Keys are known, but none has this `kid`.
    Unknown,
}

impl Jwks {
    /// A cache for `url`: `https://`, or `http://` on a loopback host only. Nothing
    /// is fetched until a token needs a key.
    pub fn new(url: &str, options: JwksOptions) -> Result<Self, JwksError> {
        let url = Self::check_url(url)?;
        let tls =
            crate::tls::client_config().map_err(|e| JwksError::Url(format!("TLS setup: {e}")))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            url,
            client: Client::builder(TokioExecutor::new()).build(connector),
            options,
            snapshot: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(Refresh::default()),
            fetches: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many fetches this cache has started.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The key with `kid`. Fresh cache and known `kid`: no network call. Otherwise
    /// one rate-limited refresh; when it fails, cached keys keep working up to
    /// [`JwksOptions::max_stale`] past their TTL, and with no key at all, or
    /// only keys staler than that, the answer is an error.
    pub async fn key(&self, kid: &str) -> Result<Lookup, JwksError> {
        let current = self.current();
        if let Some(snapshot) = &current {
            let fresh = Instant::now() < snapshot.expires;
            match snapshot.keys.get(kid) {
                Some(key) if fresh => return Ok(Lookup::Found(key.clone())),
                None if fresh && !self.may_refresh_now() => return Ok(Lookup::Unknown),
                _ => {}
            }
        }
        let seen = current.as_ref().map(|s| s.generation);
        let error = self.refresh(seen).await.err();
        match (self.current(), error) {
            (Some(snapshot), error) if self.too_stale(&snapshot) => {
                let why = error.map_or_else(|| "no refresh yet".to_owned(), |e| e.to_string());
                Err(JwksError::Unavailable(format!(
                    "cached keys expired more than {:?} ago and cannot be refreshed ({why})",
                    self.options.max_stale
                )))
            }
            (Some(snapshot), _) => Ok(snapshot
                .keys
                .get(kid)
                .map_or(Lookup::Unknown, |k| Lookup::Found(k.clone()))),
            (None, Some(err)) => Err(err),
            (None, None) => Err(JwksError::Unavailable("no key fetched yet".to_owned())),
        }
    }

    /// Whether `snapshot` is past its TTL by more than the staleness limit.
    fn too_stale(&self, snapshot: &Snapshot) -> bool {
        snapshot
            .expires
            .checked_add(self.options.max_stale)
            .is_some_and(|limit| Instant::now() >= limit)
    }

    fn current(&self) -> Option<Arc<Snapshot>> {
        self.snapshot
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Whether the cooldown since the last fetch has passed (without waiting
    /// for a fetch in progress: that one's result serves this request).
    fn may_refresh_now(&self) -> bool {
        match self.refresh.try_lock() {
            Ok(state) => self.cooled_down(&state),
            Err(_) => true,
        }
    }

    fn cooled_down(&self, state: &Refresh) -> bool {
        state
            .last_attempt
            .is_none_or(|at| at.elapsed() >= self.options.cooldown)
    }

    /// Fetches the document unless another task replaced `seen` meanwhile or
    /// the cooldown has not passed.
    async fn refresh(&self, seen: Option<u64>) -> Result<(), JwksError> {
        let mut state = self.refresh.lock().await;
        if self.current().map(|s| s.generation) != seen {
            return Ok(());
        }
        if !self.cooled_down(&state) {
            return match &state.last_error {
                Some(err) => Err(JwksError::Unavailable(err.clone())),
                None => Ok(()),
            };
        }
        state.last_attempt = Some(Instant::now());
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match tokio::time::timeout(self.options.timeout, self.fetch()).await {
            Ok(Ok((keys, ttl))) => {
                state.last_error = None;
                let snapshot = Snapshot {
                    keys,
                    expires: Instant::now() + ttl,
                    generation: seen.map_or(1, |g| g + 1),
                };
                *self
                    .snapshot
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(snapshot));
                Ok(())
            }
            Ok(Err(message)) => {
                tracing::warn!(error = %message, "JWKS refresh failed; cached keys stay in use");
                state.last_error = Some(message.clone());
                Err(JwksError::Unavailable(message))
            }
            Err(_) => {
                let message = format!("no answer within {:?}", self.options.timeout);
                tracing::warn!(error = %message, "JWKS refresh failed; cached keys stay in use");
                state.last_error = Some(message.clone());
                Err(JwksError::Unavailable(message))
            }
        }
    }

    /// One GET of the document: its signature keys by `kid` and its TTL.
    async fn fetch(&self) -> Result<(HashMap<String, Arc<VerifyingKey>>, Duration), String> {
        let request = http::Request::get(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let ttl = ttl(
            response
                .headers()
                .get(http::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
            &self.options,
        );
        let body = Limited::new(response.into_body(), self.options.max_bytes)
            .collect()
            .await
            .map_err(|e| format!("reading the document: {e}"))?
            .to_bytes();
        let keys = parse(&body)?;
        Ok((keys, ttl))
    }
}

/// The signature keys of a JWKS document by `kid`; keys that cannot be used
/// for signatures, or have no `kid`, are skipped.
pub fn parse(body: &[u8]) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document =
        serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    Ok(document
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            VerifyingKey::from_jwk(&jwk).map(|key| (kid, Arc::new(key)))
        })
        .collect())
}

/// The TTL a `Cache-Control` value gives, within the bounds.
pub fn ttl(cache_control: Option<&str>, options: &JwksOptions) -> Duration {
    let max_age = cache_control.and_then(|value| {
        value.split(',').find_map(|directive| {
            let (name, seconds) = directive.trim().split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("max-age")
                .then(|| seconds.trim().trim_matches('"').parse::<u64>().ok())
                .flatten()
        })
    });
    max_age
        .map_or(options.default_ttl, Duration::from_secs)
        .clamp(options.min_ttl, options.max_ttl)
}

impl Jwks {
    /// `https://`, or `http://` on a loopback host.
    pub fn check_url(url: &str) -> Result<http::Uri, JwksError> {
        crate::secure_url::secure_url(url).map_err(|e| JwksError::Url(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_or_loopback_http() {
        for good in [
            "https://idp.example.com/.well-known/jwks.json",
            "http://127.0.0.1:9000/jwks",
            "http://localhost/jwks",
            "http://[::1]:8080/jwks",
        ] {
            assert!(Jwks::check_url(good).is_ok(), "{good}");
        }
        for bad in [
            "http://idp.example.com/jwks",
            "http://10.0.0.1/jwks",
            "ftp://127.0.0.1/jwks",
            "jwks.json",
            "",
        ] {
            assert!(Jwks::check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ttl_follows_max_age_within_bounds() {
        let options = JwksOptions::default();
        assert_eq!(ttl(None, &options), options.default_ttl);
        assert_eq!(
            ttl(Some("public, max-age=3600"), &options),
            Duration::from_secs(3600)
        );
        assert_eq!(ttl(Some("max-age=1"), &options), options.min_ttl);
        assert_eq!(ttl(Some("max-age=99999999"), &options), options.max_ttl);
        assert_eq!(ttl(Some("no-cache"), &options), options.default_ttl);
        assert_eq!(ttl(Some("max-age=x"), &options), options.default_ttl);
    }

    #[test]
    fn only_signature_keys_with_a_fitting_alg_are_kept() {
        let body = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "alg": "EdDSA",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "kid": "ed-as-es", "crv": "Ed25519", "alg": "ES256",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "kid": "ed-enc", "crv": "Ed25519", "use": "enc",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "weird", "kid": "x"}
        ]});
        let keys = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["ed"]);
        let ed = &keys["ed"];
        assert!(ed.accepts(Algorithm::EdDSA));
        assert!(!ed.accepts(Algorithm::ES256));
        assert!(!ed.accepts(Algorithm::HS256));
        assert!(parse(b"{}").is_err());
        assert!(KeyKind::Rsa.fits(Algorithm::PS512));
        assert!(!KeyKind::Rsa.fits(Algorithm::ES256));
        assert!(!KeyKind::P256.fits(Algorithm::ES384));
    }
}
