//! AWS SDK clients, built once per process.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
pub use aws_sdk_dynamodb::config::timeout::TimeoutConfig;

/// The shared SDK configuration from the default provider chain (region, credentials).
pub async fn sdk_config(region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    loader.load().await
}

/// Connecting to DynamoDB (TCP and TLS): in-region this takes milliseconds; 2 s
/// allows one lost SYN (retransmitted after 1 s).
pub const DYNAMODB_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One attempt of a DynamoDB call. A single item read or write takes milliseconds
/// and the largest transaction of the cascade (49 members, 99 items) tens of them;
/// 3 s only cuts off an attempt that is stuck, and the SDK retries it.
pub const DYNAMODB_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// One DynamoDB call, all its attempts and the SDK's backoff between them. 6 s is
/// below the 10 s timeout of the read and member functions (they answer
/// `database_error` in the error convention instead of being cut off) and well
/// inside the cascade's 20 s budget (`cascade::DEFAULT_BUDGET`), so one stuck call
/// fails the step while the DELETE can still answer.
pub const DYNAMODB_OPERATION_TIMEOUT: Duration = Duration::from_secs(6);

/// The timeouts of every DynamoDB client the functions build (the constants above).
pub fn dynamodb_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(DYNAMODB_CONNECT_TIMEOUT)
        .operation_attempt_timeout(DYNAMODB_ATTEMPT_TIMEOUT)
        .operation_timeout(DYNAMODB_OPERATION_TIMEOUT)
        .build()
}

/// A DynamoDB client, optionally at another endpoint (DynamoDB Local), with
/// [`dynamodb_timeouts`].
pub fn dynamodb(sdk: &SdkConfig, endpoint: Option<&str>) -> aws_sdk_dynamodb::Client {
    dynamodb_with_timeouts(sdk, endpoint, dynamodb_timeouts())
}

/// A DynamoDB client with other timeouts. The integration tests use it: DynamoDB
/// Local queues conflicting transactions where DynamoDB fails them fast, and under
/// the suite's concurrent races it answers one in seconds, which the functions'
/// timeouts would turn into `database_error`s.
pub fn dynamodb_with_timeouts(
    sdk: &SdkConfig,
    endpoint: Option<&str>,
    timeouts: TimeoutConfig,
) -> aws_sdk_dynamodb::Client {
    let mut builder = aws_sdk_dynamodb::config::Builder::from(sdk).timeout_config(timeouts);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamodb_timeouts_fit_the_functions() {
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build();
        let client = dynamodb(&sdk, Some("http://127.0.0.1:8000"));
        let timeouts = client.config().timeout_config().expect("timeouts set");
        assert_eq!(timeouts.connect_timeout(), Some(DYNAMODB_CONNECT_TIMEOUT));
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(DYNAMODB_ATTEMPT_TIMEOUT)
        );
        assert_eq!(
            timeouts.operation_timeout(),
            Some(DYNAMODB_OPERATION_TIMEOUT)
        );
        // An attempt leaves room for a retry inside the operation; an operation
        // ends well before the read functions' 10 s timeout, and the cascade's
        // three DynamoDB steps could each hit it and still end within the budget.
        assert!(DYNAMODB_ATTEMPT_TIMEOUT * 2 <= DYNAMODB_OPERATION_TIMEOUT);
        assert!(DYNAMODB_OPERATION_TIMEOUT < Duration::from_secs(10));
        assert!(DYNAMODB_OPERATION_TIMEOUT * 3 <= crate::cascade::DEFAULT_BUDGET);
    }
}
