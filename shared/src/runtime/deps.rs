//! What functions are built from: each dependency is asked for by the
//! function that needs it, typed, so a function holds only what it uses and a
//! setting it lacks stops its start, naming the setting.

use std::sync::{Arc, OnceLock};

use aws_config::SdkConfig;
use secrecy::ExposeSecret;

use crate::api::{CursorKeys, State};
use crate::auth::{Jwks, JwksError, JwksOptions, JwtVerifier, pem_key};
use crate::aws;
use crate::cascade::Payments;
use crate::cleanup::Cleanup;
use crate::config::{Config, ConfigError, KeySource, SecretSource, StripeConfig};
use crate::events::Publisher;
#[cfg(feature = "stripe")]
use crate::payments::PaymentsError;
use crate::secrets::{self, Refreshing, SecretError};
use crate::sender::ExpectedSender;
use crate::store::Store;
use crate::sync::platform::Platform;
use crate::sync::signature::{Secrets, WebhookSecrets};

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

/// The configuration and the clients every dependency is built from.
pub struct Deps {
    config: Config,
    sdk: SdkConfig,
    secrets: OnceLock<SecretsManager>,
}

impl Deps {
    /// Reads the environment and the AWS SDK's configuration.
    pub async fn from_env() -> Result<Self, InitError> {
        let config = Config::from_env()?;
        let sdk = aws::sdk_config(config.region.as_deref()).await;
        Ok(Self::new(config, sdk))
    }

    /// Dependencies from this configuration, over these AWS SDK settings.
    pub fn new(config: Config, sdk: SdkConfig) -> Self {
        Self {
            config,
            sdk,
            secrets: OnceLock::new(),
        }
    }

    /// The Secrets Manager client, built the first time a secret kept there
    /// is read.
    fn secrets(&self) -> SecretsManager {
        self.secrets
            .get_or_init(|| {
                aws::secrets_manager(&self.sdk, self.config.secrets_endpoint.as_deref())
            })
            .clone()
    }

    /// The table.
    pub fn store(&self) -> Store {
        Store::new(
            aws::dynamodb(&self.sdk, self.config.dynamodb_endpoint.as_deref()),
            &self.config.table_name,
        )
    }

    /// Token verification: the public key (given, or read from Secrets
    /// Manager now and every [`secrets::REFRESH_AFTER`]), or the issuer's
    /// JWKS (fetched on first use: a provider that is down at cold start makes
    /// requests 503, not the function fail to start). Requires `JWT_ISSUER`.
    pub async fn jwt(&self) -> Result<JwtVerifier, InitError> {
        let auth = self
            .config
            .auth
            .as_ref()
            .ok_or_else(|| ConfigError::missing("JWT_ISSUER"))?;
        Ok(match &auth.keys {
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
                    self.secrets(),
                    Box::new(|pem| {
                        pem_key(pem.expose_secret().as_bytes()).map_err(|e| e.to_string())
                    }),
                    secrets::REFRESH_AFTER,
                )
                .await?;
                JwtVerifier::from_secret(Arc::new(key), &auth.jwt)
            }
            KeySource::Jwks(url) => {
                JwtVerifier::jwks(Arc::new(Jwks::new(url, JwksOptions::default())?), &auth.jwt)
            }
        })
    }

    /// Stripe, when configured (never without the `stripe` feature: there
    /// Stripe settings fail the start).
    pub async fn payments(&self) -> Result<Option<Payments>, InitError> {
        match &self.config.stripe {
            None => Ok(None),
            Some(stripe) => payments(stripe, &|| self.secrets()).await.map(Some),
        }
    }

    /// Stripe, which the caller cannot do without: requires
    /// `STRIPE_SECRET_KEY(_SECRET_ID)`.
    pub async fn required_payments(&self) -> Result<Payments, InitError> {
        self.payments()
            .await?
            .ok_or_else(|| ConfigError::missing("STRIPE_SECRET_KEY(_SECRET_ID)").into())
    }

    /// The Stripe webhook endpoint's secrets (given, or read from Secrets
    /// Manager now and every [`secrets::REFRESH_AFTER`]): requires
    /// `STRIPE_WEBHOOK_SECRET(_SECRET_ID)`.
    pub async fn webhook_secrets(&self) -> Result<WebhookSecrets, InitError> {
        let missing = || ConfigError::missing("STRIPE_WEBHOOK_SECRET(_SECRET_ID)");
        Ok(match &self.config.stripe_webhook_secret {
            None => return Err(missing().into()),
            Some(SecretSource::Value(raw)) => WebhookSecrets::Fixed(
                Secrets::parse(raw).ok_or_else(|| ConfigError::missing("STRIPE_WEBHOOK_SECRET"))?,
            ),
            Some(source) => WebhookSecrets::Refreshing(Arc::new(
                Refreshing::load(
                    source.clone(),
                    self.secrets(),
                    Box::new(|raw| Secrets::parse(raw).ok_or_else(|| "empty".to_owned())),
                    secrets::REFRESH_AFTER,
                )
                .await?,
            )),
        })
    }

    /// The keys that seal and open listing cursors, read from Secrets Manager
    /// now and every [`secrets::REFRESH_AFTER`]: requires
    /// `CURSOR_KEY_SECRET_ID` (another instance must open the cursors this
    /// one seals).
    pub async fn cursor_keys(&self) -> Result<CursorKeys, InitError> {
        let source = self
            .config
            .cursor_key
            .as_ref()
            .ok_or_else(|| ConfigError::missing("CURSOR_KEY_SECRET_ID"))?;
        Ok(CursorKeys::load(source, self.secrets(), secrets::REFRESH_AFTER).await?)
    }

    /// Where events go: the EventBridge bus when `EVENT_BUS_NAME` is set (a
    /// mistake without the `events` feature), else the log.
    pub fn publisher(&self) -> Result<Publisher, InitError> {
        match &self.config.event_bus {
            Some(bus) => event_bridge(&self.config, &self.sdk, bus),
            None => Ok(Publisher::Log),
        }
    }

    /// Who the platform's events must come from: requires
    /// `PLATFORM_EVENT_SOURCE` (and `PLATFORM_ACCOUNT_ID`).
    pub fn platform_sender(&self) -> Result<ExpectedSender, InitError> {
        self.config
            .platform_sender
            .clone()
            .ok_or_else(|| ConfigError::missing("PLATFORM_EVENT_SOURCE").into())
    }

    /// The API's handlers: token verification and (for deletions) Stripe,
    /// fetched at once; with `paged`, the deployment's cursor keys, else a
    /// key of this process's own (an endpoint that seals no cursor).
    pub async fn api(&self, paged: bool) -> Result<State, InitError> {
        let cursor_keys = async {
            match paged {
                true => self.cursor_keys().await.map(Some),
                false => Ok(None),
            }
        };
        let (jwt, payments, cursor_keys) =
            tokio::try_join!(self.jwt(), self.payments(), cursor_keys)?;
        let state = State::new(self.store(), jwt, payments).map_err(InitError::Randomness)?;
        let state = State {
            auth: state
                .auth
                .with_api_key_max_days(self.config.api_key_max_days),
            ..state
        };
        Ok(match cursor_keys {
            Some(keys) => state.with_cursor_keys(keys),
            None => state,
        })
    }

    /// The cleanup handlers: the store, Stripe (for cascades) and the event
    /// publisher, with the configured grace, taking `user.deleted` only from
    /// the platform's sender when one is configured.
    pub async fn cleanup(&self) -> Result<Cleanup, InitError> {
        let cleanup = Cleanup::new(self.store(), self.payments().await?, self.publisher()?)
            .with_grace(self.config.cascade_grace);
        Ok(match self.config.platform_sender.clone() {
            Some(sender) => cleanup.with_sender(sender),
            None => cleanup,
        })
    }

    /// The platform's customer events' handlers: the store and (with the
    /// `stripe` feature, when configured) Stripe, taking events only from the
    /// platform's sender when one is configured.
    pub async fn platform(&self) -> Result<Platform, InitError> {
        let platform = platform(self.store(), self.payments().await?);
        Ok(match self.config.platform_sender.clone() {
            Some(sender) => platform.with_sender(sender),
            None => platform,
        })
    }
}

/// The platform's handlers reading Stripe when it is configured.
#[cfg(feature = "stripe")]
fn platform(store: Store, payments: Option<Payments>) -> Platform {
    match payments {
        Some(payments) => Platform::with_stripe(store, payments),
        None => Platform::new(store),
    }
}

/// Without the `stripe` feature the platform's handlers read no Stripe.
#[cfg(not(feature = "stripe"))]
fn platform(store: Store, _: Option<Payments>) -> Platform {
    Platform::new(store)
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
