//! Secrets: from the environment locally, from AWS Secrets Manager in AWS.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secrecy::SecretString;

/// Where a secret comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// Given directly (local stack).
    Value(SecretString),
    /// Read from AWS Secrets Manager at cold start.
    SecretsManager(String),
}

impl SecretSource {
    /// What names the secret in logs and errors: its id, never its value.
    pub fn name(&self) -> String {
        match self {
            Self::Value(_) => "(from the environment)".to_owned(),
            Self::SecretsManager(id) => id.clone(),
        }
    }
}

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
    resolve_stage(source, client, Some(CURRENT)).await
}

/// The staging label of a secret's current version (what GetSecretValue reads
/// by default).
pub const CURRENT: &str = "AWSCURRENT";

/// The staging label of a secret's version before its current one: Secrets
/// Manager moves it to the old value when a new one becomes `AWSCURRENT`.
pub const PREVIOUS: &str = "AWSPREVIOUS";
/// The staging label of a value put ahead of becoming current (a rotation's
/// first step).
pub const PENDING: &str = "AWSPENDING";

/// Resolves a secret's version at `stage` (the default, `AWSCURRENT`, when
/// `None`); a value given directly has only its current version.
pub async fn resolve_stage(
    source: &SecretSource,
    client: &aws_sdk_secretsmanager::Client,
    stage: Option<&str>,
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
        .set_version_stage(stage.map(str::to_owned))
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
    build: BuildVersions<T>,
    /// Staging labels read beside the current version (none by default).
    other_stages: &'static [&'static str],
    ttl: Duration,
    current: RwLock<(Arc<T>, Instant)>,
    refresh: tokio::sync::Mutex<()>,
}

/// Builds a value from a secret.
pub type Build<T> = Box<dyn Fn(&SecretString) -> Result<T, String> + Send + Sync>;

/// Builds a value from a secret's current version and its versions at other
/// stages (in the order asked for; each `None` when the secret has none).
pub type BuildVersions<T> =
    Box<dyn Fn(&SecretString, &[Option<SecretString>]) -> Result<T, String> + Send + Sync>;

impl<T: 'static> Refreshing<T> {
    /// Reads the secret and builds the value once.
    pub async fn load(
        source: SecretSource,
        client: aws_sdk_secretsmanager::Client,
        build: Build<T>,
        ttl: Duration,
    ) -> Result<Self, SecretError> {
        let build: BuildVersions<T> = Box::new(move |current, _| build(current));
        Self::load_versions(source, client, &[], build, ttl).await
    }

    /// Reads the secret's current version and its versions at `other_stages`
    /// (e.g. [`PREVIOUS`]) and builds the value once. A stage the secret has
    /// no version at, or that cannot be read, is `None`; only the current
    /// version must be read.
    pub async fn load_versions(
        source: SecretSource,
        client: aws_sdk_secretsmanager::Client,
        other_stages: &'static [&'static str],
        build: BuildVersions<T>,
        ttl: Duration,
    ) -> Result<Self, SecretError> {
        let (secret, others) = read_versions(&source, &client, other_stages).await?;
        let value = build(&secret, &others).map_err(|e| SecretError::Unusable {
            id: source.name(),
            reason: e,
        })?;
        Ok(Self {
            source,
            client,
            build,
            other_stages,
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
        let read = read_versions(&self.source, &self.client, self.other_stages);
        let fresh = tokio::time::timeout(SECRET_READ_TIMEOUT, read)
            .await
            .map_err(|_| "timed out".to_owned())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .and_then(|(secret, others)| (self.build)(&secret, &others));
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

/// A secret's current version (which must be read) and its versions at
/// `other_stages`, read at once (each `None` when absent or unreadable).
async fn read_versions(
    source: &SecretSource,
    client: &aws_sdk_secretsmanager::Client,
    other_stages: &[&str],
) -> Result<(SecretString, Vec<Option<SecretString>>), SecretError> {
    let current = resolve(source, client);
    let others = futures_util::future::join_all(other_stages.iter().map(|stage| async move {
        match source {
            SecretSource::Value(_) => None,
            SecretSource::SecretsManager(_) => {
                resolve_stage(source, client, Some(stage)).await.ok()
            }
        }
    }));
    let (current, others) = tokio::join!(current, others);
    Ok((current?, others))
}

/// Longest a refresh may wait for Secrets Manager.
const SECRET_READ_TIMEOUT: Duration = Duration::from_secs(3);
