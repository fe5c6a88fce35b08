//! The envelope of every HTTP request this service answers (the API's
//! endpoints, the Stripe webhook, unrouted requests): its ids, the span its
//! log lines are written in, and the answer logged and counted.

use std::future::Future;
use std::time::Instant;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use tracing::Instrument;
use tracing::field::Empty;

use super::metrics::{self, RequestIds};

/// Serves `req` for `function` inside its envelope: `serve` runs in the
/// request's span (see [`span`]) with the request's ids, and its answer is
/// logged and counted ([`finish`]) in the function's metrics.
pub async fn enveloped<F, Fut>(function: &'static str, req: &Request, serve: F) -> Response<Body>
where
    F: FnOnce(RequestIds) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    let started = Instant::now();
    let ids = ids(req);
    let span = span(function, &ids);
    let work = async {
        let response = serve(ids.clone()).await;
        finish(function, &response, started, &ids);
        response
    };
    metrics::in_function(function, work.instrument(span)).await
}

/// The span every log line of a request is written in: the function, the
/// Lambda request id (`request_id`; a fresh UUID on the local server), API
/// Gateway's (`api_request_id`) and the X-Ray trace id (`trace_id`), then the
/// caller and why a caller was refused, once known.
fn span(function: &'static str, ids: &RequestIds) -> tracing::Span {
    tracing::info_span!(
        "request",
        endpoint = function,
        request_id = ids.request_id.as_str(),
        api_request_id = ids.api_request_id.as_deref(),
        trace_id = ids.trace_id.as_deref(),
        caller = Empty,
        auth_failure = Empty,
    )
}

/// Logs the answer and emits the request's metrics (`Requests`, `Latency`,
/// carrying the request's ids as properties).
fn finish(function: &str, response: &Response<Body>, started: Instant, ids: &RequestIds) {
    let status = response.status().as_u16();
    let latency = started.elapsed();
    tracing::info!(
        status,
        latency_ms = latency.as_secs_f64() * 1000.0,
        "handled"
    );
    metrics::request(function, status, latency, ids);
}

/// The request's ids: Lambda's (a fresh UUID on the local server), API
/// Gateway's, and the X-Ray trace id (from the invocation, else from
/// `_X_AMZN_TRACE_ID`), as its root (`1-...`).
fn ids(req: &Request) -> RequestIds {
    let lambda = req.lambda_context_ref();
    let request_id = lambda
        .map(|c| c.request_id.clone())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let trace_id = lambda
        .and_then(|c| c.xray_trace_id.clone())
        .or_else(|| std::env::var("_X_AMZN_TRACE_ID").ok())
        .filter(|t| !t.trim().is_empty())
        .map(|t| trace_root(&t));
    #[allow(unreachable_patterns)]
    let api_request_id = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.request_id.clone(),
        _ => None,
    };
    RequestIds {
        request_id,
        api_request_id: api_request_id.filter(|id| !id.is_empty()),
        trace_id,
    }
}

/// The `Root` of an X-Ray trace header (`Root=1-...;Parent=...;Sampled=1`), or
/// the value itself when it has none.
fn trace_root(header: &str) -> String {
    header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
        .unwrap_or(header)
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_id_is_the_root_of_the_trace_header() {
        assert_eq!(
            trace_root(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
            ),
            "1-5759e988-bd862e3fe1be46a994272793"
        );
        assert_eq!(trace_root("Parent=1;Root=1-a-b"), "1-a-b");
        assert_eq!(trace_root("1-a-b"), "1-a-b");
    }
}
