//! Opaque, tamper-evident listing cursors: `next` in a page, `cursor` in a request.
//!
//! A cursor is `base64url(v1 \n scope \n after)` `.` `base64url(mac)`, where
//! `scope` names the listing it belongs to (its filters, or the customer whose
//! members it pages), `after` is the sort key of the last item already returned
//! and `mac` an HMAC-SHA256 over both under the deployment's cursor key. A
//! cursor that was altered, belongs to another listing or was made under
//! another key is 400 `invalid_cursor`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::views::PageInfo;
use crate::domain::{Invalid, PageRequest, pages};
use crate::http::Query;
use crate::store::{Page, PageAt};

/// Bytes of the MAC kept in a cursor.
const MAC_LEN: usize = 16;
/// Longest cursor accepted, in bytes.
const MAX_LEN: usize = 1024;
/// Format version, first line of the payload.
const VERSION: &str = "v1";

/// Seals and opens cursors under one key.
#[derive(Clone)]
pub struct Cursors {
    key: Vec<u8>,
}

impl std::fmt::Debug for Cursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cursors(..)")
    }
}

impl Cursors {
    /// Cursors under `key` (any length; the deployment's `CURSOR_KEY`).
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
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
        let mut check = self.hmac();
        check.update(&payload);
        check.verify_truncated_left(&mac).map_err(|_| invalid())?;
        if mac.len() != MAC_LEN {
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

    fn hmac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }

    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = self.hmac();
        mac.update(payload);
        mac.finalize().into_bytes().to_vec()
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
