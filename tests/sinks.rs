//! Observing the side effects tests care about: events published to EventBridge
//! (moto, delivered by a rule to an SQS queue), the table's stream, and a Stripe
//! that fails on purpose.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use billing::cleanup::Cleanup;
use billing::events::{CustomerDeleted, Publisher};
use billing_dev::stream::StreamPoller;
use serde_json::Value;

use crate::net::serve;
use crate::{Env, TestApp};

/// An EventBridge bus in moto whose events (by default `customer.deleted`) land
/// in an SQS queue.
pub struct EventSink {
    bus: String,
    eventbridge: aws_sdk_eventbridge::Client,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl EventSink {
    /// A fresh bus, rule and queue, for `customer.deleted` events.
    pub async fn new(env: &Env) -> Self {
        let pattern = serde_json::json!({
            "source": [billing::events::SOURCE],
            "detail-type": [billing::events::CUSTOMER_DELETED],
        });
        Self::with_pattern(env, pattern).await
    }

    /// A fresh bus and queue, and a rule with the event pattern `pattern`.
    pub async fn with_pattern(env: &Env, pattern: Value) -> Self {
        let name = format!("billing-{}", uuid::Uuid::new_v4().simple());
        let eventbridge = billing::aws::eventbridge(&env.sdk, Some(&env.moto_url));
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&env.sdk)
                .endpoint_url(&env.moto_url)
                .build(),
        );
        eventbridge
            .create_event_bus()
            .name(&name)
            .send()
            .await
            .expect("create bus");
        let queue_url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes");
        let queue_arn = attrs
            .attributes
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .expect("queue arn");
        eventbridge
            .put_rule()
            .name(&name)
            .event_bus_name(&name)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .expect("put rule");
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id("queue")
            .arn(queue_arn)
            .build()
            .expect("target");
        eventbridge
            .put_targets()
            .rule(&name)
            .event_bus_name(&name)
            .targets(target)
            .send()
            .await
            .expect("put targets");
        Self {
            bus: name,
            eventbridge,
            sqs,
            queue_url,
        }
    }

    /// A publisher to this bus.
    pub fn publisher(&self) -> Publisher {
        Publisher::EventBridge {
            client: self.eventbridge.clone(),
            bus: self.bus.clone(),
        }
    }

    /// Every `customer.deleted` delivered so far (duplicates included), emptying the queue.
    pub async fn drain(&self) -> Vec<CustomerDeleted> {
        self.drain_envelopes()
            .await
            .into_iter()
            .map(|envelope| {
                serde_json::from_value(envelope["detail"].clone()).expect("customer.deleted detail")
            })
            .collect()
    }

    /// Every event delivered so far (duplicates included), as EventBridge
    /// envelopes, emptying the queue.
    pub async fn drain_envelopes(&self) -> Vec<Value> {
        let mut events = Vec::new();
        for _ in 0..100 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                events
                    .push(serde_json::from_str(m.body().unwrap_or_default()).expect("event JSON"));
                if let Some(handle) = m.receipt_handle {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .expect("delete message");
                }
            }
        }
        events
    }
}

/// The table's stream consumer, as the local stack runs it.
pub struct StreamConsumer {
    poller: StreamPoller,
    cleanup: Cleanup,
}

impl StreamConsumer {
    /// A consumer of `app`'s table with Stripe at localstripe and events to `publisher`.
    pub async fn new(env: &Env, app: &TestApp, publisher: Publisher) -> Self {
        let streams = aws_sdk_dynamodbstreams::Client::from_conf(
            aws_sdk_dynamodbstreams::config::Builder::from(&env.sdk)
                .endpoint_url(&env.dynamodb_url)
                .build(),
        );
        let poller = StreamPoller::open(app.store.client(), streams, app.store.table_name())
            .await
            .expect("open stream");
        // No grace: these tests play a consumer whose DELETE requests have died.
        let cleanup = Cleanup::new(app.store.clone(), Some(env.payments()), publisher)
            .with_grace(std::time::Duration::ZERO);
        Self { poller, cleanup }
    }

    /// Handles every record written so far; with `redeliver`, hands each batch to the
    /// handler twice, as an at-least-once event source may.
    pub async fn catch_up(&mut self, redeliver: bool) {
        // The cascade's own writes are records too: poll until a poll finds nothing.
        for _ in 0..20 {
            let events = self.poller.poll().await.expect("poll stream");
            if events.is_empty() {
                return;
            }
            for event in &events {
                let handled = self.cleanup.on_stream_batch(event).await;
                assert!(
                    handled.batch_item_failures.is_empty(),
                    "stream batch handled: {handled:?}"
                );
                if redeliver {
                    let handled = self.cleanup.on_stream_batch(event).await;
                    assert!(
                        handled.batch_item_failures.is_empty(),
                        "redelivered batch handled: {handled:?}"
                    );
                }
            }
        }
        panic!("the stream did not settle within 20 polls");
    }
}

/// A Stripe that answers every request with 500, counting requests.
pub struct FailingStripe {
    /// Its base URL.
    pub url: String,
    /// Requests received.
    pub requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FailingStripe {
    /// Starts it on a free loopback port; `should_retry` sets `Stripe-Should-Retry`.
    pub async fn start(should_retry: Option<bool>) -> Self {
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let app = axum::Router::new().fallback(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut response = axum::response::Response::new(axum::body::Body::from(
                    r#"{"error":{"type":"api_error","message":"injected failure"}}"#,
                ));
                *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                if let Some(retry) = should_retry {
                    response.headers_mut().insert(
                        "stripe-should-retry",
                        http::HeaderValue::from_static(if retry { "true" } else { "false" }),
                    );
                }
                response
            }
        });
        let (url, task) = serve(app).await;
        Self {
            url,
            requests,
            task,
        }
    }

    /// Requests received so far.
    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FailingStripe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback URL where nothing listens.
pub fn closed_url() -> String {
    format!("http://127.0.0.1:{}", crate::servers::free_port())
}

/// Waits a little for moto to route events to the queue.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// A Stripe that forwards every request to localstripe after a delay.
pub struct SlowStripe {
    /// Its base URL.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl SlowStripe {
    /// Starts it on a free loopback port, in front of `upstream`.
    pub async fn start(upstream: String, delay: Duration) -> Self {
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let upstream = upstream.clone();
            async move {
                tokio::time::sleep(delay).await;
                let method = req.method().to_string();
                let path = req
                    .uri()
                    .path_and_query()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let auth = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let (status, body) = tokio::task::spawn_blocking(move || {
                    crate::net::request(
                        &upstream,
                        &method,
                        &path,
                        &[("Authorization", &auth)],
                        None,
                    )
                })
                .await
                .expect("forward");
                let mut response =
                    axum::response::Response::new(axum::body::Body::from(body.to_string()));
                *response.status_mut() = http::StatusCode::from_u16(status).expect("status");
                response
            }
        });
        let (url, task) = serve(app).await;
        Self { url, task }
    }
}

impl Drop for SlowStripe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A Stripe that accepts connections and never answers, holding them open.
pub struct HangingStripe {
    /// Its base URL.
    pub url: String,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl HangingStripe {
    /// Starts it on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        Self {
            url,
            connections,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for HangingStripe {
    fn drop(&mut self) {
        self.task.abort();
    }
}
