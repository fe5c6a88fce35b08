//! HTTP plumbing shared by the Lambdas and the local server: routes, request
//! parsing and JSON responses.

mod request;
mod routes;

use http::{StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

pub use request::{JsonObject, Query, json_object, path_param};
pub use routes::{Endpoint, PREFIX, route};

/// A JSON response.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// An empty 204 response.
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}
