//! Typed configuration, read once at cold start from the environment.

use secrecy::SecretString;

use crate::auth::JwtSettings;

/// Where a secret comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// Given directly (local stack).
    Value(SecretString),
    /// Read from AWS Secrets Manager at cold start.
    SecretsManager(String),
}

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
}

/// Token verification settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Expected token issuer and audience (`JWT_ISSUER`, `JWT_AUDIENCE`).
    pub jwt: JwtSettings,
    /// Ed25519 public key in PEM (`JWT_PUBLIC_KEY`, or `JWT_PUBLIC_KEY_SECRET_ID`).
    pub public_key: SecretSource,
}

/// Stripe settings.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// API base URL (`STRIPE_API_BASE`, default `https://api.stripe.com`).
    pub base_url: String,
    /// Secret key (`STRIPE_SECRET_KEY`, or `STRIPE_SECRET_KEY_SECRET_ID`).
    pub secret_key: SecretSource,
}

/// The token settings: all of them (HTTP functions) or none (event functions).
const AUTH_SETTINGS: [&str; 4] = [
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_PUBLIC_KEY",
    "JWT_PUBLIC_KEY_SECRET_ID",
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
                Some(AuthConfig {
                    jwt: JwtSettings {
                        issuer: required("JWT_ISSUER")?,
                        audience: required("JWT_AUDIENCE")?,
                    },
                    public_key: secret(&optional, "JWT_PUBLIC_KEY")?,
                })
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
        let key = |c: Config| c.auth.map(|a| a.public_key);
        assert!(matches!(
            key(with(&[("JWT_PUBLIC_KEY_SECRET_ID", "arn:x")]).unwrap()),
            Some(SecretSource::SecretsManager(id)) if id == "arn:x"
        ));
        assert!(matches!(
            key(with(&[("JWT_PUBLIC_KEY", "pem")]).unwrap()),
            Some(SecretSource::Value(_))
        ));
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
