//! AWS SDK clients, built once per process, over one HTTP client of our own
//! ([`http_client`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
pub use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The shared SDK configuration from the default provider chain (region,
/// credentials) over [`http_client`].
///
/// Lambda gives a function its credentials in the environment
/// (`AWS_ACCESS_KEY_ID`, ...), where the default chain looks first: when they
/// are there, they are read directly, without building the chain's other
/// providers (profile files, web identity, ECS, IMDS), most of this call's cost
/// at cold start.
pub async fn sdk_config(region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
    loader.load().await
}

/// The HTTP client of every SDK client the functions build: hyper (HTTP/1.1)
/// over rustls with the process's one TLS configuration
/// ([`crate::tls::client_config`]: aws-lc-rs, the Mozilla root certificates
/// compiled into the binary by `webpki-roots`).
///
/// The SDK's default client reads and parses the system certificate store
/// (rustls-native-certs) and builds a TLS connector for every SDK client at
/// construction, at cold start; this one does nothing until a request needs
/// it: the trust anchors are static data, and a connector (TLS configuration
/// and connection pool) is made on first use for each set of connector
/// timeouts (`connect_timeout`, `read_timeout`), then reused by every client
/// of the process. The SDK's own timeouts (attempt, operation) and retries work
/// as with its default client: they run outside the connector, which reports
/// timeouts and I/O failures as such so that they are retried.
pub fn http_client() -> SharedHttpClient {
    SharedHttpClient::new(WebpkiHttpClient::default())
}

/// See [`http_client`].
#[derive(Debug, Default)]
struct WebpkiHttpClient {
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
}

/// A connector's `(connect_timeout, read_timeout)`.
type Timeouts = (Option<Duration>, Option<Duration>);

impl HttpClient for WebpkiHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        connectors
            .entry(key)
            .or_insert_with(|| match crate::tls::client_config() {
                Ok(tls) => SharedHttpConnector::new(Connector::new(tls, key.0, key.1)),
                Err(e) => SharedHttpConnector::new(Unusable(e.to_string())),
            })
            .clone()
    }
}

type HttpsConnector = hyper_rustls::HttpsConnector<TcpConnector>;

/// One pool of connections (HTTPS, or HTTP for a local endpoint).
#[derive(Debug, Clone)]
struct Connector {
    client: Client<HttpsConnector, SdkBody>,
    /// Longest wait for a response's headers once the request is sent.
    read_timeout: Option<Duration>,
}

impl Connector {
    fn new(
        tls: rustls::ClientConfig,
        connect_timeout: Option<Duration>,
        read_timeout: Option<Duration>,
    ) -> Self {
        let mut tcp = TcpConnector::new();
        tcp.set_connect_timeout(connect_timeout);
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            // Idle connections time out (hyper's default, 90 s) only with a timer.
            .pool_timer(TokioTimer::new())
            .build(https);
        Self {
            client,
            read_timeout,
        }
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let sent = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                Some(limit) => tokio::time::timeout(limit, sent)
                    .await
                    .map_err(|elapsed| ConnectorError::timeout(elapsed.into()))?,
                None => sent.await,
            }
            .map_err(connector_error)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// What the SDK's retry strategy needs to know of a failed request, as its own
/// client classifies it: timeouts and I/O failures (refused or reset
/// connections, DNS) are transient and retried, a request the client could not
/// send is the caller's, anything else is not retried.
fn connector_error(err: hyper_util::client::legacy::Error) -> ConnectorError {
    let timed_out = source::<std::io::Error>(&err)
        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        || source::<hyper::Error>(&err).is_some_and(hyper::Error::is_timeout);
    if timed_out {
        return ConnectorError::timeout(err.into());
    }
    if err.is_connect() {
        return ConnectorError::io(err.into());
    }
    match source::<hyper::Error>(&err) {
        Some(e) if e.is_user() => ConnectorError::user(err.into()),
        Some(e) if e.is_incomplete_message() => {
            ConnectorError::other(err.into(), Some(ErrorKind::TransientError))
        }
        Some(e) if e.is_closed() || e.is_canceled() => ConnectorError::io(err.into()),
        _ if source::<std::io::Error>(&err).is_some() => ConnectorError::io(err.into()),
        _ => ConnectorError::other(err.into(), None),
    }
}

/// The first error of type `E` in `err`'s chain.
fn source<'a, E: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    std::iter::successors(Some(err), |e| e.source()).find_map(|e| e.downcast_ref::<E>())
}

/// A connector whose TLS configuration could not be built: every request fails.
#[derive(Debug)]
struct Unusable(String);

impl HttpConnector for Unusable {
    fn call(&self, _: HttpRequest) -> HttpConnectorFuture {
        let err = format!("TLS setup failed: {}", self.0);
        HttpConnectorFuture::ready(Err(ConnectorError::other(err.into(), None)))
    }
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
#[cfg(feature = "events")]
pub fn eventbridge(sdk: &SdkConfig, endpoint: Option<&str>) -> aws_sdk_eventbridge::Client {
    let mut builder = aws_sdk_eventbridge::config::Builder::from(sdk);
    if let Some(url) = endpoint {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_eventbridge::Client::from_conf(builder.build())
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// An SDK configuration over [`http_client`] with fixed credentials.
    fn local_sdk() -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "local", "local", None, None, "test",
            )))
            .http_client(http_client())
            .build()
    }

    #[tokio::test]
    async fn the_http_client_carries_sdk_requests_and_answers() {
        // One HTTP/1.1 exchange, as DynamoDB answers ListTables.
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            let mut buf = [0; 4096];
            // Headers, then the JSON body (`{}`, its last byte `}`).
            while !request.ends_with(b"}") {
                let n = socket.read(&mut buf).await.expect("read");
                assert!(n > 0, "request ended early");
                request.extend_from_slice(&buf[..n]);
            }
            let body = r#"{"TableNames":["billing"]}"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(response.as_bytes()).await.expect("write");
            String::from_utf8_lossy(&request).into_owned()
        });
        let client = dynamodb(&local_sdk(), Some(&url));
        let out = client.list_tables().send().await.expect("ListTables");
        assert_eq!(out.table_names(), ["billing"]);
        let request = server.await.expect("server");
        assert!(request.starts_with("POST / HTTP/1.1\r\n"), "{request}");
        assert!(
            request
                .to_ascii_lowercase()
                .contains("x-amz-target: dynamodb_20120810.listtables"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error_the_sdk_retries() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let client = dynamodb(&local_sdk(), Some(&format!("http://127.0.0.1:{port}")));
        let err = client.list_tables().send().await.expect_err("refused");
        match err {
            aws_sdk_dynamodb::error::SdkError::DispatchFailure(failure) => {
                assert!(failure.is_io(), "{failure:?}");
            }
            other => panic!("not a dispatch failure: {other:?}"),
        }
    }

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
