//! The endpoints: authenticate, authorize, parse, one call into the store,
//! map the result to HTTP.

mod add_member;
mod change_member_role;
mod cursor;
mod delete_customer;
mod get_customer;
mod get_user_customer;
mod idempotency;
mod list_audit;
mod list_customers;
mod list_members;
mod remove_member;
mod views;

use std::time::Instant;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use tracing::Instrument;
use tracing::field::Empty;

use crate::auth::{Authenticator, BILLING_ADMIN, JwtVerifier};
use crate::cascade::{Cascade, Payments};
use crate::config::ConfigError;
use crate::domain::audit::Origin;
use crate::error::ApiError;
use crate::http::Endpoint;
use crate::startup::{Dependencies, InitError};
use crate::store::Store;
use crate::telemetry::metrics::{self, RequestIds};
pub use cursor::{CursorKeys, Cursors};

/// What the handlers share: built once per process.
#[derive(Clone)]
pub struct State {
    /// The table.
    pub store: Store,
    /// Credential verification.
    pub auth: Authenticator,
    /// The deletion cascade.
    pub cascade: Cascade,
    /// Listing cursors: their keys ([`CursorKeys::current`]).
    pub cursors: CursorKeys,
    /// How long a running request holds its `Idempotency-Key` against
    /// retries (60 s; tests shorten it).
    pub idempotency_lock: std::time::Duration,
}

impl State {
    /// The state over a store, a token verifier and (for deletions) Stripe,
    /// sealing cursors under a random key of its own until
    /// [`State::with_cursor_key`] gives it the deployment's. Fails when the
    /// operating system has no randomness to give.
    pub fn new(
        store: Store,
        jwt: JwtVerifier,
        payments: Option<Payments>,
    ) -> Result<Self, getrandom::Error> {
        Ok(Self {
            auth: Authenticator::new(jwt, store.clone()),
            cascade: Cascade::new(store.clone(), payments),
            cursors: CursorKeys::fixed(Cursors::new(random_key()?)),
            idempotency_lock: idempotency::LOCK,
            store,
        })
    }

    /// This state, sealing and opening listing cursors under `key`.
    pub fn with_cursor_key(self, key: &str) -> Self {
        self.with_cursor_keys(CursorKeys::fixed(Cursors::new(key)))
    }

    /// This state, sealing and opening listing cursors under `keys`.
    pub fn with_cursor_keys(self, keys: CursorKeys) -> Self {
        Self {
            cursors: keys,
            ..self
        }
    }
}

/// A key for cursors that only this process opens (tests, one local server):
/// 32 bytes of the operating system's randomness, or an error. There is no
/// fallback: a fixed key (all zeros) would be public, and anyone could seal
/// cursors that this process then trusts.
fn random_key() -> Result<Vec<u8>, getrandom::Error> {
    let mut key = vec![0; 32];
    getrandom::fill(&mut key)?;
    Ok(key)
}

impl TryFrom<Dependencies> for State {
    type Error = InitError;

    /// Fails when token verification is not configured.
    fn try_from(deps: Dependencies) -> Result<Self, InitError> {
        let jwt = deps.jwt.ok_or_else(|| ConfigError::missing("JWT_ISSUER"))?;
        let mut state = Self::new(deps.store, jwt, deps.payments).map_err(InitError::Randomness)?;
        state.auth = state.auth.with_api_key_max_days(deps.api_key_max_days);
        Ok(match deps.cursor_keys {
            Some(keys) => state.with_cursor_keys(keys),
            None => state,
        })
    }
}

/// Runs a Lambda serving `endpoint`: telemetry, clients and secrets once, then requests.
pub async fn run_lambda(endpoint: Endpoint) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    metrics::set_function(endpoint.function());
    let deps = Dependencies::from_env().await?;
    // Another instance must open the cursors this one seals.
    if endpoint.pages_with_cursors() && deps.cursor_keys.is_none() {
        return Err(ConfigError::missing("CURSOR_KEY_SECRET_ID").into());
    }
    let state = State::try_from(deps)?;
    lambda_http::run(lambda_http::service_fn(|req: Request| {
        let state = &state;
        async move { Ok::<_, std::convert::Infallible>(handle(state, endpoint, req).await) }
    }))
    .await
}

/// Runs the Lambda behind API Gateway's `$default` route: requests no route
/// matched get 404 or 405 (with `Allow`) in the error convention. It needs no
/// credentials, table or secrets: it never serves an endpoint.
pub async fn run_route_not_found_lambda() -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    metrics::set_function(ROUTE_NOT_FOUND);
    lambda_http::run(lambda_http::service_fn(|req: Request| async move {
        Ok::<_, std::convert::Infallible>(route_not_found(&req))
    }))
    .await
}

/// The function (and `Function` metric dimension) answering unrouted requests.
pub const ROUTE_NOT_FOUND: &str = "route-not-found";

/// The 404/405 answer for a request API Gateway matched to no route.
pub fn route_not_found(req: &Request) -> Response<Body> {
    let err = match crate::http::route(req.method(), req.uri().path()) {
        Err(err) => err,
        // Only a request API Gateway could not route gets here.
        Ok(_) => ApiError::RouteNotFound,
    };
    unrouted(req, err)
}

/// The error answer to a request no endpoint serves, logged and counted like
/// any other request (as `route-not-found`).
fn unrouted(req: &Request, err: ApiError) -> Response<Body> {
    let started = Instant::now();
    let ids = request_ids(req);
    let _entered = request_span(ROUTE_NOT_FOUND, &ids).entered();
    let response = err.into_response();
    finish(ROUTE_NOT_FOUND, &response, started, &ids);
    response
}

/// Routes a request by method and path (404/405 in the error convention), then
/// serves it: the local server and the catch-all route use this.
pub async fn dispatch(state: &State, req: Request) -> Response<Body> {
    match crate::http::route(req.method(), req.uri().path()) {
        Ok((endpoint, params)) => {
            let params: std::collections::HashMap<String, String> = params.into_iter().collect();
            handle(state, endpoint, req.with_path_parameters(params)).await
        }
        Err(err) => unrouted(&req, err),
    }
}

/// Serves one request for `endpoint`: never fails, errors become error responses.
///
/// Every log line of the request is written in its `request` span, which carries
/// the Lambda request id (`request_id`; a fresh UUID on the local server), API
/// Gateway's (`api_request_id`) and the X-Ray trace id (`trace_id`); the request's
/// `Requests` and `Latency` metrics carry the same ids as properties.
pub async fn handle(state: &State, endpoint: Endpoint, req: Request) -> Response<Body> {
    let started = Instant::now();
    let ids = request_ids(&req);
    let function = endpoint.function();
    let span = request_span(function, &ids);
    let work = async {
        let response = match serve(state, endpoint, &req, &ids.request_id).await {
            Ok(response) => response,
            Err(err) => err.into_response(),
        };
        finish(function, &response, started, &ids);
        response
    };
    metrics::in_function(function, work.instrument(span)).await
}

/// The span every log line of a request is written in.
pub(crate) fn request_span(function: &'static str, ids: &RequestIds) -> tracing::Span {
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

/// Logs the answer and emits the request's metrics.
pub(crate) fn finish(
    function: &str,
    response: &Response<Body>,
    started: Instant,
    ids: &RequestIds,
) {
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
pub fn request_ids(req: &Request) -> RequestIds {
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

async fn serve(
    state: &State,
    endpoint: Endpoint,
    req: &Request,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let caller = match state.auth.authenticate(req.headers()).await {
        Ok(caller) => caller,
        Err(err) => {
            auth_failed(endpoint, err.reason());
            return Err(ApiError::from(err));
        }
    };
    tracing::Span::current().record("caller", caller.subject.as_str());
    if !caller.has_role(BILLING_ADMIN) {
        auth_failed(endpoint, "forbidden");
        return Err(ApiError::Forbidden);
    }
    let origin = Origin::new(caller.actor()).for_request(request_id);
    let claimed = match endpoint.idempotent() {
        false => None,
        true => match idempotency::start(&state.store, &caller, req, state.idempotency_lock).await?
        {
            idempotency::Start::Act(claimed) => claimed,
            idempotency::Start::Replay(answer) => return Ok(answer),
        },
    };
    let claim = claimed.as_ref();
    let outcome = match endpoint {
        Endpoint::ListCustomers => list_customers::run(state, req).await,
        Endpoint::GetCustomer => get_customer::run(state, req).await,
        Endpoint::DeleteCustomer => delete_customer::run(state, req, &origin, claim).await,
        Endpoint::ListMembers => list_members::run(state, req).await,
        Endpoint::AddMember => add_member::run(state, req, &origin, claim).await,
        Endpoint::RemoveMember => remove_member::run(state, req, &origin).await,
        Endpoint::ChangeMemberRole => change_member_role::run(state, req, &origin, claim).await,
        Endpoint::GetUserCustomer => get_user_customer::run(state, req).await,
        Endpoint::ListAudit => list_audit::run(state, req).await,
    };
    idempotency::finish(&state.store, claim, outcome).await
}

/// Counts (`AuthFailures`) and notes in the request span why a caller was refused.
fn auth_failed(endpoint: Endpoint, reason: &'static str) {
    tracing::Span::current().record("auth_failure", reason);
    metrics::auth_failure(endpoint.function(), reason);
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
