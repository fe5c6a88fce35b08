//! Bearer tokens: verified against one Ed25519 key (PEM) or the keys of an
//! identity provider's JWKS document, with the claims of real providers.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation, decode, decode_header};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::jwks::{Jwks, JwksError, KeyKind, Lookup, VerifyingKey};
use super::{AuthError, Caller};
use crate::secrets::Refreshing;

/// Claims the local token issuer writes (`billing-dev token`).
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

/// Every asymmetric algorithm; the default allow-list.
pub const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// What a token must match, and where its roles are.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// Expected `iss` (`JWT_ISSUER`).
    pub issuer: String,
    /// Expected audience (`JWT_AUDIENCE`): in `aud` (a string or an array), or
    /// `client_id` of a Cognito access token, which has no `aud`.
    pub audience: String,
    /// Accepted algorithms (`JWT_ALGORITHMS`), asymmetric only.
    pub algorithms: Vec<Algorithm>,
    /// Where the roles are (`JWT_ROLES_CLAIM`).
    pub roles_claim: String,
    /// Oldest `iat` and longest lifetime accepted, in seconds (`JWT_MAX_AGE_SECONDS`).
    pub max_age: Option<u64>,
    /// Whether Cognito ID tokens (`token_use: id`) are accepted
    /// (`JWT_ACCEPT_ID_TOKENS`); refused by default: an ID token says who
    /// signed in to an app, an access token what it may call.
    pub accept_id_tokens: bool,
}

impl JwtSettings {
    /// Issuer and audience with the defaults: every asymmetric algorithm, roles
    /// in `roles`, no age limit, no Cognito ID tokens.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            algorithms: ASYMMETRIC.to_vec(),
            roles_claim: "roles".to_owned(),
            max_age: None,
            accept_id_tokens: false,
        }
    }
}

/// Why a token was rejected (all 401; the reason is logged, never returned).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or a header that cannot be read.
    #[error("not a well-formed JWT")]
    Malformed,
    /// A `jku`, `x5u` or embedded `jwk` header: keys come only from configuration.
    #[error("the token names its own key (jku, x5u or jwk header)")]
    KeyInHeader,
    /// The algorithm is not in the allow-list.
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(Algorithm),
    /// No `kid` where keys are selected by `kid`.
    #[error("the token has no kid")]
    MissingKid,
    /// No key has the token's `kid`.
    #[error("no key has this kid")]
    UnknownKey,
    /// The key's type or `alg` does not fit the token's algorithm.
    #[error("the key does not fit algorithm {0:?}")]
    KeyMismatch(Algorithm),
    /// Signature, expiry, not-before, issuer or a required claim failed.
    #[error("signature or claims rejected")]
    Rejected(#[source] jsonwebtoken::errors::Error),
    /// Neither `aud` nor a Cognito access token's `client_id` is the audience.
    #[error("audience does not match")]
    Audience,
    /// Issued too long ago, in the future, or living too long.
    #[error("token age or lifetime exceeds JWT_MAX_AGE_SECONDS")]
    TooOld,
    /// `sub` or the roles claim has the wrong shape.
    #[error("malformed claim {0}")]
    Claim(&'static str),
    /// A Cognito ID token (`token_use: id`) where only access tokens are
    /// accepted (`JWT_ACCEPT_ID_TOKENS` unset).
    #[error("an ID token, not an access token")]
    IdToken,
}

/// Where verification keys come from.
#[derive(Clone)]
enum Keys {
    /// One key, for tokens with or without `kid`.
    Single(Arc<VerifyingKey>),
    /// One key from a secret, read again on its TTL.
    Secret(Arc<Refreshing<VerifyingKey>>),
    /// An identity provider's JWKS document, keys by `kid`.
    Jwks(Arc<Jwks>),
}

/// Verifies Bearer tokens: algorithm allow-list, key by `kid` whose type and
/// `alg` fit the token's, signature, `exp`/`nbf` (30 s leeway), `iss`,
/// audience, optional age limit; roles from the configured claim.
#[derive(Clone)]
pub struct JwtVerifier {
    keys: Keys,
    settings: Arc<JwtSettings>,
    validations: Arc<Vec<(Algorithm, Validation)>>,
}

impl JwtVerifier {
    /// Allowed clock skew, in seconds.
    pub const LEEWAY: u64 = 30;

    /// A verifier for tokens signed by the Ed25519 key whose public half is `public_pem`.
    pub fn new(
        public_pem: &[u8],
        settings: &JwtSettings,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        let key = pem_key(public_pem)?;
        Ok(Self::with_keys(Keys::Single(Arc::new(key)), settings))
    }

    /// A verifier whose Ed25519 key is a secret, read again on its TTL so that
    /// a rotated key is picked up without a cold start.
    pub fn from_secret(key: Arc<Refreshing<VerifyingKey>>, settings: &JwtSettings) -> Self {
        Self::with_keys(Keys::Secret(key), settings)
    }

    /// A verifier for tokens signed by the keys of a JWKS document.
    pub fn jwks(jwks: Arc<Jwks>, settings: &JwtSettings) -> Self {
        Self::with_keys(Keys::Jwks(jwks), settings)
    }

    fn with_keys(keys: Keys, settings: &JwtSettings) -> Self {
        let validations = settings
            .algorithms
            .iter()
            .map(|&alg| {
                let mut validation = Validation::new(alg);
                validation.set_issuer(&[&settings.issuer]);
                // The audience is checked below: `aud` may be missing (Cognito
                // access tokens carry `client_id` instead).
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp", "iss", "sub"]);
                validation.leeway = Self::LEEWAY;
                validation.validate_nbf = true;
                (alg, validation)
            })
            .collect();
        Self {
            keys,
            settings: Arc::new(settings.clone()),
            validations: Arc::new(validations),
        }
    }

    /// The caller a valid token names; `Unavailable` only when a JWKS key is
    /// needed and none can be had.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.jku.is_some() || header.x5u.is_some() || header.jwk.is_some() {
            return Err(TokenError::KeyInHeader.into());
        }
        let validation = self
            .validations
            .iter()
            .find(|(alg, _)| *alg == header.alg)
            .map(|(_, v)| v)
            .ok_or(TokenError::Algorithm(header.alg))?;
        let key = self.key_for(&header).await?;
        if !key.accepts(header.alg) {
            return Err(TokenError::KeyMismatch(header.alg).into());
        }
        let claims = decode::<Value>(token, &key.key, validation)
            .map_err(TokenError::Rejected)?
            .claims;
        Ok(self.caller(&claims)?)
    }

    async fn key_for(&self, header: &Header) -> Result<Arc<VerifyingKey>, AuthError> {
        match &self.keys {
            Keys::Single(key) => Ok(key.clone()),
            Keys::Secret(key) => Ok(key.get().await),
            Keys::Jwks(jwks) => {
                let kid = header.kid.as_deref().ok_or(TokenError::MissingKid)?;
                match jwks.key(kid).await {
                    Ok(Lookup::Found(key)) => Ok(key),
                    Ok(Lookup::Unknown) => Err(TokenError::UnknownKey.into()),
                    Err(err @ JwksError::Unavailable(_)) | Err(err @ JwksError::Url(_)) => {
                        Err(AuthError::Unavailable(err))
                    }
                }
            }
        }
    }

    /// Audience, age and roles of claims whose signature and times are valid.
    fn caller(&self, claims: &Value) -> Result<Caller, TokenError> {
        let settings = &self.settings;
        if !settings.accept_id_tokens && claims["token_use"].as_str() == Some("id") {
            return Err(TokenError::IdToken);
        }
        if !has_audience(claims, &settings.audience) {
            return Err(TokenError::Audience);
        }
        if let Some(max_age) = settings.max_age {
            check_age(claims, max_age, crate::domain::now().timestamp())?;
        }
        let subject = claims["sub"].as_str().ok_or(TokenError::Claim("sub"))?;
        Ok(Caller {
            subject: subject.to_owned(),
            roles: roles(claims, &settings.roles_claim)?,
            api_key: None,
        })
    }
}

/// The verification key of an Ed25519 public key in PEM.
pub fn pem_key(public_pem: &[u8]) -> Result<VerifyingKey, jsonwebtoken::errors::Error> {
    Ok(VerifyingKey {
        key: DecodingKey::from_ed_pem(public_pem)?,
        kind: KeyKind::Ed25519,
        alg: Some(Algorithm::EdDSA),
    })
}

impl From<TokenError> for AuthError {
    fn from(err: TokenError) -> Self {
        Self::InvalidToken(err)
    }
}

/// `aud` (a string or an array) holds the audience; or, without `aud`, a Cognito
/// access token (`token_use: access`) whose `client_id` is the audience.
fn has_audience(claims: &Value, audience: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(aud)) => aud == audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
        Some(_) => false,
        None => {
            claims["token_use"].as_str() == Some("access")
                && claims["client_id"].as_str() == Some(audience)
        }
    }
}

/// Rejects tokens issued more than `max_age` seconds ago (or in the future), or
/// living longer than `max_age`; `iat` is then required.
fn check_age(claims: &Value, max_age: u64, now: i64) -> Result<(), TokenError> {
    let iat = claims["iat"].as_i64().ok_or(TokenError::TooOld)?;
    let exp = claims["exp"].as_i64().ok_or(TokenError::TooOld)?;
    let (max_age, leeway) = (
        i64::try_from(max_age).unwrap_or(i64::MAX),
        JwtVerifier::LEEWAY as i64,
    );
    let too_old = now.saturating_sub(iat) > max_age.saturating_add(leeway);
    let from_the_future = iat > now.saturating_add(leeway);
    let too_long = exp.saturating_sub(iat) > max_age;
    if too_old || from_the_future || too_long {
        return Err(TokenError::TooOld);
    }
    Ok(())
}

/// The roles at `claim`: a top-level claim of that exact name (`roles`,
/// `cognito:groups`, `https://billing.example.com/roles`), else a dotted path
/// (`realm_access.roles`); an array of strings or a space-separated string.
/// No claim means no roles. A namespaced name (one holding `:` or `/`) is
/// only ever that top-level claim: were it absent, walking
/// `https://billing.example.com/roles` as a path would read
/// `claims["https://billing"]["example"]["com/roles"]`, a claim of another name.
pub fn roles(claims: &Value, claim: &str) -> Result<Vec<String>, TokenError> {
    let namespaced = claim.contains([':', '/']);
    let value = claims.get(claim).or_else(|| {
        if namespaced {
            return None;
        }
        claim
            .split('.')
            .try_fold(claims, |node, part| node.get(part))
    });
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(text.split_whitespace().map(str::to_owned).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or(TokenError::Claim("roles"))
            })
            .collect(),
        Some(_) => Err(TokenError::Claim("roles")),
    }
}

/// Signs a token the PEM verifier accepts (the local stack's token issuer).
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
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &key)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn roles_come_from_top_level_namespaced_or_nested_claims() {
        let claims = json!({
            "roles": ["a", "b"],
            "cognito:groups": ["billing_admin"],
            "https://billing.example.com/roles": ["ns"],
            "realm_access": {"roles": ["kc"]},
            "scp": "one two  three",
            "bad": 3,
            "mixed": ["ok", 1],
        });
        let of = |claim| roles(&claims, claim);
        assert_eq!(of("roles").unwrap(), ["a", "b"]);
        assert_eq!(of("cognito:groups").unwrap(), ["billing_admin"]);
        assert_eq!(of("https://billing.example.com/roles").unwrap(), ["ns"]);
        assert_eq!(of("realm_access.roles").unwrap(), ["kc"]);
        assert_eq!(of("scp").unwrap(), ["one", "two", "three"]);
        assert!(of("groups").unwrap().is_empty());
        assert!(of("realm_access.missing").unwrap().is_empty());
        assert!(of("bad").is_err());
        assert!(of("mixed").is_err());
        // A namespaced claim that is absent is no roles, never a path through
        // claims of other names.
        let spoofed = json!({"https://billing": {"example": {"com/roles": ["billing_admin"]}},
            "cognito:groups": null, "urn:x": {"roles": ["billing_admin"]}});
        assert!(
            roles(&spoofed, "https://billing.example.com/roles")
                .unwrap()
                .is_empty()
        );
        assert!(roles(&spoofed, "urn:x.roles").unwrap().is_empty());
    }

    #[test]
    fn audience_is_aud_or_a_cognito_access_token_client_id() {
        assert!(has_audience(&json!({"aud": "api"}), "api"));
        assert!(has_audience(&json!({"aud": ["x", "api"]}), "api"));
        assert!(!has_audience(&json!({"aud": ["x"]}), "api"));
        assert!(!has_audience(&json!({"aud": 1}), "api"));
        assert!(has_audience(
            &json!({"token_use": "access", "client_id": "api"}),
            "api"
        ));
        assert!(!has_audience(
            &json!({"token_use": "id", "client_id": "api"}),
            "api"
        ));
        assert!(!has_audience(&json!({"client_id": "api"}), "api"));
        // An `aud` that does not match is not rescued by `client_id`.
        assert!(!has_audience(
            &json!({"aud": "other", "token_use": "access", "client_id": "api"}),
            "api"
        ));
    }

    #[test]
    fn age_limits_issue_time_and_lifetime() {
        let now = 1_800_000_000;
        let token = |iat: i64, exp: i64| json!({"iat": iat, "exp": exp});
        assert!(check_age(&token(now - 100, now + 500), 900, now).is_ok());
        assert!(check_age(&token(now - 1000, now + 10), 900, now).is_err());
        assert!(check_age(&token(now, now + 3600), 900, now).is_err());
        assert!(check_age(&token(now + 600, now + 700), 900, now).is_err());
        assert!(check_age(&json!({"exp": now + 10}), 900, now).is_err());
    }
}
