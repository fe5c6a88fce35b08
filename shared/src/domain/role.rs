use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Invalid;

/// A member's role within a customer, in precedence order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The account owner; exactly one unless the customer is orphaned.
    Owner,
    /// A customer administrator.
    Admin,
    /// A plain member.
    User,
}

impl Role {
    /// Parses the canonical name: `owner`, `admin` or `user`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "owner" => Some(Self::Owner),
            "admin" => Some(Self::Admin),
            "user" => Some(Self::User),
            _ => None,
        }
    }

    /// Parses a role from JSON: a canonical name or a legacy integer 0, 1, 2.
    pub fn from_json(value: &Value) -> Result<Self, Invalid> {
        let role = match value {
            Value::String(name) => Self::from_name(name),
            Value::Number(n) => match n.as_u64() {
                Some(0) => Some(Self::Owner),
                Some(1) => Some(Self::Admin),
                Some(2) => Some(Self::User),
                _ => None,
            },
            _ => None,
        };
        role.ok_or_else(|| {
            Invalid::new(
                "invalid_role",
                "role",
                "role must be one of \"admin\", \"user\" (or legacy 1, 2)",
            )
        })
    }

    /// The canonical name used in every response.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::User => "user",
        }
    }

    /// Sort rank for listing: owner first, then admins, then users.
    pub fn rank(self) -> u8 {
        self as u8
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn accepts_names_and_legacy_integers() {
        let cases = [
            (json!("owner"), Role::Owner),
            (json!("admin"), Role::Admin),
            (json!("user"), Role::User),
            (json!(0), Role::Owner),
            (json!(1), Role::Admin),
            (json!(2), Role::User),
        ];
        for (input, want) in cases {
            assert_eq!(Role::from_json(&input), Ok(want), "{input}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for input in [
            json!("Admin"),
            json!("ADMIN"),
            json!(""),
            json!("1"),
            json!(3),
            json!(-1),
            json!(1.0),
            json!(1.5),
            json!(null),
            json!(true),
            json!(["admin"]),
            json!({"role": "admin"}),
        ] {
            let err = Role::from_json(&input).unwrap_err();
            assert_eq!(err.code, "invalid_role", "{input}");
        }
    }

    #[test]
    fn ranks_owner_before_admin_before_user() {
        assert!(Role::Owner.rank() < Role::Admin.rank());
        assert!(Role::Admin.rank() < Role::User.rank());
        assert_eq!(serde_json::to_value(Role::Admin).unwrap(), json!("admin"));
    }
}
