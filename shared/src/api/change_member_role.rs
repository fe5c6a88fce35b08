use http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::State;
use super::add_member::assignable_role;
use super::views::MemberRoleView;
use crate::domain::audit::Origin;
use crate::domain::{CustomerId, UserId};
use crate::error::ApiError;
use crate::http::{json, json_object, path_param};

/// `PATCH /customer/{customerID}/member/{userID}` with `{"role"}`.
pub async fn run(
    state: &State,
    req: &Request,
    origin: &Origin,
) -> Result<Response<Body>, ApiError> {
    let id = CustomerId::parse(&path_param(req, "customerID")?)?;
    let user = UserId::parse(&path_param(req, "userID")?)?;
    let role = assignable_role(&json_object(req)?)?;
    let member = state
        .store
        .change_member_role(&id, &user, role, origin)
        .await?;
    Ok(json(StatusCode::OK, &MemberRoleView::from(&member)))
}
