//! The one error type a request can end in, and its one mapping to HTTP.

use http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Response};
use serde_json::json;
use uuid::Uuid;

use crate::auth::AuthError;
use crate::domain::Invalid;
use crate::store::{ErrorKind, StoreError};

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A path, query or body value failed to parse (400).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The body is not acceptable as a whole (400).
    #[error("{message}")]
    Body {
        /// Stable code.
        code: &'static str,
        /// Message for a person.
        message: &'static str,
    },
    /// Missing or invalid credentials (401).
    #[error("missing or invalid credentials")]
    Unauthorized(#[source] AuthError),
    /// No token verification key can be had right now (503).
    #[error("token verification is temporarily unavailable; retry shortly")]
    AuthUnavailable(#[source] crate::auth::JwksError),
    /// Valid credentials without the required role (403).
    #[error("the caller does not hold the billing_admin role")]
    Forbidden,
    /// No route has this path (404).
    #[error("no route matches this path")]
    RouteNotFound,
    /// The path exists but not with this method (405).
    #[error("method not allowed on this path")]
    MethodNotAllowed(Vec<Method>),
    /// The user belongs to no customer (404).
    #[error("the user is not a member of any customer")]
    MembershipNotFound,
    /// The `Idempotency-Key` was used for a different request (422).
    #[error("this Idempotency-Key was used with a different request; use a new key")]
    IdempotencyKeyReused,
    /// A request with this `Idempotency-Key` is still running (409).
    #[error("a request with this Idempotency-Key is in progress; retry after it answers")]
    IdempotencyKeyInUse,
    /// A store outcome: not found, conflict, or failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stripe failed during the deletion cascade (500).
    #[error("billing provider error during the deletion cascade")]
    Billing(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Stripe could not be read to apply a webhook event (503; Stripe delivers
    /// the event again).
    #[error("the billing provider could not be read; the event is delivered again")]
    BillingUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A webhook event names a customer that does not exist yet (409; Stripe
    /// delivers the event again).
    #[error("the event names a customer that does not exist yet; it is delivered again")]
    CustomerNotYetCreated,
    /// The deletion cascade ran out of its time budget; the customer stays deleting
    /// and a retried DELETE (or the stream consumer) finishes it (503).
    #[error("the deletion is in progress and did not finish in time; retry the request")]
    DeletionInProgress(#[source] crate::cascade::CascadeError),
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Store(e) => Self::Store(e),
            AuthError::Unavailable(e) => Self::AuthUnavailable(e),
            other => Self::Unauthorized(other),
        }
    }
}

impl From<crate::cascade::CascadeError> for ApiError {
    fn from(err: crate::cascade::CascadeError) -> Self {
        use crate::cascade::Failure;
        tracing::warn!(step = ?err.step, "deletion cascade stopped; a retry resumes it");
        match err.failure {
            Failure::OutOfTime => Self::DeletionInProgress(err),
            Failure::Store(e) => Self::Store(e),
            failure => Self::Billing(Box::new(failure)),
        }
    }
}

impl ApiError {
    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) | Self::Body { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::AuthUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::MembershipNotFound => StatusCode::NOT_FOUND,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IdempotencyKeyInUse => StatusCode::CONFLICT,
            Self::Store(e) => match e.kind() {
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::Conflict => StatusCode::CONFLICT,
                ErrorKind::Contention => StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Failure => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::Billing(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::BillingUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::CustomerNotYetCreated => StatusCode::CONFLICT,
            Self::DeletionInProgress(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(e) => e.code,
            Self::Body { code, .. } => code,
            Self::Unauthorized(_) => "unauthorized",
            Self::AuthUnavailable(_) => "auth_unavailable",
            Self::Forbidden => "forbidden",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::MembershipNotFound => "membership_not_found",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyKeyInUse => "idempotency_key_in_use",
            Self::Store(e) => match e {
                StoreError::CustomerNotFound => "customer_not_found",
                StoreError::MemberNotFound => "member_not_found",
                StoreError::AlreadyMember => "already_member",
                StoreError::OwnerNotRemovable => "owner_not_removable",
                StoreError::OwnerRoleChange => "owner_role_change",
                StoreError::CustomerExists => "customer_exists",
                StoreError::StripeCustomerClaimed => "stripe_customer_claimed",
                StoreError::IdempotencyClaimLost => "idempotency_key_in_use",
                StoreError::CustomerDeleted(_) => "customer_deleted",
                StoreError::OwnerDeleted(_) => "owner_deleted",
                StoreError::Contention => "contention",
                StoreError::Corrupt(_) | StoreError::Dynamo(_) => "database_error",
            },
            Self::Billing(_) => "billing_error",
            Self::BillingUnavailable(_) => "billing_unavailable",
            Self::CustomerNotYetCreated => "customer_not_yet_created",
            Self::DeletionInProgress(_) => "deletion_in_progress",
        }
    }

    /// The message a client sees: never internals.
    fn public_message(&self) -> String {
        match self {
            Self::Unauthorized(e) => e.to_string(),
            Self::Store(StoreError::Corrupt(_) | StoreError::Dynamo(_)) => {
                "database error; the request can be retried".to_owned()
            }
            Self::Billing(_) => {
                "billing provider error during the deletion cascade; retry the request".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// The response in the platform error convention: `x-error` and `x-error-id`
    /// headers and a `{"error": {...}}` body. Logs the cause chain with the id.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let error_id = Uuid::new_v4().to_string();
        let message = self.public_message();
        log(&self, status, &error_id);
        let severity = match status.as_u16() {
            400..=499 => "WARNING",
            500 | 501 => "ERROR",
            _ => "CRITICAL",
        };
        let mut error = json!({
            "message": message,
            "type": severity,
            "code": self.code(),
            "error_id": error_id,
        });
        if let (Self::Invalid(Invalid { param, .. }), Some(obj)) = (&self, error.as_object_mut()) {
            obj.insert("param".to_owned(), json!(param));
        }
        let mut response = crate::http::json(status, &json!({ "error": error }));
        let headers = response.headers_mut();
        headers.insert("x-error", header_text(&message));
        headers.insert("x-error-id", header_text(&error_id));
        match &self {
            Self::MethodNotAllowed(allowed) => {
                let allow = allowed
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                headers.insert(header::ALLOW, header_text(&allow));
            }
            Self::Store(StoreError::Contention) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::AuthUnavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            Self::DeletionInProgress(_) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(crate::cascade::RETRY_AFTER_SECONDS),
                );
            }
            _ => {}
        }
        response
    }
}

fn log(err: &ApiError, status: StatusCode, error_id: &str) {
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    if status.is_server_error() {
        tracing::error!(error_id, status = status.as_u16(), code = err.code(), error = %chain, "request failed");
    } else {
        tracing::info!(error_id, status = status.as_u16(), code = err.code(), error = %chain, "request rejected");
    }
}

/// A header value from text, with anything outside visible ASCII replaced.
fn header_text(text: &str) -> HeaderValue {
    let clean: String = text
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    HeaderValue::from_str(&clean).unwrap_or_else(|_| HeaderValue::from_static("error"))
}
