//! Reading path, query and body values from a request.

use http::header;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::{Request, RequestExt};
use serde_json::{Map, Value};

use crate::domain::Invalid;
use crate::error::ApiError;

/// Largest accepted request body.
const MAX_BODY: usize = 16 * 1024;

/// A path parameter, as API Gateway (or the local router) extracted it.
pub fn path_param(req: &Request, name: &'static str) -> Result<String, Invalid> {
    req.path_parameters_ref()
        .and_then(|p| p.first(name))
        .map(str::to_owned)
        .ok_or_else(|| {
            Invalid::new(
                "missing_path_parameter",
                name,
                format!("{name} is required"),
            )
        })
}

/// The query string.
pub struct Query(Option<QueryMap>);

impl Query {
    /// The request's query parameters.
    pub fn of(req: &Request) -> Self {
        Self(req.query_string_parameters_ref().cloned())
    }

    /// A parameter given at most once; absent and given-empty are told apart.
    pub fn single(&self, name: &'static str) -> Result<Option<&str>, Invalid> {
        let values = self
            .0
            .as_ref()
            .and_then(|q| q.all(name))
            .unwrap_or_default();
        match values.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(Invalid::new(
                "repeated_parameter",
                name,
                format!("{name} may be given only once"),
            )),
        }
    }
}

/// Refuses a body larger than 16 KiB (400 `body_too_large`): checked before
/// anything reads the body (parsing, an `Idempotency-Key`'s fingerprint).
pub fn within_size(req: &Request) -> Result<(), ApiError> {
    if req.body().as_ref().len() > MAX_BODY {
        return Err(ApiError::Body {
            code: "body_too_large",
            message: "the body exceeds 16 KiB",
        });
    }
    Ok(())
}

/// A JSON object body.
pub type JsonObject = Map<String, Value>;

/// The body as a JSON object; requires `Content-Type: application/json`.
pub fn json_object(req: &Request) -> Result<JsonObject, ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::Body {
            code: "unsupported_content_type",
            message: "Content-Type must be application/json",
        });
    }
    within_size(req)?;
    match serde_json::from_slice(req.body().as_ref()) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::Body {
            code: "malformed_body",
            message: "the body must be a JSON object",
        }),
    }
}
