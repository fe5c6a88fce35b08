//! Cold start: clients built once, secrets fetched once and concurrently.

use std::sync::Arc;

use aws_config::SdkConfig;
use secrecy::{ExposeSecret, SecretString};

use crate::auth::{Jwks, JwksError, JwksOptions, JwtVerifier};
use crate::aws;
use crate::config::{Config, ConfigError, KeySource, SecretSource};
use crate::events::Publisher;
use crate::payments::{Payments, PaymentsError};
use crate::secrets::{self, SecretError};
use crate::store::Store;

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A secret could not be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The JWT public key is not an Ed25519 PEM.
    #[error("JWT public key is not a valid Ed25519 PEM")]
    JwtKey(#[source] jsonwebtoken::errors::Error),
    /// The JWKS URL is not acceptable.
    #[error(transparent)]
    Jwks(#[from] JwksError),
    /// The Stripe client could not be built.
    #[error(transparent)]
    Payments(#[from] PaymentsError),
}

/// What a function needs besides the store.
pub struct Dependencies {
    /// The table.
    pub store: Store,
    /// Token verification, when configured (HTTP functions).
    pub jwt: Option<JwtVerifier>,
    /// Stripe, when configured.
    pub payments: Option<Payments>,
    /// Where events go.
    pub publisher: Publisher,
    /// Grace the stream consumer gives a cascade in progress.
    pub cascade_grace: std::time::Duration,
}

impl Dependencies {
    /// Builds every client and fetches the JWT key and the Stripe key at once.
    pub async fn build(config: &Config, sdk: &SdkConfig) -> Result<Self, InitError> {
        let secrets = aws::secrets_manager(sdk, config.secrets_endpoint.as_deref());
        let stripe_key = async {
            match &config.stripe {
                Some(stripe) => resolve(&stripe.secret_key, &secrets).await.map(Some),
                None => Ok(None),
            }
        };
        let jwt_key = async {
            match config.auth.as_ref().map(|a| &a.keys) {
                Some(KeySource::Pem(source)) => resolve(source, &secrets).await.map(Some),
                _ => Ok(None),
            }
        };
        let (jwt_pem, stripe_key) = tokio::try_join!(jwt_key, stripe_key)?;
        let jwt = match (&config.auth, jwt_pem) {
            (Some(auth), Some(pem)) => Some(
                JwtVerifier::new(pem.expose_secret().as_bytes(), &auth.jwt)
                    .map_err(InitError::JwtKey)?,
            ),
            // Nothing is fetched here: a provider that is down at cold start
            // makes requests 503, not the function fail to start.
            (Some(auth), None) => match &auth.keys {
                KeySource::Jwks(url) => Some(JwtVerifier::jwks(
                    Arc::new(Jwks::new(url, JwksOptions::default())?),
                    &auth.jwt,
                )),
                KeySource::Pem(_) => None,
            },
            _ => None,
        };
        let payments = match (&config.stripe, stripe_key) {
            (Some(stripe), Some(key)) => Some(Payments::new(&stripe.base_url, &key)?),
            _ => None,
        };
        let publisher = match &config.event_bus {
            Some(bus) => Publisher::EventBridge {
                client: aws::eventbridge(sdk, config.eventbridge_endpoint.as_deref()),
                bus: bus.clone(),
            },
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
        })
    }

    /// Reads the environment and builds everything.
    pub async fn from_env() -> Result<Self, InitError> {
        let config = Config::from_env()?;
        let sdk = aws::sdk_config(config.region.as_deref()).await;
        Self::build(&config, &sdk).await
    }
}

async fn resolve(
    source: &SecretSource,
    client: &aws_sdk_secretsmanager::Client,
) -> Result<SecretString, SecretError> {
    secrets::resolve(source, client).await
}
