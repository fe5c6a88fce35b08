use lambda_http::{Body, Request, Response};

use super::State;
use crate::domain::CustomerId;
use crate::error::ApiError;
use crate::http::{no_content, path_param};

/// `DELETE /customer/{customerID}`: runs (or resumes) the deletion cascade.
pub async fn run(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    let id = CustomerId::parse(&path_param(req, "customerID")?)?;
    let deleted = state.cascade.run(&id).await?;
    let billing = deleted.billing.unwrap_or_default();
    tracing::info!(
        customer = %id,
        members = deleted.members,
        subscriptions_cancelled = billing.subscriptions_cancelled,
        stripe_calls = billing.calls,
        "customer deleted"
    );
    Ok(no_content())
}
