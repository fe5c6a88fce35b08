use http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::State;
use super::views::MembershipView;
use crate::domain::UserId;
use crate::error::ApiError;
use crate::http::{json, path_param};

/// `GET /user/{userID}/customer`
pub async fn run(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    let user = UserId::parse(&path_param(req, "userID")?)?;
    let membership = state
        .store
        .find_membership(&user)
        .await?
        .ok_or(ApiError::MembershipNotFound)?;
    Ok(json(StatusCode::OK, &MembershipView::from(&membership)))
}
