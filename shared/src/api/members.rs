//! A customer's members: add one, change its role, remove it; and the
//! customer a user belongs to.

use http::StatusCode;
use lambda_http::Request;
use serde_json::json;

use super::bodies::{NewMember, NewMemberBody, RoleBody};
use super::idempotency::answer_of;
use super::views::{MemberRoleView, MembershipView};
use super::{Call, Reply, State, customer_id, user_id};
use crate::domain::{Member, Role, now};
use crate::http::{ApiError, json, json_body};
use crate::store::Answering;

/// `POST /customer/{customerID}/member` with `{"userID", "role"}`.
pub async fn add(state: &State, req: &Request, call: Call<'_>) -> Reply {
    let id = customer_id(req)?;
    let new = NewMember::try_from(json_body::<NewMemberBody>(req)?)?;
    let member = Member {
        role_id: uuid::Uuid::new_v4(),
        user_id: new.user,
        role: new.role,
        joined_at: now(),
    };
    let added = json(StatusCode::CREATED, &json!({ "message": "acknowledged" }));
    let answer = answer_of(&added);
    let answer = move |_: &()| answer.clone();
    let answering = call.claim.map(|c| Answering::new(c, &answer));
    state
        .store
        .add_members_answered(&id, &[member], call.origin, answering.as_ref())
        .await?;
    Ok(added)
}

/// `PATCH /customer/{customerID}/member/{userID}` with `{"role"}`: answers the
/// member as it is now.
pub async fn change_role(state: &State, req: &Request, call: Call<'_>) -> Reply {
    let id = customer_id(req)?;
    let user = user_id(req)?;
    let role = Role::try_from(json_body::<RoleBody>(req)?)?;
    let changed = |member: &Member| json(StatusCode::OK, &MemberRoleView::from(member));
    let answer = |member: &Member| answer_of(&changed(member));
    let answering = call.claim.map(|c| Answering::new(c, &answer));
    let member = state
        .store
        .change_member_role_answered(&id, &user, role, call.origin, answering.as_ref())
        .await?;
    Ok(changed(&member))
}

/// `DELETE /customer/{customerID}/member/{userID}`
pub async fn remove(state: &State, req: &Request, call: Call<'_>) -> Reply {
    let id = customer_id(req)?;
    let user = user_id(req)?;
    state.store.remove_member(&id, &user, call.origin).await?;
    Ok(crate::http::no_content())
}

/// `GET /user/{userID}/customer`
pub async fn user_customer(state: &State, req: &Request) -> Reply {
    let user = user_id(req)?;
    let membership = state
        .store
        .find_membership(&user)
        .await?
        .ok_or(ApiError::MembershipNotFound)?;
    Ok(json(StatusCode::OK, &MembershipView::from(&membership)))
}
