//! Who is calling: Bearer JWTs or `api-key` + `api-secret` pairs, then role checks.

mod api_key;
mod credentials;
pub mod jwks;
mod jwt;

use http::HeaderMap;

pub use api_key::{IssuedApiKey, hash_secret, issue_api_key};
pub use credentials::Credentials;
pub use jwks::{Jwks, JwksError, JwksOptions, VerifyingKey};
pub use jwt::{ASYMMETRIC, Claims, JwtSettings, JwtVerifier, TokenError, pem_key, sign};

use crate::domain::audit::Actor;
use crate::store::{Store, StoreError};

/// The role every endpoint of this API requires.
pub const BILLING_ADMIN: &str = "billing_admin";

/// Default of `API_KEY_MAX_DAYS`: the longest an API key lives, in days.
pub const API_KEY_MAX_DAYS_DEFAULT: u32 = 90;

/// Why a caller was not authenticated (401, except the key and store lookups' failures).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials at all.
    #[error("missing credentials: send Authorization: Bearer <token> or api-key and api-secret")]
    Missing,
    /// Credentials present but not in an accepted form.
    #[error("malformed credentials: {0}")]
    Malformed(&'static str),
    /// The token failed verification (key, algorithm, signature, issuer,
    /// audience, expiry, age).
    #[error("invalid or expired token")]
    InvalidToken(#[source] TokenError),
    /// No verification key can be had: the identity provider's JWKS cannot be
    /// fetched and none is cached (503).
    #[error("token verification keys are unavailable")]
    Unavailable(#[source] JwksError),
    /// Unknown key, wrong secret or revoked key.
    #[error("invalid API key")]
    InvalidApiKey,
    /// The right secret of a key past its expiry.
    #[error("API key expired")]
    ApiKeyExpired,
    /// The API key could not be looked up.
    #[error("credential lookup failed")]
    Store(#[source] StoreError),
}

impl AuthError {
    /// A stable, low-cardinality reason for metrics (`AuthFailures`) and logs:
    /// which check failed, never anything of the credentials themselves.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed(_) => "malformed",
            Self::InvalidToken(e) => e.reason(),
            Self::Unavailable(_) => "unavailable",
            Self::InvalidApiKey => "invalid_api_key",
            Self::ApiKeyExpired => "api_key_expired",
            Self::Store(_) => "lookup_failed",
        }
    }
}

impl TokenError {
    /// A stable reason: which check the token failed.
    pub fn reason(&self) -> &'static str {
        use jsonwebtoken::errors::ErrorKind;
        match self {
            Self::Malformed => "malformed_token",
            Self::KeyInHeader => "key_in_header",
            Self::Algorithm(_) => "algorithm",
            Self::MissingKid => "missing_kid",
            Self::UnknownKey => "unknown_key",
            Self::KeyMismatch(_) => "key_mismatch",
            Self::Rejected(e) => match e.kind() {
                ErrorKind::ExpiredSignature => "expired",
                ErrorKind::ImmatureSignature => "not_yet_valid",
                ErrorKind::InvalidSignature => "signature",
                ErrorKind::InvalidIssuer => "issuer",
                ErrorKind::MissingRequiredClaim(_) => "missing_claim",
                _ => "invalid_token",
            },
            Self::Audience => "audience",
            Self::TooOld => "too_old",
            Self::Claim(_) => "claim",
            Self::IdToken => "id_token",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user the request acts as.
    pub subject: String,
    /// Roles the credentials carry.
    pub roles: Vec<String>,
    /// The API key id (`ak_...`) when the caller used one.
    pub api_key: Option<String>,
}

impl Caller {
    /// Who this caller is in the audit trail: the token's subject, or the
    /// API key and the user it acts as.
    pub fn actor(&self) -> Actor {
        match &self.api_key {
            Some(key_id) => Actor::ApiKey {
                key_id: key_id.clone(),
                user_id: self.subject.clone(),
            },
            None => Actor::User {
                subject: self.subject.clone(),
            },
        }
    }

    /// What scopes this caller's idempotency keys: its API key, else its subject.
    pub fn scope(&self) -> String {
        match &self.api_key {
            Some(key_id) => format!("key:{key_id}"),
            None => format!("sub:{}", self.subject),
        }
    }

    /// Whether the caller holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Verifies credentials: JWTs offline, API keys against the table.
#[derive(Clone)]
pub struct Authenticator {
    jwt: JwtVerifier,
    store: Store,
    api_key_lifetime: chrono::Duration,
}

impl Authenticator {
    /// An authenticator with a JWT verifier and the table holding API keys,
    /// refusing keys older than [`API_KEY_MAX_DAYS_DEFAULT`] days.
    pub fn new(jwt: JwtVerifier, store: Store) -> Self {
        Self {
            jwt,
            store,
            api_key_lifetime: chrono::Duration::days(API_KEY_MAX_DAYS_DEFAULT.into()),
        }
    }

    /// This authenticator, refusing API keys `days` after they were issued
    /// (`API_KEY_MAX_DAYS`), whatever expiry they were given.
    #[must_use]
    pub fn with_api_key_max_days(self, days: u32) -> Self {
        Self {
            api_key_lifetime: chrono::Duration::days(days.into()),
            ..self
        }
    }

    /// The caller behind the request's headers.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        match Credentials::from_headers(headers)? {
            Credentials::Bearer(token) => self.jwt.verify(&token).await,
            Credentials::ApiKey { key, secret } => {
                let record = if api_key::is_key_id(&key) {
                    self.store
                        .get_api_key(&key)
                        .await
                        .map_err(AuthError::Store)?
                } else {
                    None
                };
                let now = crate::domain::now();
                api_key::check(record, &secret, now, self.api_key_lifetime).map(|caller| Caller {
                    api_key: Some(key),
                    ..caller
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Algorithm;
    use jsonwebtoken::errors::{Error, ErrorKind};

    use super::*;

    #[test]
    fn every_failure_has_a_stable_reason() {
        let token = |e: TokenError| AuthError::InvalidToken(e).reason();
        let rejected = |kind: ErrorKind| token(TokenError::Rejected(Error::from(kind)));
        let cases = [
            (AuthError::Missing.reason(), "missing"),
            (AuthError::Malformed("half").reason(), "malformed"),
            (
                AuthError::Unavailable(JwksError::Unavailable("down".into())).reason(),
                "unavailable",
            ),
            (AuthError::InvalidApiKey.reason(), "invalid_api_key"),
            (AuthError::ApiKeyExpired.reason(), "api_key_expired"),
            (
                AuthError::Store(StoreError::Contention).reason(),
                "lookup_failed",
            ),
            (token(TokenError::Malformed), "malformed_token"),
            (token(TokenError::KeyInHeader), "key_in_header"),
            (token(TokenError::Algorithm(Algorithm::HS256)), "algorithm"),
            (token(TokenError::MissingKid), "missing_kid"),
            (token(TokenError::UnknownKey), "unknown_key"),
            (
                token(TokenError::KeyMismatch(Algorithm::RS256)),
                "key_mismatch",
            ),
            (token(TokenError::Audience), "audience"),
            (token(TokenError::TooOld), "too_old"),
            (token(TokenError::Claim("sub")), "claim"),
            (token(TokenError::IdToken), "id_token"),
            (rejected(ErrorKind::ExpiredSignature), "expired"),
            (rejected(ErrorKind::ImmatureSignature), "not_yet_valid"),
            (rejected(ErrorKind::InvalidSignature), "signature"),
            (rejected(ErrorKind::InvalidIssuer), "issuer"),
            (
                rejected(ErrorKind::MissingRequiredClaim("exp".into())),
                "missing_claim",
            ),
            (rejected(ErrorKind::InvalidToken), "invalid_token"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }
}
