//! Cold start: clients built once, secrets fetched once and concurrently.

use std::sync::{Arc, OnceLock};

use aws_config::SdkConfig;
use secrecy::ExposeSecret;

use crate::auth::{Jwks, JwksError, JwksOptions, JwtVerifier, pem_key};
use crate::aws;
use crate::cascade::Payments;
use crate::config::{Config, ConfigError, KeySource, SecretSource, StripeConfig};
use crate::events::Publisher;
#[cfg(feature = "stripe")]
use crate::payments::PaymentsError;
use crate::secrets::{self, Refreshing, SecretError};
use crate::store::Store;
use crate::sync::signature::Secrets;
use crate::sync::signature::WebhookSecrets;

type SecretsManager = aws_sdk_secretsmanager::Client;

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A secret could not be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The JWKS URL is not acceptable.
    #[error(transparent)]
    Jwks(#[from] JwksError),
    /// The operating system gave no randomness (a process-local cursor key).
    #[error("no randomness for a cursor key: {0}")]
    Randomness(getrandom::Error),
    /// The Stripe client could not be built.
    #[cfg(feature = "stripe")]
    #[error(transparent)]
    Payments(#[from] PaymentsError),
}

/// What a function needs besides the store.
pub struct Dependencies {
    /// The table.
    pub store: Store,
    /// Token verification, when configured (HTTP functions).
    pub jwt: Option<JwtVerifier>,
    /// Stripe, when configured (never without the `stripe` feature).
    pub payments: Option<Payments>,
    /// Where events go (the log only without the `events` feature).
    pub publisher: Publisher,
    /// Grace the stream consumer gives a cascade in progress.
    pub cascade_grace: std::time::Duration,
    /// The keys that seal and open listing cursors, when configured.
    pub cursor_keys: Option<crate::api::CursorKeys>,
    /// The Stripe webhook endpoint's secrets, when configured.
    pub webhook_secrets: Option<WebhookSecrets>,
    /// The longest an API key lives, in days (`API_KEY_MAX_DAYS`).
    pub api_key_max_days: u32,
    /// Who the platform's events must come from, when configured.
    pub platform_sender: Option<crate::sender::ExpectedSender>,
}

impl Dependencies {
    /// Builds every client and fetches the JWT key, the Stripe key, the
    /// webhook's secret and the cursor key at once;
    /// those kept in Secrets Manager are read again every
    /// [`secrets::REFRESH_AFTER`]. The Secrets Manager client is built only
    /// when one of them is kept there.
    pub async fn build(config: &Config, sdk: &SdkConfig) -> Result<Self, InitError> {
        let secrets_client = OnceLock::new();
        let secrets = || {
            secrets_client
                .get_or_init(|| aws::secrets_manager(sdk, config.secrets_endpoint.as_deref()))
                .clone()
        };
        let payments = async {
            let Some(stripe) = &config.stripe else {
                return Ok(None);
            };
            payments(stripe, &secrets).await.map(Some)
        };
        let jwt = async {
            let Some(auth) = &config.auth else {
                return Ok(None);
            };
            Ok::<_, InitError>(Some(match &auth.keys {
                KeySource::Pem(SecretSource::Value(pem)) => {
                    JwtVerifier::new(pem.expose_secret().as_bytes(), &auth.jwt).map_err(|e| {
                        SecretError::Unusable {
                            id: "JWT_PUBLIC_KEY".to_owned(),
                            reason: e.to_string(),
                        }
                    })?
                }
                KeySource::Pem(source) => {
                    let key = Refreshing::load(
                        source.clone(),
                        secrets(),
                        Box::new(|pem| {
                            pem_key(pem.expose_secret().as_bytes()).map_err(|e| e.to_string())
                        }),
                        secrets::REFRESH_AFTER,
                    )
                    .await?;
                    JwtVerifier::from_secret(Arc::new(key), &auth.jwt)
                }
                // Nothing is fetched here: a provider that is down at cold start
                // makes requests 503, not the function fail to start.
                KeySource::Jwks(url) => {
                    JwtVerifier::jwks(Arc::new(Jwks::new(url, JwksOptions::default())?), &auth.jwt)
                }
            }))
        };
        let webhook_secrets = async {
            Ok::<_, InitError>(match &config.stripe_webhook_secret {
                None => None,
                Some(SecretSource::Value(raw)) => Some(WebhookSecrets::Fixed(
                    Secrets::parse(raw)
                        .ok_or_else(|| ConfigError::missing("STRIPE_WEBHOOK_SECRET"))?,
                )),
                Some(source) => Some(WebhookSecrets::Refreshing(Arc::new(
                    Refreshing::load(
                        source.clone(),
                        secrets(),
                        Box::new(|raw| Secrets::parse(raw).ok_or_else(|| "empty".to_owned())),
                        secrets::REFRESH_AFTER,
                    )
                    .await?,
                ))),
            })
        };
        let cursor_keys = async {
            Ok::<_, InitError>(match &config.cursor_key {
                None => None,
                Some(source) => Some(
                    crate::api::CursorKeys::load(source, secrets(), secrets::REFRESH_AFTER).await?,
                ),
            })
        };
        let (jwt, payments, webhook_secrets, cursor_keys) =
            tokio::try_join!(jwt, payments, webhook_secrets, cursor_keys)?;
        let publisher = match &config.event_bus {
            Some(bus) => event_bridge(config, sdk, bus)?,
            None => Publisher::Log,
        };
        let store = Store::new(
            aws::dynamodb(sdk, config.dynamodb_endpoint.as_deref()),
            &config.table_name,
        );
        Ok(Self {
            store,
            jwt,
            payments,
            publisher,
            cascade_grace: config.cascade_grace,
            cursor_keys,
            webhook_secrets,
            api_key_max_days: config.api_key_max_days,
            platform_sender: config.platform_sender.clone(),
        })
    }

    /// Reads the environment and builds everything.
    pub async fn from_env() -> Result<Self, InitError> {
        let config = Config::from_env()?;
        let sdk = aws::sdk_config(config.region.as_deref()).await;
        Self::build(&config, &sdk).await
    }
}

/// Stripe with the key given, or with the key read from Secrets Manager now
/// and again every [`secrets::REFRESH_AFTER`].
#[cfg(feature = "stripe")]
async fn payments(
    stripe: &StripeConfig,
    secrets: &impl Fn() -> SecretsManager,
) -> Result<Payments, InitError> {
    Ok(match &stripe.secret_key {
        SecretSource::Value(key) => Payments::new(&stripe.base_url, key)?,
        source => {
            let (url, ttl) = (&stripe.base_url, secrets::REFRESH_AFTER);
            Payments::from_secret(url, source.clone(), secrets(), ttl).await?
        }
    })
}

/// Without the `stripe` feature there is no Stripe client: Stripe settings are
/// a mistake (a function that deletes customers built without it).
#[cfg(not(feature = "stripe"))]
async fn payments(
    _: &StripeConfig,
    _: &impl Fn() -> SecretsManager,
) -> Result<Payments, InitError> {
    Err(ConfigError::not_built_in("STRIPE_SECRET_KEY(_SECRET_ID)", "stripe").into())
}

/// Events to the EventBridge bus `bus`.
#[cfg(feature = "events")]
fn event_bridge(config: &Config, sdk: &SdkConfig, bus: &str) -> Result<Publisher, InitError> {
    Ok(Publisher::EventBridge {
        client: aws::eventbridge(sdk, config.eventbridge_endpoint.as_deref()),
        bus: bus.to_owned(),
    })
}

/// Without the `events` feature events go to the log only: a bus is a mistake.
#[cfg(not(feature = "events"))]
fn event_bridge(_: &Config, _: &SdkConfig, _: &str) -> Result<Publisher, InitError> {
    Err(ConfigError::not_built_in("EVENT_BUS_NAME", "events").into())
}
