//! Local-stack settings: the same variables as the Lambdas, with defaults that
//! `make dev` and every `billing-dev` command share.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use billing::config::{Config, ConfigError};

/// Development-only Ed25519 key pair (see infra/dev-keys/README.md).
pub const DEV_PUBLIC_KEY: &str = include_str!("../../dev-keys/jwt-ed25519.pub.pem");
const DEV_PRIVATE_KEY: &str = include_str!("../../dev-keys/jwt-ed25519.pem");
/// Any `sk_test_` key works with localstripe.
const LOCAL_STRIPE_KEY: &str = "sk_test_local";
/// The Stripe webhook endpoint secret `make dev` registers with localstripe.
pub const DEV_WEBHOOK_SECRET: &str = "whsec_billing_dev";

/// Defaults for settings the environment does not give.
const DEFAULTS: [(&str, &str); 7] = [
    ("TABLE_NAME", "billing-local"),
    ("STRIPE_API_BASE", "http://127.0.0.1:8420"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
    ("JWT_ISSUER", "https://auth.billing.local"),
    ("JWT_AUDIENCE", "billing-admin-api"),
    ("JWT_SIGNING_KEY", DEV_PRIVATE_KEY),
];

/// A setting from the environment, else its local default.
pub fn setting(name: &str) -> Option<String> {
    if let Some(value) = std::env::var(name).ok().filter(|v| !v.is_empty()) {
        return Some(value);
    }
    if name == "JWT_PUBLIC_KEY"
        && setting("JWT_PUBLIC_KEY_SECRET_ID").is_none()
        && setting("JWT_JWKS_URL").is_none()
    {
        return Some(DEV_PUBLIC_KEY.to_owned());
    }
    if name == "STRIPE_SECRET_KEY" && setting("STRIPE_SECRET_KEY_SECRET_ID").is_none() {
        return Some(LOCAL_STRIPE_KEY.to_owned());
    }
    if name == "STRIPE_WEBHOOK_SECRET" && setting("STRIPE_WEBHOOK_SECRET_SECRET_ID").is_none() {
        return Some(DEV_WEBHOOK_SECRET.to_owned());
    }
    DEFAULTS
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| (*v).to_owned())
}

/// The configuration the local stack runs with.
pub fn config() -> Result<Config, ConfigError> {
    Config::from_lookup(setting)
}

/// SDK configuration: the region above, and fixed local credentials unless the
/// environment has its own (DynamoDB Local accepts any).
pub async fn sdk(config: &Config) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(
        config
            .region
            .clone()
            .unwrap_or_else(|| "us-east-1".to_owned()),
    ));
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "billing-dev",
        ));
    }
    loader.load().await
}
