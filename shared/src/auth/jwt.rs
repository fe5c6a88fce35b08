use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::{Deserialize, Serialize};

use super::{AuthError, Caller};

/// Claims this service reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Roles, e.g. `["billing_admin"]`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
}

/// What a token must match.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
}

/// Verifies EdDSA (Ed25519) tokens: the algorithm is pinned, and `iss`, `aud`,
/// `exp` and `sub` are required.
#[derive(Clone)]
pub struct JwtVerifier {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

impl JwtVerifier {
    /// Allowed clock skew, in seconds.
    pub const LEEWAY: u64 = 30;

    /// A verifier for tokens signed by the Ed25519 key whose public half is `public_pem`.
    pub fn new(
        public_pem: &[u8],
        settings: &JwtSettings,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        let key = DecodingKey::from_ed_pem(public_pem)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = Self::LEEWAY;
        validation.validate_nbf = true;
        Ok(Self {
            key: Arc::new(key),
            validation: Arc::new(validation),
        })
    }

    /// The caller a valid token names.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let data = decode::<Claims>(token, &self.key, &self.validation)
            .map_err(AuthError::InvalidToken)?;
        Ok(Caller {
            subject: data.claims.sub,
            roles: data.claims.roles,
        })
    }
}

/// Signs a token the matching verifier accepts (the local stack's token issuer).
pub fn sign(
    private_pem: &[u8],
    settings: &JwtSettings,
    sub: &str,
    roles: Vec<String>,
    expires_in_secs: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let key = jsonwebtoken::EncodingKey::from_ed_pem(private_pem)?;
    let iat = crate::domain::now().timestamp().max(0) as u64;
    let claims = Claims {
        sub: sub.to_owned(),
        roles,
        iss: settings.issuer.clone(),
        aud: settings.audience.clone(),
        exp: iat + expires_in_secs,
        iat,
    };
    jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::EdDSA), &claims, &key)
}
