use http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::State;
use super::add_member::assignable_role;
use super::idempotency::answer_of;
use super::views::MemberRoleView;
use crate::domain::audit::Origin;
use crate::domain::{CustomerId, Member, UserId};
use crate::error::ApiError;
use crate::http::{json, json_object, path_param};
use crate::store::{Answering, Claimed};

/// `PATCH /customer/{customerID}/member/{userID}` with `{"role"}`.
pub async fn run(
    state: &State,
    req: &Request,
    origin: &Origin,
    claim: Option<&Claimed>,
) -> Result<Response<Body>, ApiError> {
    let id = CustomerId::parse(&path_param(req, "customerID")?)?;
    let user = UserId::parse(&path_param(req, "userID")?)?;
    let role = assignable_role(&json_object(req)?)?;
    let answer = |member: &Member| answer_of(&changed(member));
    let answering = claim.map(|c| Answering::new(c, &answer));
    let member = state
        .store
        .change_member_role_answered(&id, &user, role, origin, answering.as_ref())
        .await?;
    Ok(changed(&member))
}

/// The answer: the member as it is now.
fn changed(member: &Member) -> Response<Body> {
    json(StatusCode::OK, &MemberRoleView::from(member))
}
