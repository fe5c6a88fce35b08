//! AWS SDK clients, built once per process.

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The shared SDK configuration from the default provider chain (region, credentials).
pub async fn sdk_config(region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    loader.load().await
}

/// A DynamoDB client, optionally at another endpoint (DynamoDB Local).
pub fn dynamodb(sdk: &SdkConfig, endpoint: Option<&str>) -> aws_sdk_dynamodb::Client {
    let mut builder = aws_sdk_dynamodb::config::Builder::from(sdk);
    if let Some(url) = endpoint {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_dynamodb::Client::from_conf(builder.build())
}

/// A Secrets Manager client, optionally at another endpoint (moto).
pub fn secrets_manager(sdk: &SdkConfig, endpoint: Option<&str>) -> aws_sdk_secretsmanager::Client {
    let mut builder = aws_sdk_secretsmanager::config::Builder::from(sdk);
    if let Some(url) = endpoint {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_secretsmanager::Client::from_conf(builder.build())
}

/// An EventBridge client, optionally at another endpoint (moto).
pub fn eventbridge(sdk: &SdkConfig, endpoint: Option<&str>) -> aws_sdk_eventbridge::Client {
    let mut builder = aws_sdk_eventbridge::config::Builder::from(sdk);
    if let Some(url) = endpoint {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_eventbridge::Client::from_conf(builder.build())
}
