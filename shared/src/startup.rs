//! Cold start: clients built once, secrets fetched once and concurrently.

use std::sync::Arc;

use aws_config::SdkConfig;
use secrecy::ExposeSecret;

use crate::auth::{Jwks, JwksError, JwksOptions, JwtVerifier, pem_key};
use crate::aws;
use crate::config::{Config, ConfigError, KeySource};
use crate::events::Publisher;
use crate::payments::{Payments, PaymentsError};
use crate::secrets::{self, Refreshing, SecretError};
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
    /// Builds every client and fetches the JWT key and the Stripe key at once;
    /// both are read again every [`secrets::REFRESH_AFTER`].
    pub async fn build(config: &Config, sdk: &SdkConfig) -> Result<Self, InitError> {
        let secrets = aws::secrets_manager(sdk, config.secrets_endpoint.as_deref());
        let payments = async {
            let Some(stripe) = &config.stripe else {
                return Ok(None);
            };
            Payments::from_secret(
                &stripe.base_url,
                stripe.secret_key.clone(),
                secrets.clone(),
                secrets::REFRESH_AFTER,
            )
            .await
            .map(Some)
            .map_err(InitError::from)
        };
        let jwt = async {
            let Some(auth) = &config.auth else {
                return Ok(None);
            };
            Ok::<_, InitError>(Some(match &auth.keys {
                KeySource::Pem(source) => {
                    let key = Refreshing::load(
                        source.clone(),
                        secrets.clone(),
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
        let (jwt, payments) = tokio::try_join!(jwt, payments)?;
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
