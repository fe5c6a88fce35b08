use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

use super::State;
use super::idempotency::answer_of;
use crate::domain::audit::Origin;
use crate::domain::{CustomerId, Invalid, Member, Role, UserId, now};
use crate::error::ApiError;
use crate::http::{JsonObject, json, json_object, path_param};
use crate::store::{Answering, Claimed};

/// `POST /customer/{customerID}/member` with `{"userID", "role"}`.
pub async fn run(
    state: &State,
    req: &Request,
    origin: &Origin,
    claim: Option<&Claimed>,
) -> Result<Response<Body>, ApiError> {
    let id = CustomerId::parse(&path_param(req, "customerID")?)?;
    let (user_id, role) = parse_body(&json_object(req)?)?;
    let member = Member {
        role_id: uuid::Uuid::new_v4(),
        user_id,
        role,
        joined_at: now(),
    };
    let added = json(StatusCode::CREATED, &json!({ "message": "acknowledged" }));
    let answer = answer_of(&added);
    let answer = move |_: &()| answer.clone();
    let answering = claim.map(|c| Answering::new(c, &answer));
    state
        .store
        .add_members_answered(&id, &[member], origin, answering.as_ref())
        .await?;
    Ok(added)
}

/// The user and a role other than owner.
fn parse_body(body: &JsonObject) -> Result<(UserId, Role), Invalid> {
    let user = match body.get("userID") {
        None | Some(Value::Null) => {
            return Err(Invalid::new(
                "missing_field",
                "userID",
                "userID is required",
            ));
        }
        Some(Value::String(raw)) => UserId::parse(raw)?,
        Some(_) => {
            return Err(Invalid::new(
                "invalid_user_id",
                "userID",
                "userID must be a UUID",
            ));
        }
    };
    if user.is_nil() {
        return Err(Invalid::new(
            "invalid_user_id",
            "userID",
            "userID must not be the zero UUID",
        ));
    }
    Ok((user, assignable_role(body)?))
}

/// The body's `role`: `admin` or `user` (or legacy 1, 2), never the owner's.
pub(super) fn assignable_role(body: &JsonObject) -> Result<Role, Invalid> {
    let role = match body.get("role") {
        None | Some(Value::Null) => {
            return Err(Invalid::new("missing_field", "role", "role is required"));
        }
        Some(raw) => Role::from_json(raw)?,
    };
    if role == Role::Owner {
        return Err(Invalid::new(
            "owner_role_reserved",
            "role",
            "the owner role cannot be assigned here; use Transfer Ownership",
        ));
    }
    Ok(role)
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "9de7068a-2422-46c1-b718-4a95a91cd559";

    fn body(v: Value) -> JsonObject {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn accepts_admin_and_user_by_name_or_legacy_number() {
        for (role, want) in [
            (json!("admin"), Role::Admin),
            (json!("user"), Role::User),
            (json!(1), Role::Admin),
            (json!(2), Role::User),
        ] {
            let (user, got) = parse_body(&body(json!({"userID": USER, "role": role}))).unwrap();
            assert_eq!((user.to_string().as_str(), got), (USER, want));
        }
    }

    #[test]
    fn rejects_owner_missing_and_malformed_fields() {
        let cases = [
            (
                json!({"userID": USER, "role": "owner"}),
                "owner_role_reserved",
            ),
            (json!({"userID": USER, "role": 0}), "owner_role_reserved"),
            (json!({"userID": USER}), "missing_field"),
            (json!({"role": "user"}), "missing_field"),
            (json!({"userID": null, "role": "user"}), "missing_field"),
            (json!({"userID": 5, "role": "user"}), "invalid_user_id"),
            (json!({"userID": "nope", "role": "user"}), "invalid_user_id"),
            (
                json!({"userID": "00000000-0000-0000-0000-000000000000", "role": "user"}),
                "invalid_user_id",
            ),
            (json!({"userID": USER, "role": "superuser"}), "invalid_role"),
            (json!({"userID": USER, "role": 7}), "invalid_role"),
        ];
        for (input, code) in cases {
            assert_eq!(
                parse_body(&body(input.clone())).unwrap_err().code,
                code,
                "{input}"
            );
        }
    }
}
