//! Request bodies: each field taken as it comes, then converted into domain
//! types, so that every field has its own error code.

use serde::Deserialize;
use serde_json::Value;

use crate::domain::{Invalid, Role, UserId};

/// `POST /customer/{customerID}/member`: `{"userID", "role"}`.
#[derive(Debug, Deserialize)]
pub struct NewMemberBody {
    #[serde(rename = "userID")]
    user_id: Option<Value>,
    role: Option<Value>,
}

/// `PATCH /customer/{customerID}/member/{userID}`: `{"role"}`.
#[derive(Debug, Deserialize)]
pub struct RoleBody {
    role: Option<Value>,
}

/// A member to add: a user (not the zero UUID) and a role other than owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewMember {
    /// The user.
    pub user: UserId,
    /// Its role: admin or user.
    pub role: Role,
}

impl TryFrom<NewMemberBody> for NewMember {
    type Error = Invalid;

    fn try_from(body: NewMemberBody) -> Result<Self, Invalid> {
        let user = match body.user_id {
            None | Some(Value::Null) => {
                return Err(Invalid::new(
                    "missing_field",
                    "userID",
                    "userID is required",
                ));
            }
            Some(Value::String(raw)) => UserId::parse(&raw)?,
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
        let role = assignable_role(body.role)?;
        Ok(Self { user, role })
    }
}

impl TryFrom<RoleBody> for Role {
    type Error = Invalid;

    /// `admin` or `user` (or legacy 1, 2), never the owner's.
    fn try_from(body: RoleBody) -> Result<Self, Invalid> {
        assignable_role(body.role)
    }
}

/// A `role` field: `admin` or `user` (or legacy 1, 2), never the owner's.
fn assignable_role(raw: Option<Value>) -> Result<Role, Invalid> {
    let role = match raw {
        None | Some(Value::Null) => {
            return Err(Invalid::new("missing_field", "role", "role is required"));
        }
        Some(raw) => Role::from_json(&raw)?,
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
    use serde_json::json;

    use super::*;

    const USER: &str = "9de7068a-2422-46c1-b718-4a95a91cd559";

    fn new_member(v: Value) -> Result<NewMember, Invalid> {
        NewMember::try_from(serde_json::from_value::<NewMemberBody>(v).unwrap())
    }

    #[test]
    fn accepts_admin_and_user_by_name_or_legacy_number() {
        for (role, want) in [
            (json!("admin"), Role::Admin),
            (json!("user"), Role::User),
            (json!(1), Role::Admin),
            (json!(2), Role::User),
        ] {
            let got = new_member(json!({"userID": USER, "role": role.clone()})).unwrap();
            assert_eq!((got.user.to_string().as_str(), got.role), (USER, want));
            let body: RoleBody = serde_json::from_value(json!({ "role": role })).unwrap();
            assert_eq!(Role::try_from(body).unwrap(), want);
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
            assert_eq!(new_member(input.clone()).unwrap_err().code, code, "{input}");
        }
        for (input, code) in [
            (json!({}), "missing_field"),
            (json!({"role": "owner"}), "owner_role_reserved"),
            (json!({"role": true}), "invalid_role"),
        ] {
            let body: RoleBody = serde_json::from_value(input.clone()).unwrap();
            assert_eq!(Role::try_from(body).unwrap_err().code, code, "{input}");
        }
    }
}
