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

use crate::store::{Store, StoreError};

/// The role every endpoint of this API requires.
pub const BILLING_ADMIN: &str = "billing_admin";

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

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user the request acts as.
    pub subject: String,
    /// Roles the credentials carry.
    pub roles: Vec<String>,
}

impl Caller {
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
}

impl Authenticator {
    /// An authenticator with a JWT verifier and the table holding API keys.
    pub fn new(jwt: JwtVerifier, store: Store) -> Self {
        Self { jwt, store }
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
                api_key::check(record, &secret, crate::domain::now())
            }
        }
    }
}
