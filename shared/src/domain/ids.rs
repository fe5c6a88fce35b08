use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Invalid;

/// Parses a canonical hyphenated UUID (36 characters, any case).
fn parse_uuid(raw: &str) -> Option<Uuid> {
    if raw.len() != 36 {
        return None;
    }
    Uuid::try_parse(raw).ok()
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $param:literal, $code:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Parses a canonical UUID as sent in a path or body.
            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                parse_uuid(raw).map(Self).ok_or_else(|| {
                    Invalid::new($code, $param, concat!($param, " must be a UUID"))
                })
            }

            /// A fresh random id.
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }

            /// The zero UUID, which marks an orphaned customer's owner.
            pub const fn nil() -> Self {
                Self(Uuid::nil())
            }

            /// Whether this is the zero UUID.
            pub fn is_nil(&self) -> bool {
                self.0.is_nil()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A customer's UUID.
    CustomerId,
    "customerID",
    "invalid_customer_id"
);
uuid_id!(
    /// A platform user's UUID.
    UserId,
    "userID",
    "invalid_user_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_canonical_uuids_in_any_case_and_prints_lowercase() {
        // GIVEN an upper-case canonical UUID
        let id = CustomerId::parse("A1B2C3D4-5633-4B16-BBF0-5CA22EF8EA2E").unwrap();
        // THEN it prints in canonical lower case
        assert_eq!(id.to_string(), "a1b2c3d4-5633-4b16-bbf0-5ca22ef8ea2e");
    }

    #[test]
    fn rejects_other_spellings_and_garbage() {
        for raw in [
            "",
            "abc",
            "a1b2c3d45633 4b16bbf05ca22ef8ea2e",
            "a1b2c3d456334b16bbf05ca22ef8ea2e",
            "{a1b2c3d4-5633-4b16-bbf0-5ca22ef8ea2e}",
            "urn:uuid:a1b2c3d4-5633-4b16-bbf0-5ca22ef8ea2e",
            "g1b2c3d4-5633-4b16-bbf0-5ca22ef8ea2e",
        ] {
            let err = UserId::parse(raw).unwrap_err();
            assert_eq!(err.code, "invalid_user_id", "{raw:?}");
            assert_eq!(err.param, "userID");
        }
    }
}
