//! HTTP plumbing shared by the Lambdas and the local server: the error a
//! request can end in, path templates, request parsing and JSON responses.

mod error;
mod path;
mod request;

use http::{StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

pub use error::ApiError;
pub use path::{PathParams, match_template};
pub use request::{Query, json_body, path_param, within_size};

/// A Lambda request from a plain HTTP request, with its query string parsed as
/// API Gateway does (the local server and the tests use it).
pub fn lambda_request(parts: http::request::Parts, body: Vec<u8>) -> lambda_http::Request {
    use lambda_http::RequestExt;
    use lambda_http::aws_lambda_events::query_map::QueryMap;
    let query: QueryMap = parts
        .uri
        .query()
        .unwrap_or_default()
        .parse()
        .unwrap_or_default();
    lambda_http::Request::from_parts(parts, Body::from(body)).with_query_string_parameters(query)
}

/// A JSON response.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    no_store(response)
}

/// An empty 204 response.
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    no_store(response)
}

/// Every answer is about live account data (and errors about a caller's
/// credentials): no cache, shared or private, may keep it.
fn no_store(mut response: Response<Body>) -> Response<Body> {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_response_is_no_store() {
        let responses = [
            json(StatusCode::OK, &serde_json::json!({"customers": []})),
            no_content(),
            ApiError::RouteNotFound.into_response(),
            ApiError::Forbidden.into_response(),
        ];
        for response in responses {
            assert_eq!(
                response
                    .headers()
                    .get_all(header::CACHE_CONTROL)
                    .iter()
                    .collect::<Vec<_>>(),
                ["no-store"],
                "{}",
                response.status()
            );
        }
    }
}
