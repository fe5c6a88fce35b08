//! Typed configuration, read once at cold start from the environment.

use std::str::FromStr;

use jsonwebtoken::Algorithm;
use secrecy::SecretString;

pub use crate::auth::API_KEY_MAX_DAYS_DEFAULT;
use crate::auth::{ASYMMETRIC, Jwks, JwtSettings};
pub use crate::secrets::SecretSource;

/// Everything a function needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The single table's name (`TABLE_NAME`).
    pub table_name: String,
    /// AWS region (`AWS_REGION`); the SDK's default chain when unset.
    pub region: Option<String>,
    /// DynamoDB endpoint override (`AWS_ENDPOINT_URL_DYNAMODB`).
    pub dynamodb_endpoint: Option<String>,
    /// Secrets Manager endpoint override (`AWS_ENDPOINT_URL_SECRETS_MANAGER`).
    pub secrets_endpoint: Option<String>,
    /// Token verification, for the functions that serve HTTP.
    pub auth: Option<AuthConfig>,
    /// Stripe, for the functions that run the deletion cascade.
    pub stripe: Option<StripeConfig>,
    /// Where `customer.deleted` goes (`EVENT_BUS_NAME`); the log when unset.
    pub event_bus: Option<String>,
    /// EventBridge endpoint override (`AWS_ENDPOINT_URL_EVENTBRIDGE`).
    pub eventbridge_endpoint: Option<String>,
    /// How long the stream consumer leaves a cascade to its request
    /// (`CASCADE_GRACE_SECONDS`, default 30).
    pub cascade_grace: std::time::Duration,
    /// The key that signs listing cursors (`CURSOR_KEY`, or
    /// `CURSOR_KEY_SECRET_ID` naming the Secrets Manager secret holding it):
    /// required by the listing functions, whose instances must open each
    /// other's cursors.
    pub cursor_key: Option<SecretSource>,
    /// The Stripe webhook endpoint's secret (`STRIPE_WEBHOOK_SECRET`, or
    /// `STRIPE_WEBHOOK_SECRET_SECRET_ID`): one `whsec_...`, or two separated
    /// by a comma while the secret is rolled.
    pub stripe_webhook_secret: Option<SecretSource>,
    /// The longest an API key lives, in days (`API_KEY_MAX_DAYS`, default
    /// [`API_KEY_MAX_DAYS_DEFAULT`]): issuing refuses longer, and a key is
    /// refused this long after it was issued whatever its own expiry says.
    pub api_key_max_days: u32,
    /// Who the platform's events must come from (`PLATFORM_EVENT_SOURCE` and
    /// `PLATFORM_ACCOUNT_ID`, both or neither): required by the functions its
    /// rules invoke (`user-deleted`, `platform-customer`).
    pub platform_sender: Option<crate::sender::ExpectedSender>,
}

/// Largest `API_KEY_MAX_DAYS` accepted: ten years.
const API_KEY_MAX_DAYS_LIMIT: u32 = 3660;

/// `API_KEY_MAX_DAYS` through `get` (an empty value is unset): a whole
/// number of days from 1 to 3660, [`API_KEY_MAX_DAYS_DEFAULT`] when unset.
pub fn api_key_max_days(get: impl Fn(&str) -> Option<String>) -> Result<u32, ConfigError> {
    match get("API_KEY_MAX_DAYS").filter(|v| !v.trim().is_empty()) {
        None => Ok(API_KEY_MAX_DAYS_DEFAULT),
        Some(raw) => raw
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|days| (1..=API_KEY_MAX_DAYS_LIMIT).contains(days))
            .ok_or_else(|| {
                ConfigError(format!(
                    "API_KEY_MAX_DAYS must be a whole number of days from 1 to {API_KEY_MAX_DAYS_LIMIT}"
                ))
            }),
    }
}

/// Token verification settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// What a token must match (`JWT_ISSUER`, `JWT_AUDIENCE`, `JWT_ALGORITHMS`,
    /// `JWT_ROLES_CLAIM`, `JWT_MAX_AGE_SECONDS`, `JWT_ACCEPT_ID_TOKENS`).
    pub jwt: JwtSettings,
    /// Where the verification keys come from.
    pub keys: KeySource,
}

/// Where token verification keys come from: exactly one of the two.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// One Ed25519 public key in PEM (`JWT_PUBLIC_KEY`, or `JWT_PUBLIC_KEY_SECRET_ID`).
    Pem(SecretSource),
    /// An identity provider's JWKS document (`JWT_JWKS_URL`).
    Jwks(String),
}

/// Stripe settings.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// API base URL (`STRIPE_API_BASE`, default `https://api.stripe.com`).
    pub base_url: String,
    /// Secret key (`STRIPE_SECRET_KEY`, or `STRIPE_SECRET_KEY_SECRET_ID`).
    pub secret_key: SecretSource,
}

/// The token settings: given to the HTTP functions, to none of the event functions.
const AUTH_SETTINGS: [&str; 9] = [
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_PUBLIC_KEY",
    "JWT_PUBLIC_KEY_SECRET_ID",
    "JWT_JWKS_URL",
    "JWT_ALGORITHMS",
    "JWT_ROLES_CLAIM",
    "JWT_MAX_AGE_SECONDS",
    "JWT_ACCEPT_ID_TOKENS",
];

/// A required setting is missing or empty.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// `name` is required here.
    pub fn missing(name: &str) -> Self {
        Self(format!("{name} is required"))
    }

    /// `name` is set, but this function was built without the cargo feature
    /// `feature` that uses it (see `billing-shared`'s features).
    pub fn not_built_in(name: &str, feature: &str) -> Self {
        Self(format!(
            "{name} is set but this function is built without the `{feature}` feature"
        ))
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let optional = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let required =
            |name: &str| optional(name).ok_or_else(|| ConfigError(format!("{name} is required")));
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            region: optional("AWS_REGION"),
            dynamodb_endpoint: optional("AWS_ENDPOINT_URL_DYNAMODB"),
            secrets_endpoint: optional("AWS_ENDPOINT_URL_SECRETS_MANAGER"),
            auth: if AUTH_SETTINGS.iter().any(|name| optional(name).is_some()) {
                Some(auth(&optional)?)
            } else {
                None
            },
            stripe: match (
                optional("STRIPE_SECRET_KEY"),
                optional("STRIPE_SECRET_KEY_SECRET_ID"),
            ) {
                (None, None) => None,
                _ => Some(StripeConfig {
                    base_url: optional("STRIPE_API_BASE")
                        .unwrap_or_else(|| "https://api.stripe.com".to_owned()),
                    secret_key: secret(&optional, "STRIPE_SECRET_KEY")?,
                }),
            },
            event_bus: optional("EVENT_BUS_NAME"),
            eventbridge_endpoint: optional("AWS_ENDPOINT_URL_EVENTBRIDGE"),
            cursor_key: match (optional("CURSOR_KEY"), optional("CURSOR_KEY_SECRET_ID")) {
                (None, None) => None,
                _ => Some(secret(&optional, "CURSOR_KEY")?),
            },
            stripe_webhook_secret: match (
                optional("STRIPE_WEBHOOK_SECRET"),
                optional("STRIPE_WEBHOOK_SECRET_SECRET_ID"),
            ) {
                (None, None) => None,
                _ => Some(secret(&optional, "STRIPE_WEBHOOK_SECRET")?),
            },
            api_key_max_days: api_key_max_days(&get)?,
            platform_sender: match (
                optional("PLATFORM_EVENT_SOURCE"),
                optional("PLATFORM_ACCOUNT_ID"),
            ) {
                (None, None) => None,
                (Some(source), Some(account)) => Some(crate::sender::ExpectedSender {
                    source: source.trim().to_owned(),
                    account: account.trim().to_owned(),
                }),
                _ => {
                    return Err(ConfigError(
                        "set PLATFORM_EVENT_SOURCE and PLATFORM_ACCOUNT_ID together".into(),
                    ));
                }
            },
            cascade_grace: match optional("CASCADE_GRACE_SECONDS") {
                None => std::time::Duration::from_secs(30),
                Some(raw) => raw
                    .parse()
                    .map(std::time::Duration::from_secs)
                    .map_err(|_| {
                        ConfigError("CASCADE_GRACE_SECONDS must be a whole number".into())
                    })?,
            },
        })
    }
}

/// Token verification: issuer, audience, one key source, and the claim rules.
fn auth(get: &impl Fn(&str) -> Option<String>) -> Result<AuthConfig, ConfigError> {
    let required = |name: &str| get(name).ok_or_else(|| ConfigError::missing(name));
    let mut jwt = JwtSettings::new(required("JWT_ISSUER")?, required("JWT_AUDIENCE")?);
    if let Some(list) = get("JWT_ALGORITHMS") {
        jwt.algorithms = algorithms(&list)?;
    }
    if let Some(claim) = get("JWT_ROLES_CLAIM") {
        jwt.roles_claim = claim.trim().to_owned();
    }
    if let Some(raw) = get("JWT_MAX_AGE_SECONDS") {
        jwt.max_age = Some(
            raw.trim()
                .parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    ConfigError("JWT_MAX_AGE_SECONDS must be a positive whole number".into())
                })?,
        );
    }
    if let Some(raw) = get("JWT_ACCEPT_ID_TOKENS") {
        jwt.accept_id_tokens = match raw.trim() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(ConfigError(
                    "JWT_ACCEPT_ID_TOKENS must be true or false".into(),
                ));
            }
        };
    }
    let keys = match get("JWT_JWKS_URL") {
        Some(url) => {
            if get("JWT_PUBLIC_KEY").is_some() || get("JWT_PUBLIC_KEY_SECRET_ID").is_some() {
                return Err(ConfigError(
                    "set JWT_JWKS_URL or JWT_PUBLIC_KEY(_SECRET_ID), not both".into(),
                ));
            }
            Jwks::check_url(&url).map_err(|e| ConfigError(e.to_string()))?;
            KeySource::Jwks(url)
        }
        None => KeySource::Pem(secret(get, "JWT_PUBLIC_KEY").map_err(|_| {
            ConfigError(
                "JWT_PUBLIC_KEY, JWT_PUBLIC_KEY_SECRET_ID or JWT_JWKS_URL is required (one of them)"
                    .into(),
            )
        })?),
    };
    Ok(AuthConfig { jwt, keys })
}

/// A comma list of asymmetric JWS algorithm names; symmetric (HS*) and unknown
/// names are refused, an empty list is the default.
fn algorithms(list: &str) -> Result<Vec<Algorithm>, ConfigError> {
    let names: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(ASYMMETRIC.to_vec());
    }
    names
        .into_iter()
        .map(|name| {
            Algorithm::from_str(name)
                .ok()
                .filter(|alg| ASYMMETRIC.contains(alg))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "JWT_ALGORITHMS: {name:?} is not one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
                    ))
                })
        })
        .collect()
}

/// `NAME` given directly or `NAME_SECRET_ID` naming a Secrets Manager secret; exactly one.
fn secret(get: &impl Fn(&str) -> Option<String>, name: &str) -> Result<SecretSource, ConfigError> {
    let id_name = format!("{name}_SECRET_ID");
    match (get(name), get(&id_name)) {
        (Some(value), None) => Ok(SecretSource::Value(SecretString::from(value))),
        (None, Some(id)) => Ok(SecretSource::SecretsManager(id)),
        (Some(_), Some(_)) => Err(ConfigError(format!("set {name} or {id_name}, not both"))),
        (None, None) => Err(ConfigError(format!("{name} or {id_name} is required"))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 3] = [
        ("TABLE_NAME", "t"),
        ("JWT_ISSUER", "i"),
        ("JWT_AUDIENCE", "a"),
    ];

    #[test]
    fn reads_a_secret_id_or_a_value_but_not_both() {
        let with =
            |extra: &[(&str, &str)]| Config::from_lookup(lookup(&[&BASE[..], extra].concat()));
        let key = |c: Config| c.auth.map(|a| a.keys);
        assert!(matches!(
            key(with(&[("JWT_PUBLIC_KEY_SECRET_ID", "arn:x")]).unwrap()),
            Some(KeySource::Pem(SecretSource::SecretsManager(id))) if id == "arn:x"
        ));
        assert!(matches!(
            key(with(&[("JWT_PUBLIC_KEY", "pem")]).unwrap()),
            Some(KeySource::Pem(SecretSource::Value(_)))
        ));
        assert!(matches!(
            key(with(&[("JWT_JWKS_URL", "https://idp.example.com/jwks")]).unwrap()),
            Some(KeySource::Jwks(url)) if url == "https://idp.example.com/jwks"
        ));
        for both in [
            ("JWT_PUBLIC_KEY", "pem"),
            ("JWT_PUBLIC_KEY_SECRET_ID", "arn:x"),
        ] {
            assert!(with(&[both, ("JWT_JWKS_URL", "https://idp.example.com/jwks")]).is_err());
        }
        assert!(with(&[("JWT_JWKS_URL", "http://idp.example.com/jwks")]).is_err());
        assert!(
            with(&[
                ("JWT_PUBLIC_KEY", "pem"),
                ("JWT_PUBLIC_KEY_SECRET_ID", "arn:x")
            ])
            .is_err()
        );
        assert!(with(&[]).is_err());
    }

    #[test]
    fn reads_the_claim_rules_with_safe_defaults() {
        let with = |extra: &[(&str, &str)]| {
            Config::from_lookup(lookup(
                &[&BASE[..], &[("JWT_JWKS_URL", "https://idp/jwks")], extra].concat(),
            ))
            .map(|c| c.auth.unwrap().jwt)
        };
        let defaults = with(&[]).unwrap();
        assert_eq!(defaults.algorithms, ASYMMETRIC.to_vec());
        assert_eq!(defaults.roles_claim, "roles");
        assert_eq!(defaults.max_age, None);
        assert!(
            !defaults.accept_id_tokens,
            "ID tokens are refused by default"
        );
        let set = with(&[
            ("JWT_ALGORITHMS", " RS256, ES256 ,"),
            ("JWT_ROLES_CLAIM", "realm_access.roles"),
            ("JWT_MAX_AGE_SECONDS", "3600"),
            ("JWT_ACCEPT_ID_TOKENS", "true"),
        ])
        .unwrap();
        assert_eq!(set.algorithms, [Algorithm::RS256, Algorithm::ES256]);
        assert_eq!(set.roles_claim, "realm_access.roles");
        assert_eq!(set.max_age, Some(3600));
        assert!(set.accept_id_tokens);
        for (name, bad) in [
            ("JWT_ACCEPT_ID_TOKENS", "yes"),
            ("JWT_ACCEPT_ID_TOKENS", "1"),
            ("JWT_ALGORITHMS", "HS256"),
            ("JWT_ALGORITHMS", "RS256,none"),
            ("JWT_MAX_AGE_SECONDS", "0"),
            ("JWT_MAX_AGE_SECONDS", "-5"),
        ] {
            let err = with(&[(name, bad)]).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn api_keys_live_ninety_days_unless_configured() {
        let days = |raw: &str| api_key_max_days(lookup(&[("API_KEY_MAX_DAYS", raw)]));
        assert_eq!(api_key_max_days(lookup(&[])).unwrap(), 90);
        assert_eq!(days("").unwrap(), 90, "empty is unset");
        assert_eq!(days(" 30 ").unwrap(), 30);
        assert_eq!(days("3660").unwrap(), 3660);
        for bad in ["0", "-1", "3661", "7d", "1.5"] {
            let err = days(bad).unwrap_err();
            assert!(err.to_string().contains("API_KEY_MAX_DAYS"), "{bad}: {err}");
        }
    }

    #[test]
    fn stripe_is_optional_but_complete_when_given() {
        let with = |extra: &[(&str, &str)]| {
            Config::from_lookup(lookup(
                &[&BASE[..], &[("JWT_PUBLIC_KEY", "p")], extra].concat(),
            ))
        };
        assert!(with(&[]).unwrap().stripe.is_none());
        let stripe = with(&[("STRIPE_SECRET_KEY_SECRET_ID", "arn:s")])
            .unwrap()
            .stripe
            .unwrap();
        assert_eq!(stripe.base_url, "https://api.stripe.com");
        let local = with(&[
            ("STRIPE_SECRET_KEY", "sk"),
            ("STRIPE_API_BASE", "http://127.0.0.1:8420"),
        ])
        .unwrap();
        assert_eq!(local.stripe.unwrap().base_url, "http://127.0.0.1:8420");
        assert!(
            with(&[
                ("STRIPE_SECRET_KEY", "sk"),
                ("STRIPE_SECRET_KEY_SECRET_ID", "arn:s")
            ])
            .is_err()
        );
    }

    #[test]
    fn requires_the_table_and_complete_token_settings() {
        // The table always; the token settings all together, or none (event functions).
        let without = |missing: &str| {
            let pairs: Vec<_> = BASE
                .iter()
                .copied()
                .chain([("JWT_PUBLIC_KEY", "p")])
                .filter(|(k, _)| *k != missing)
                .collect();
            Config::from_lookup(lookup(&pairs))
        };
        for missing in ["TABLE_NAME", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_PUBLIC_KEY"] {
            let err = without(missing).unwrap_err();
            assert!(err.to_string().contains(missing), "{err}");
        }
        let events_only = Config::from_lookup(lookup(&[("TABLE_NAME", "t")])).unwrap();
        assert!(events_only.auth.is_none());
        assert_eq!(events_only.api_key_max_days, 90);
        assert!(events_only.platform_sender.is_none());
        let hook = Config::from_lookup(lookup(&[
            ("TABLE_NAME", "t"),
            ("PLATFORM_EVENT_SOURCE", "platform.users"),
            ("PLATFORM_ACCOUNT_ID", "123456789012"),
        ]))
        .unwrap();
        assert_eq!(
            hook.platform_sender,
            Some(crate::sender::ExpectedSender {
                source: "platform.users".into(),
                account: "123456789012".into()
            })
        );
        for half in ["PLATFORM_EVENT_SOURCE", "PLATFORM_ACCOUNT_ID"] {
            let err = Config::from_lookup(lookup(&[("TABLE_NAME", "t"), (half, "x")])).unwrap_err();
            assert!(err.to_string().contains("together"), "{err}");
        }
        assert_eq!(
            events_only.cascade_grace,
            std::time::Duration::from_secs(30)
        );
        assert!(
            Config::from_lookup(lookup(&[
                ("TABLE_NAME", "t"),
                ("CASCADE_GRACE_SECONDS", "x")
            ]))
            .is_err()
        );
    }
}
