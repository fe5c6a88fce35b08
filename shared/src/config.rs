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
    /// Expected token issuer and audience (`JWT_ISSUER`, `JWT_AUDIENCE`).
    pub jwt: JwtSettings,
    /// Ed25519 public key in PEM (`JWT_PUBLIC_KEY`, or `JWT_PUBLIC_KEY_SECRET_ID`).
    pub jwt_public_key: SecretSource,
    /// Stripe, for the functions that run the deletion cascade.
    pub stripe: Option<StripeConfig>,
    /// Where `customer.deleted` goes (`EVENT_BUS_NAME`); the log when unset.
    pub event_bus: Option<String>,
    /// EventBridge endpoint override (`AWS_ENDPOINT_URL_EVENTBRIDGE`).
    pub eventbridge_endpoint: Option<String>,
}

/// Stripe settings.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// API base URL (`STRIPE_API_BASE`, default `https://api.stripe.com`).
    pub base_url: String,
    /// Secret key (`STRIPE_SECRET_KEY`, or `STRIPE_SECRET_KEY_SECRET_ID`).
    pub secret_key: SecretSource,
}

/// A required setting is missing or empty.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

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
            jwt: JwtSettings {
                issuer: required("JWT_ISSUER")?,
                audience: required("JWT_AUDIENCE")?,
            },
            jwt_public_key: secret(&optional, "JWT_PUBLIC_KEY")?,
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
        assert!(matches!(
            with(&[("JWT_PUBLIC_KEY_SECRET_ID", "arn:x")]).unwrap().jwt_public_key,
            SecretSource::SecretsManager(id) if id == "arn:x"
        ));
        assert!(matches!(
            with(&[("JWT_PUBLIC_KEY", "pem")]).unwrap().jwt_public_key,
            SecretSource::Value(_)
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
    fn requires_the_table_and_token_settings() {
        for missing in ["TABLE_NAME", "JWT_ISSUER", "JWT_AUDIENCE"] {
            let pairs: Vec<_> = BASE
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .chain([("JWT_PUBLIC_KEY", "p")])
                .collect();
            let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
            assert!(err.to_string().contains(missing), "{err}");
        }
    }
}
