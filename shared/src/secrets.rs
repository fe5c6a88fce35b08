//! Secrets: from the environment locally, from AWS Secrets Manager in AWS.

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
