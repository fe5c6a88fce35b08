//! Reading path, query and body values from a request.

use http::header;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::{Request, RequestExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ApiError;
use crate::domain::Invalid;

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

/// The body, a JSON object, as `T`; requires `Content-Type: application/json`.
/// `T` takes each field as it comes (an `Option<Value>`, say) and its
/// conversion into domain types says what is wrong with a field: anything that
/// is not a JSON object `T` accepts is 400 `malformed_body`.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
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
    let malformed = ApiError::Body {
        code: "malformed_body",
        message: "the body must be a JSON object",
    };
    match serde_json::from_slice(req.body().as_ref()) {
        Ok(object @ Value::Object(_)) => serde_json::from_value(object).map_err(|_| malformed),
        _ => Err(malformed),
    }
}
