use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthError, Caller};
use crate::domain::Timestamp;
use crate::store::ApiKeyRecord;

/// Prefix of every key id.
const KEY_PREFIX: &str = "ak_";

/// A freshly issued key: the secret is shown once and stored only as a hash.
#[derive(Debug, Clone)]
pub struct IssuedApiKey {
    /// The `api-key` header value.
    pub key_id: String,
    /// The `api-secret` header value.
    pub secret: String,
    /// What the table stores.
    pub record: ApiKeyRecord,
}

/// Issues a key for `user` with `roles`, valid until `expires_at` (or until
/// revoked): 32 random bytes of secret.
pub fn issue_api_key(
    user: &str,
    roles: Vec<String>,
    expires_at: Option<Timestamp>,
) -> Result<IssuedApiKey, getrandom::Error> {
    let mut id = [0u8; 16];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let key_id = format!("{KEY_PREFIX}{}", hex(&id));
    let secret = URL_SAFE_NO_PAD.encode(secret);
    let record = ApiKeyRecord {
        secret_hash: hash_secret(&secret),
        user_id: user.to_owned(),
        roles,
        created_at: crate::domain::now(),
        expires_at,
        revoked: false,
    };
    Ok(IssuedApiKey {
        key_id,
        secret,
        record,
    })
}

/// Hex SHA-256 of a secret. Secrets are 256 random bits, so a fast hash suffices.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Whether `key` has the shape of an issued key id (checked before any lookup).
pub(super) fn is_key_id(key: &str) -> bool {
    key.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() == 32 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Checks a secret against a looked-up record in constant time (an unknown key
/// costs the same comparison as a known one), then revocation and expiry at
/// `now`: its own expiry, and `max_lifetime` after it was issued (a key issued
/// without expiry, or before the limit, included).
pub(super) fn check(
    record: Option<ApiKeyRecord>,
    secret: &str,
    now: Timestamp,
    max_lifetime: chrono::Duration,
) -> Result<Caller, AuthError> {
    let presented = hash_secret(secret);
    let stored = record
        .as_ref()
        .map_or_else(|| "0".repeat(64), |r| r.secret_hash.clone());
    let equal: bool = presented.as_bytes().ct_eq(stored.as_bytes()).into();
    match record {
        Some(r) if equal && !r.revoked => match r.expires_at {
            Some(expires_at) if expires_at <= now => Err(AuthError::ApiKeyExpired),
            _ if r.created_at + max_lifetime <= now => Err(AuthError::ApiKeyExpired),
            _ => Ok(Caller {
                subject: r.user_id,
                roles: r.roles,
                api_key: None,
            }),
        },
        _ => Err(AuthError::InvalidApiKey),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAYS_90: chrono::Duration = chrono::Duration::days(90);

    #[test]
    fn issued_keys_verify_and_wrong_or_revoked_ones_do_not() {
        // GIVEN an issued key
        let issued = issue_api_key("u1", vec!["billing_admin".into()], None).unwrap();
        let now = crate::domain::now();
        assert!(is_key_id(&issued.key_id));
        assert_ne!(
            issued.record.secret_hash, issued.secret,
            "the secret itself is never stored"
        );
        // THEN its secret verifies, another does not, and revocation wins
        let caller = check(Some(issued.record.clone()), &issued.secret, now, DAYS_90).unwrap();
        assert_eq!(caller.subject, "u1");
        assert!(check(Some(issued.record.clone()), "wrong", now, DAYS_90).is_err());
        assert!(check(None, &issued.secret, now, DAYS_90).is_err());
        let revoked = ApiKeyRecord {
            revoked: true,
            ..issued.record.clone()
        };
        assert!(check(Some(revoked), &issued.secret, now, DAYS_90).is_err());
        // AND a key with an expiry works until then, and is refused from then on
        let expiring = ApiKeyRecord {
            expires_at: Some(now + chrono::Duration::seconds(60)),
            ..issued.record
        };
        assert!(check(Some(expiring.clone()), &issued.secret, now, DAYS_90).is_ok());
        let later = now + chrono::Duration::seconds(60);
        assert!(matches!(
            check(Some(expiring.clone()), &issued.secret, later, DAYS_90),
            Err(AuthError::ApiKeyExpired)
        ));
        assert!(matches!(
            check(Some(expiring), "wrong", later, DAYS_90),
            Err(AuthError::InvalidApiKey)
        ));
    }

    #[test]
    fn no_key_outlives_the_maximum_lifetime() {
        // GIVEN a key issued 30 days ago without expiry, and one with an expiry
        // a year after it was issued (a table written before the limit)
        let now = crate::domain::now();
        let issued = issue_api_key("u1", vec!["billing_admin".into()], None).unwrap();
        let old = ApiKeyRecord {
            created_at: now - chrono::Duration::days(30),
            ..issued.record.clone()
        };
        let long = ApiKeyRecord {
            expires_at: Some(old.created_at + chrono::Duration::days(365)),
            ..old.clone()
        };
        // THEN under a 90-day limit both verify, under a 30-day limit neither
        for record in [&old, &long] {
            assert!(check(Some(record.clone()), &issued.secret, now, DAYS_90).is_ok());
            assert!(matches!(
                check(
                    Some(record.clone()),
                    &issued.secret,
                    now,
                    chrono::Duration::days(30)
                ),
                Err(AuthError::ApiKeyExpired)
            ));
        }
    }

    #[test]
    fn key_ids_have_one_shape() {
        assert!(is_key_id("ak_0123456789abcdef0123456789abcdef"));
        for bad in [
            "",
            "ak_",
            "ak_0123456789ABCDEF0123456789abcdef",
            "bk_0123456789abcdef0123456789abcdef",
            "ak_0123",
        ] {
            assert!(!is_key_id(bad), "{bad}");
        }
    }
}
