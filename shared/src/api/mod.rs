//! The endpoints: authenticate, authorize, parse, one call into the store,
//! map the result to HTTP.

mod bodies;
mod cursor;
mod customer;
mod idempotency;
mod listings;
mod members;
mod routes;
mod views;

use lambda_http::{Body, Request, RequestExt, Response};

use crate::auth::{Authenticator, BILLING_ADMIN, JwtVerifier};
use crate::cascade::{Cascade, Payments};
use crate::domain::audit::Origin;
use crate::domain::{CustomerId, Invalid, UserId};
use crate::http::{ApiError, path_param};
use crate::store::{Claimed, Store};
use crate::telemetry::metrics;
use crate::telemetry::request::enveloped;
pub use cursor::{CursorKeys, Cursors};
pub use routes::{
    COMMON_STATUSES, CONSOLE, CONSOLE_FUNCTION, Endpoint, Handler, Mount, PREFIX, ROUTES, Route,
    WEBHOOK, is_console_path, route,
};

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

/// The function (and `Function` metric dimension) answering unrouted requests.
pub const ROUTE_NOT_FOUND: &str = "route-not-found";

/// What a handler answers: its response, or the error it ends in.
pub type Reply = Result<Response<Body>, ApiError>;

/// The `customerID` path parameter.
fn customer_id(req: &Request) -> Result<CustomerId, Invalid> {
    CustomerId::parse(&path_param(req, "customerID")?)
}

/// The `userID` path parameter.
fn user_id(req: &Request) -> Result<UserId, Invalid> {
    UserId::parse(&path_param(req, "userID")?)
}

/// What a handler gets besides the state and the request: who acts (for the
/// audit trail) and the `Idempotency-Key` claimed for this request, if any.
#[derive(Clone, Copy)]
pub struct Call<'a> {
    /// Who acts, for this request.
    pub origin: &'a Origin,
    /// The request's claimed `Idempotency-Key` (idempotent endpoints).
    pub claim: Option<&'a Claimed>,
}

/// The 404/405 answer for a request API Gateway matched to no route, logged
/// and counted like any other request (as `route-not-found`).
pub async fn route_not_found(req: &Request) -> Response<Body> {
    let err = match route(req.method(), req.uri().path()) {
        Err(err) => err,
        // Only a request API Gateway could not route gets here.
        Ok(_) => ApiError::RouteNotFound,
    };
    enveloped(ROUTE_NOT_FOUND, req, |_| async { err.into_response() }).await
}

/// Routes a request by method and path (404/405 in the error convention), then
/// serves it: the local server and the tests use this.
pub async fn dispatch(state: &State, req: Request) -> Response<Body> {
    match route(req.method(), req.uri().path()) {
        Ok((endpoint, params)) => {
            let params: std::collections::HashMap<String, String> = params.into_iter().collect();
            handle(state, endpoint, req.with_path_parameters(params)).await
        }
        Err(err) => enveloped(ROUTE_NOT_FOUND, &req, |_| async { err.into_response() }).await,
    }
}

/// Serves one request for `endpoint`: never fails, errors become error
/// responses, in the request's envelope (its span and ids, its `Requests`
/// and `Latency` metrics).
pub async fn handle(state: &State, endpoint: Endpoint, req: Request) -> Response<Body> {
    let req = &req;
    enveloped(endpoint.function(), req, |ids| async move {
        serve(state, endpoint, req, &ids.request_id)
            .await
            .unwrap_or_else(ApiError::into_response)
    })
    .await
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
    let call = Call {
        origin: &origin,
        claim,
    };
    let outcome = (endpoint.route().handler)(state, req, call).await;
    idempotency::finish(&state.store, claim, outcome).await
}

/// Counts (`AuthFailures`) and notes in the request span why a caller was refused.
fn auth_failed(endpoint: Endpoint, reason: &'static str) {
    tracing::Span::current().record("auth_failure", reason);
    metrics::auth_failure(endpoint.function(), reason);
}
