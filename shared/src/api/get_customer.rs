use http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::State;
use super::views::CustomerDetail;
use crate::domain::CustomerId;
use crate::error::ApiError;
use crate::http::{json, path_param};

/// `GET /customer/{customerID}`
pub async fn run(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    let id = CustomerId::parse(&path_param(req, "customerID")?)?;
    let customer = state.store.get_customer(&id).await?;
    Ok(json(StatusCode::OK, &CustomerDetail::from(&customer)))
}
