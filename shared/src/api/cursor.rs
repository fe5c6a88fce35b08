//! Opaque, tamper-evident listing cursors: `next` in a page, `cursor` in a request.
//!
//! A cursor is `base64url(v1 \n scope \n after)` `.` `base64url(mac)`, where
//! `scope` names the listing it belongs to (its filters, or the customer whose
//! members it pages), `after` is the sort key of the last item already returned
//! and `mac` an HMAC-SHA256 over both under the deployment's cursor key. A
//! cursor that was altered, belongs to another listing or was made under
//! another key is 400 `invalid_cursor`.
//!
//! **Rotation.** The key lives in Secrets Manager (`CURSOR_KEY_SECRET_ID`),
//! read at cold start and again every [`secrets::REFRESH_AFTER`]: cursors are
//! sealed under its current version (`AWSCURRENT`) and opened under that, its
//! previous version (`AWSPREVIOUS`) and a version put ahead of becoming
//! current (`AWSPENDING`), so the cursors in flight survive one rotation.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::views::PageInfo;
use crate::config::SecretSource;
use crate::domain::{Invalid, PageRequest, pages};
use crate::http::Query;
use crate::secrets::{self, Refreshing, SecretError};
use crate::store::{Page, PageAt};

/// Bytes of the MAC kept in a cursor.
const MAC_LEN: usize = 16;
/// Longest cursor accepted, in bytes.
const MAX_LEN: usize = 1024;
/// Format version, first line of the payload.
const VERSION: &str = "v1";

/// Seals cursors under one key and opens them under it or older keys.
#[derive(Clone)]
pub struct Cursors {
    key: Vec<u8>,
    /// Keys cursors may also have been sealed under (a rotation's previous
    /// and pending keys).
    also_opens: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Cursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cursors(..)")
    }
}

impl Cursors {
    /// Cursors under `key` (any length; the deployment's `CURSOR_KEY`).
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            also_opens: Vec::new(),
        }
    }

    /// These cursors, also opening those sealed under `key` (an older one).
    pub fn also_opening(mut self, key: impl Into<Vec<u8>>) -> Self {
        let key = key.into();
        if key != self.key && !self.also_opens.contains(&key) {
            self.also_opens.push(key);
        }
        self
    }

    /// The cursor continuing `scope` after the sort key `after`.
    pub fn seal(&self, scope: &str, after: &str) -> String {
        let payload = format!("{VERSION}\n{scope}\n{after}");
        let mac = self.mac(payload.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(&mac[..MAC_LEN])
        )
    }

    /// The sort key a cursor continues after, if it is genuine and for `scope`.
    pub fn open(&self, cursor: &str, scope: &str) -> Result<String, Invalid> {
        let invalid = || {
            Invalid::new(
                "invalid_cursor",
                "cursor",
                "cursor must be a `next` value returned by this listing, unchanged",
            )
        };
        if cursor.len() > MAX_LEN {
            return Err(invalid());
        }
        let (payload, mac) = cursor.split_once('.').ok_or_else(invalid)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| invalid())?;
        if mac.len() != MAC_LEN {
            return Err(invalid());
        }
        let genuine = std::iter::once(&self.key)
            .chain(&self.also_opens)
            .any(|key| {
                let mut check = hmac(key);
                check.update(&payload);
                check.verify_truncated_left(&mac).is_ok()
            });
        if !genuine {
            return Err(invalid());
        }
        let text = String::from_utf8(payload).map_err(|_| invalid())?;
        let mut lines = text.splitn(3, '\n');
        match (lines.next(), lines.next(), lines.next()) {
            (Some(VERSION), Some(s), Some(after)) if s == scope && !after.is_empty() => {
                Ok(after.to_owned())
            }
            _ => Err(invalid()),
        }
    }

    /// Which page a listing request asks for: `page`, or the page after `cursor`
    /// (the two cannot be combined), `limit` items long.
    pub fn page_at(&self, query: &Query, scope: &str) -> Result<(PageAt, u32), Invalid> {
        let page = PageRequest::parse(query.single("page")?, query.single("limit")?)?;
        let Some(cursor) = query.single("cursor")? else {
            return Ok((PageAt::Number(page), page.limit));
        };
        if query.single("page")?.is_some() {
            return Err(Invalid::new(
                "invalid_cursor",
                "cursor",
                "cursor and page cannot be combined",
            ));
        }
        let after = self.open(cursor, scope)?;
        Ok((
            PageAt::After {
                after,
                limit: page.limit,
            },
            page.limit,
        ))
    }

    /// The totals of a page of `scope` read `limit` at a time, and the cursor
    /// of the page after it.
    pub fn page_info<T>(&self, scope: &str, found: &Page<T>, limit: u32) -> PageInfo {
        PageInfo {
            items: found.total,
            pages: pages(found.total, limit),
            next: found
                .more_after
                .as_ref()
                .map(|after| self.seal(scope, after)),
        }
    }

    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = hmac(&self.key);
        mac.update(payload);
        mac.finalize().into_bytes().to_vec()
    }
}

fn hmac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// The stages of the cursor key's secret read beside its current version:
/// cursors sealed under them still open.
const OLDER_STAGES: &[&str] = &[secrets::PREVIOUS, secrets::PENDING];

/// The deployment's cursor keys: fixed (a key given directly, or one per
/// process), or kept in Secrets Manager and read again every
/// [`secrets::REFRESH_AFTER`].
#[derive(Clone)]
pub enum CursorKeys {
    /// One key for the life of the process.
    Fixed(Arc<Cursors>),
    /// The secret's current key, and its previous and pending ones.
    Refreshing(Arc<Refreshing<Cursors>>),
}

impl std::fmt::Debug for CursorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKeys(..)")
    }
}

impl CursorKeys {
    /// Always `cursors`.
    pub fn fixed(cursors: Cursors) -> Self {
        Self::Fixed(Arc::new(cursors))
    }

    /// The keys of `source`: a value is used as it is; a secret in Secrets
    /// Manager is read now (its current version must be; its previous and
    /// pending ones when it has them) and again every `ttl`.
    pub async fn load(
        source: &SecretSource,
        client: aws_sdk_secretsmanager::Client,
        ttl: std::time::Duration,
    ) -> Result<Self, SecretError> {
        if let SecretSource::Value(key) = source {
            return Ok(Self::fixed(Cursors::new(key.expose_secret().as_bytes())));
        }
        let build: secrets::BuildVersions<Cursors> = Box::new(|current, older| {
            let key = |s: &SecretString| s.expose_secret().as_bytes().to_vec();
            if current.expose_secret().is_empty() {
                return Err("empty".to_owned());
            }
            Ok(older
                .iter()
                .flatten()
                .filter(|s| !s.expose_secret().is_empty())
                .fold(Cursors::new(key(current)), |c, s| c.also_opening(key(s))))
        });
        let keys =
            Refreshing::load_versions(source.clone(), client, OLDER_STAGES, build, ttl).await?;
        Ok(Self::Refreshing(Arc::new(keys)))
    }

    /// The cursors to use now.
    pub async fn current(&self) -> Arc<Cursors> {
        match self {
            Self::Fixed(c) => c.clone(),
            Self::Refreshing(r) => r.get().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_cursor_opens_for_its_scope_only() {
        let c = Cursors::new("k1");
        let sealed = c.seal("CUSTOMERS#status=active", "2026-01-01T00:00:00Z#abc");
        assert_eq!(
            c.open(&sealed, "CUSTOMERS#status=active").unwrap(),
            "2026-01-01T00:00:00Z#abc"
        );
        assert!(c.open(&sealed, "CUSTOMERS").is_err());
        assert!(
            Cursors::new("k2")
                .open(&sealed, "CUSTOMERS#status=active")
                .is_err()
        );
    }

    #[test]
    fn older_keys_open_but_only_the_current_one_seals() {
        let old = Cursors::new("k1");
        let rotated = Cursors::new("k2").also_opening("k1");
        let from_old = old.seal("S", "a");
        let from_new = rotated.seal("S", "b");
        assert_eq!(rotated.open(&from_old, "S").unwrap(), "a");
        assert_eq!(rotated.open(&from_new, "S").unwrap(), "b");
        assert!(old.open(&from_new, "S").is_err(), "sealed under k2");
        assert_eq!(from_new, Cursors::new("k2").seal("S", "b"));
        assert!(Cursors::new("k3").open(&from_old, "S").is_err());
    }

    #[test]
    fn altered_or_malformed_cursors_are_invalid() {
        let c = Cursors::new("k");
        let sealed = c.seal("S", "after");
        let (payload, mac) = sealed.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode("v1\nS\nbefore");
        for bad in [
            format!("{forged}.{mac}"),
            format!("{payload}.{}", &mac[..mac.len() - 2]),
            format!("{payload}x.{mac}"),
            payload.to_owned(),
            String::new(),
            ".".to_owned(),
            "a".repeat(MAX_LEN + 1),
            "%%%.%%%".to_owned(),
        ] {
            let err = c.open(&bad, "S").unwrap_err();
            assert_eq!(
                (err.code, err.param),
                ("invalid_cursor", "cursor"),
                "{bad:?}"
            );
        }
    }
}
