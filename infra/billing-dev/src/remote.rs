//! A deployed stack's table, reached with the standard AWS credential chain:
//! nothing of the local stack's defaults applies here.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::ProvideCredentials;
use billing::store::Store;

use crate::Error;

/// Environment variables that would send DynamoDB calls somewhere else.
const ENDPOINT_VARIABLES: [&str; 2] = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"];

/// Longest the credential chain may take (SSO and processes included).
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(30);

/// Which table, where.
pub struct Target {
    /// The stack's table name (its `TableName` output).
    pub table: String,
    /// Region, else the chain's.
    pub region: Option<String>,
    /// An explicit endpoint; none means AWS itself.
    pub endpoint: Option<String>,
}

impl Target {
    /// The store on the target table, after checking that credentials and a
    /// region resolve and that the table exists.
    pub async fn store(&self) -> Result<Store, Error> {
        let overridden = ENDPOINT_VARIABLES
            .iter()
            .find(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
        if let (None, Some(name)) = (&self.endpoint, overridden) {
            return Err(format!(
                "{name} is set: --aws-table talks to AWS; unset it, or pass --endpoint-url to mean another endpoint"
            )
            .into());
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk = loader.load().await;
        let region = sdk
            .region()
            .ok_or("no AWS region: pass --region, or set AWS_REGION or a profile's region")?
            .to_string();
        let provider = sdk
            .credentials_provider()
            .ok_or("no AWS credential provider")?;
        tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials())
            .await
            .map_err(|_| "AWS credentials did not resolve in time")?
            .map_err(|e| {
                format!(
                    "no AWS credentials ({e}): use the environment, AWS_PROFILE, or `aws sso login`"
                )
            })?;
        let store = Store::new(billing::aws::dynamodb(&sdk, None), &self.table);
        if !store.table_exists().await? {
            return Err(format!("table {} not found in {region}", self.table).into());
        }
        eprintln!("billing-dev: table {} in {region}", self.table);
        Ok(store)
    }
}
