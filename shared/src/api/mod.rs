//! The six endpoints: authenticate, authorize, parse, one call into the store,
//! map the result to HTTP.

mod add_member;
mod delete_customer;
mod get_customer;
mod list_customers;
mod list_members;
mod remove_member;
mod views;

use lambda_http::{Body, Request, RequestExt, Response};
use tracing::Instrument;

use crate::auth::{Authenticator, BILLING_ADMIN, JwtVerifier};
use crate::cascade::Cascade;
use crate::config::ConfigError;
use crate::error::ApiError;
use crate::http::Endpoint;
use crate::payments::Payments;
use crate::startup::{Dependencies, InitError};
use crate::store::Store;

/// What the handlers share: built once per process.
#[derive(Clone)]
pub struct State {
    /// The table.
    pub store: Store,
    /// Credential verification.
    pub auth: Authenticator,
    /// The deletion cascade.
    pub cascade: Cascade,
}

impl State {
    /// The state over a store, a token verifier and (for deletions) Stripe.
    pub fn new(store: Store, jwt: JwtVerifier, payments: Option<Payments>) -> Self {
        Self {
            auth: Authenticator::new(jwt, store.clone()),
            cascade: Cascade::new(store.clone(), payments),
            store,
        }
    }
}

impl TryFrom<Dependencies> for State {
    type Error = InitError;

    /// Fails when token verification is not configured.
    fn try_from(deps: Dependencies) -> Result<Self, InitError> {
        let jwt = deps.jwt.ok_or_else(|| ConfigError::missing("JWT_ISSUER"))?;
        Ok(Self::new(deps.store, jwt, deps.payments))
    }
}

/// Runs a Lambda serving `endpoint`: telemetry, clients and secrets once, then requests.
pub async fn run_lambda(endpoint: Endpoint) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let state = State::try_from(Dependencies::from_env().await?)?;
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
    lambda_http::run(lambda_http::service_fn(|req: Request| async move {
        Ok::<_, std::convert::Infallible>(route_not_found(&req))
    }))
    .await
}

/// The 404/405 answer for a request API Gateway matched to no route.
pub fn route_not_found(req: &Request) -> Response<Body> {
    let err = match crate::http::route(req.method(), req.uri().path()) {
        Err(err) => err,
        // Only a request API Gateway could not route gets here.
        Ok(_) => ApiError::RouteNotFound,
    };
    err.into_response()
}

/// Routes a request by method and path (404/405 in the error convention), then
/// serves it: the local server and the catch-all route use this.
pub async fn dispatch(state: &State, req: Request) -> Response<Body> {
    match crate::http::route(req.method(), req.uri().path()) {
        Ok((endpoint, params)) => {
            let params: std::collections::HashMap<String, String> = params.into_iter().collect();
            handle(state, endpoint, req.with_path_parameters(params)).await
        }
        Err(err) => err.into_response(),
    }
}

/// Serves one request for `endpoint`: never fails, errors become error responses.
pub async fn handle(state: &State, endpoint: Endpoint, req: Request) -> Response<Body> {
    let request_id = req
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!(
        "request",
        endpoint = endpoint.function(),
        request_id,
        caller = tracing::field::Empty
    );
    async move {
        let response = match serve(state, endpoint, &req).await {
            Ok(response) => response,
            Err(err) => err.into_response(),
        };
        tracing::info!(status = response.status().as_u16(), "handled");
        response
    }
    .instrument(span)
    .await
}

async fn serve(
    state: &State,
    endpoint: Endpoint,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let caller = state
        .auth
        .authenticate(req.headers())
        .await
        .map_err(ApiError::from)?;
    tracing::Span::current().record("caller", caller.subject.as_str());
    if !caller.has_role(BILLING_ADMIN) {
        return Err(ApiError::Forbidden);
    }
    match endpoint {
        Endpoint::ListCustomers => list_customers::run(state, req).await,
        Endpoint::GetCustomer => get_customer::run(state, req).await,
        Endpoint::DeleteCustomer => delete_customer::run(state, req).await,
        Endpoint::ListMembers => list_members::run(state, req).await,
        Endpoint::AddMember => add_member::run(state, req).await,
        Endpoint::RemoveMember => remove_member::run(state, req).await,
    }
}
