//! Secrets: from the environment locally, from AWS Secrets Manager in AWS.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::config::SecretSource;

/// A secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Secrets Manager failed or the secret has no string value.
    #[error("reading secret {id} from Secrets Manager failed")]
    Fetch {
        /// The secret id (never its value).
        id: String,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The secret was read but its value cannot be used.
    #[error("secret {id} is not usable: {reason}")]
    Unusable {
        /// The secret id or variable name (never its value).
        id: String,
        /// Why.
        reason: String,
    },
}

/// Resolves a secret, calling GetSecretValue once when it lives in Secrets Manager.
pub async fn resolve(
    source: &SecretSource,
    client: &aws_sdk_secretsmanager::Client,
) -> Result<SecretString, SecretError> {
    let id = match source {
        SecretSource::Value(value) => return Ok(value.clone()),
        SecretSource::SecretsManager(id) => id,
    };
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| SecretError::Fetch {
        id: id.clone(),
        source,
    };
    let out = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| fail(Box::new(aws_sdk_secretsmanager::Error::from(e))))?;
    out.secret_string
        .map(SecretString::from)
        .ok_or_else(|| fail("secret has no string value".into()))
}

/// How long a secret from Secrets Manager is used before it is read again: a
/// rotated key reaches every warm function within this time.
pub const REFRESH_AFTER: Duration = Duration::from_secs(300);

/// A value built from a secret, rebuilt when the secret is read again after
/// [`REFRESH_AFTER`]. A failed read or an unusable new value keeps the current
/// one; only the first read, at cold start, can fail.
pub struct Refreshing<T> {
    source: SecretSource,
    client: aws_sdk_secretsmanager::Client,
    build: Build<T>,
    ttl: Duration,
    current: RwLock<(Arc<T>, Instant)>,
    refresh: tokio::sync::Mutex<()>,
}

/// Builds a value from a secret.
pub type Build<T> = Box<dyn Fn(&SecretString) -> Result<T, String> + Send + Sync>;

impl<T> Refreshing<T> {
    /// Reads the secret and builds the value once.
    pub async fn load(
        source: SecretSource,
        client: aws_sdk_secretsmanager::Client,
        build: Build<T>,
        ttl: Duration,
    ) -> Result<Self, SecretError> {
        let secret = resolve(&source, &client).await?;
        let value = build(&secret).map_err(|e| SecretError::Unusable {
            id: source.name(),
            reason: e,
        })?;
        Ok(Self {
            source,
            client,
            build,
            ttl,
            current: RwLock::new((Arc::new(value), Instant::now())),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    /// The current value; past its TTL, the secret is read again first (one
    /// reader at a time; the others keep using the current value meanwhile).
    pub async fn get(&self) -> Arc<T> {
        let (value, read_at) = self.snapshot();
        if matches!(self.source, SecretSource::Value(_)) || read_at.elapsed() < self.ttl {
            return value;
        }
        let Ok(_guard) = self.refresh.try_lock() else {
            return value;
        };
        // Whatever happens, the next attempt waits a full TTL.
        let fresh = tokio::time::timeout(SECRET_READ_TIMEOUT, resolve(&self.source, &self.client))
            .await
            .map_err(|_| "timed out".to_owned())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .and_then(|secret| (self.build)(&secret));
        let mut current = self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match fresh {
            Ok(value) => *current = (Arc::new(value), Instant::now()),
            Err(reason) => {
                tracing::warn!(secret = %self.source.name(), %reason, "secret refresh failed; the current value stays in use");
                current.1 = Instant::now();
            }
        }
        current.0.clone()
    }

    fn snapshot(&self) -> (Arc<T>, Instant) {
        let current = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (current.0.clone(), current.1)
    }
}

/// Longest a refresh may wait for Secrets Manager.
const SECRET_READ_TIMEOUT: Duration = Duration::from_secs(3);
