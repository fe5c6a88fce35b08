use lambda_http::{Body, Request, Response};

use super::State;
use crate::domain::CustomerId;
use crate::error::ApiError;
use crate::http::{no_content, path_param};

/// `DELETE /customer/{customerID}`: runs (or resumes) the deletion cascade.
pub async fn run(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    let id = CustomerId::parse(&path_param(req, "customerID")?)?;
    let deleted = state.cascade.run(&id).await?;
    tracing::info!(customer = %id, members = deleted.members, "customer deleted");
    Ok(no_content())
}
