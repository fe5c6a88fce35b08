//! The composition root: each function's `main` calls one `run_*` here, which
//! builds what that function needs ([`Deps`]) and serves it, HTTP through
//! [`serve_http`], events through [`serve_events`]. Nothing below this module
//! knows about Lambda's runtime.

mod deps;

use std::convert::Infallible;
use std::future::Future;

use aws_lambda_events::dynamodb::Event as StreamBatch;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_http::{Body, Request, Response};
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use deps::{Deps, InitError};

use crate::api::{self, Endpoint};
use crate::telemetry::{self, metrics};

/// Starts `function`: telemetry, and the name its metrics carry.
fn start(function: &'static str) {
    telemetry::init();
    metrics::set_function(function);
}

/// Serves HTTP requests (API Gateway's payload) with `answer`, which never
/// fails: errors are answers.
pub async fn serve_http<A, F>(answer: A) -> Result<(), lambda_http::Error>
where
    A: Fn(Request) -> F,
    F: Future<Output = Response<Body>> + Send,
{
    lambda_http::run(lambda_http::service_fn(|req: Request| {
        let answered = answer(req);
        async move { Ok::<_, Infallible>(answered.await) }
    }))
    .await
}

/// Serves events of type `E` with `handle`; an error fails the invocation
/// (its source retries it).
pub async fn serve_events<E, R, A, F>(handle: A) -> Result<(), lambda_runtime::Error>
where
    E: DeserializeOwned + Send,
    R: Serialize,
    A: Fn(E) -> F,
    F: Future<Output = Result<R, lambda_runtime::Error>> + Send,
{
    lambda_runtime::run(lambda_runtime::service_fn(|event: LambdaEvent<E>| {
        handle(event.payload)
    }))
    .await
}

/// Runs the Lambda of the endpoint that `function` serves (the route table's
/// name for it): fails to start when no endpoint is served by that name.
pub async fn run_function(function: &str) -> Result<(), lambda_http::Error> {
    let endpoint = Endpoint::ALL
        .into_iter()
        .find(|e| e.function() == function)
        .ok_or_else(|| format!("no endpoint of the route table is served by {function}"))?;
    run_endpoint(endpoint).await
}

/// Runs the Lambda serving `endpoint`: clients and secrets once, then requests.
pub async fn run_endpoint(endpoint: Endpoint) -> Result<(), lambda_http::Error> {
    start(endpoint.function());
    let state = Deps::from_env()
        .await?
        .api(endpoint.pages_with_cursors())
        .await?;
    let state = &state;
    serve_http(|req| api::handle(state, endpoint, req)).await
}

/// Runs the Lambda behind API Gateway's `$default` route: requests no route
/// matched get 404 or 405 (with `Allow`) in the error convention. It needs no
/// credentials, table or secrets: it never serves an endpoint.
pub async fn run_route_not_found() -> Result<(), lambda_http::Error> {
    start(api::ROUTE_NOT_FOUND);
    serve_http(|req| async move { api::route_not_found(&req).await }).await
}

/// Runs the Stripe webhook's Lambda: its secrets, the table and Stripe.
#[cfg(feature = "stripe")]
pub async fn run_webhook() -> Result<(), lambda_http::Error> {
    use crate::sync::webhook::{FUNCTION, Webhooks};
    start(FUNCTION);
    let deps = Deps::from_env().await?;
    let (secrets, payments) = tokio::try_join!(deps.webhook_secrets(), deps.required_payments())?;
    let hooks = Webhooks::new(deps.store(), secrets, payments);
    let hooks = &hooks;
    serve_http(|req| async move { hooks.handle(&req).await }).await
}

/// Runs the DynamoDB Streams consumer Lambda. It answers with the batch's failed
/// record (see [`crate::cleanup::Cleanup::on_stream_batch`]); the event source
/// mapping needs `FunctionResponseTypes: [ReportBatchItemFailures]` for Lambda
/// to read it.
pub async fn run_stream_consumer() -> Result<(), lambda_runtime::Error> {
    start(crate::cleanup::STREAM_CONSUMER);
    let cleanup = Deps::from_env().await?.cleanup().await?;
    let cleanup = &cleanup;
    serve_events(|batch: StreamBatch| async move { Ok(cleanup.on_stream_batch(&batch).await) })
        .await
}

/// Runs the `user.deleted` hook Lambda (an EventBridge rule's target). It
/// needs the expected sender (`PLATFORM_EVENT_SOURCE`, `PLATFORM_ACCOUNT_ID`);
/// an event from another is answered as done (nothing retries it).
pub async fn run_user_deleted() -> Result<(), lambda_runtime::Error> {
    start(crate::cleanup::USER_DELETED_HOOK);
    let deps = Deps::from_env().await?;
    deps.platform_sender()?;
    let cleanup = deps.cleanup().await?;
    let cleanup = &cleanup;
    serve_events(|event: Value| async move { cleanup.on_user_deleted_invocation(&event).await })
        .await
}

/// Runs the platform customer events Lambda (an EventBridge rule's target). It
/// needs the expected sender (`PLATFORM_EVENT_SOURCE`, `PLATFORM_ACCOUNT_ID`);
/// an event from another is answered as done (nothing retries it).
pub async fn run_platform_customer() -> Result<(), lambda_runtime::Error> {
    start(crate::sync::platform::FUNCTION);
    let deps = Deps::from_env().await?;
    deps.platform_sender()?;
    let platform = deps.platform().await?;
    let platform = &platform;
    serve_events(|event: Value| async move { platform.on_invocation(&event).await }).await
}

/// Runs the scheduled deletion monitor (an EventBridge schedule's target;
/// the event's content is not used): counts the deletions in progress.
pub async fn run_deletion_monitor() -> Result<(), lambda_runtime::Error> {
    start(crate::monitor::FUNCTION);
    let store = Deps::from_env().await?.store();
    let store = &store;
    serve_events(|_: EventBridgeEvent<Value>| async move {
        crate::monitor::report(store).await.map(drop).map_err(|err| {
            tracing::error!(error = %err, cause = ?std::error::Error::source(&err), "deletion backlog not read");
            err.into()
        })
    })
    .await
}

/// The scheduled reconciliation: each invocation (an EventBridge scheduled
/// event, its content ignored) reconciles every customer, repairing when
/// `RECONCILE_REPAIR=true`; logs each drift and returns the counts.
#[cfg(feature = "stripe")]
pub async fn run_reconcile() -> Result<(), lambda_runtime::Error> {
    use crate::sync::reconcile::{FUNCTION, REPAIR_SETTING, Reconciler, repair_setting};
    start(FUNCTION);
    let repair = repair_setting(std::env::var(REPAIR_SETTING).ok().as_deref())?;
    let deps = Deps::from_env().await?;
    let reconciler = Reconciler::new(deps.store(), deps.required_payments().await?);
    let reconciler = &reconciler;
    serve_events(|_: Value| async move {
        let report = reconciler.run(repair).await.inspect_err(|e| {
            tracing::error!(error = %e, cause = ?std::error::Error::source(e), "reconciliation failed");
        })?;
        for d in &report.drifts {
            let kinds: Vec<&str> = d.kinds.iter().map(|k| k.as_str()).collect();
            tracing::warn!(
                customer = %d.customer,
                kinds = %kinds.join(","),
                repair = d.repair.as_deref().unwrap_or("none"),
                "billing drift"
            );
        }
        Ok::<Value, lambda_runtime::Error>(serde_json::json!({
            "checked": report.checked,
            "drifted": report.drifted,
            "repaired": report.repaired,
            "repairFailed": report.repair_failed,
            "stripeOnly": report.stripe_only,
        }))
    })
    .await
}
