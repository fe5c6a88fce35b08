//! `Idempotency-Key`: a mutation retried with the same key and the same
//! request within [`KEEP`] gets its first answer again, without acting twice.
//!
//! The request claims the caller's key before it acts (a record holding a
//! hash of the request), and its answer is kept there: a retry of the same
//! request gets that answer (`Idempotent-Replayed: true`), a different request
//! with the key is 422 `idempotency_key_reused`, and a retry while the first
//! still runs is 409 `idempotency_key_in_use`.
//!
//! A request whose change commits writes its answer in the transaction of
//! that change (the store's `*_answered` operations), conditioned on still
//! holding the claim: a request that dies right after its commit is replayed,
//! never run again, and a request whose claim was taken over commits nothing.
//! A deletion commits its answer in the transaction that marks the customer
//! deleting, as pending: while its cascade runs, a retry is 409 in use; once
//! it answered, or its lock ran out, a retry replays it. A request that
//! commits nothing (refused, or a role it already has) keeps its answer after
//! it ([`finish`]). A 400 (the request failed validation and
//! did nothing) or a 5xx (nothing done, or not known to be) is not kept: it
//! releases the key, so a retry, corrected or not, acts; an answer committed
//! with a change this request did not see through stays for replays. A
//! request that dies holding its claim keeps it for [`LOCK`]; the same
//! request then takes over.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::domain::Invalid;
use crate::http::ApiError;
use crate::store::{Answer, Claim, ClaimRequest, Claimed, Store};

/// The request header.
pub const KEY_HEADER: &str = "idempotency-key";
/// The header on a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// How long an answer is kept for retries.
pub const KEEP: Duration = Duration::from_secs(24 * 3600);
/// How long a running request holds its key against retries (longer than
/// any function's timeout).
pub const LOCK: Duration = Duration::from_secs(60);
/// Longest key accepted, in bytes.
const MAX_KEY_LEN: usize = 255;

/// How a mutation starts: it acts (holding its key's claim when it has a
/// key), or its first answer is served again.
pub(super) enum Start {
    /// Act; with the claim when the request has a key.
    Act(Option<Claimed>),
    /// The first answer, replayed.
    Replay(Response<Body>),
}

/// Claims the request's `Idempotency-Key`, if it has one, for `lock`.
pub(super) async fn start(
    store: &Store,
    caller: &Caller,
    req: &Request,
    lock: Duration,
) -> Result<Start, ApiError> {
    let Some(key) = key(req.headers())? else {
        return Ok(Start::Act(None));
    };
    // An oversized body is refused before it is hashed, as the handler would.
    crate::http::within_size(req)?;
    let scope = hex(&Sha256::new()
        .chain_update(caller.scope())
        .chain_update([0])
        .chain_update(key)
        .finalize());
    let fingerprint = fingerprint(req);
    let claimed = Claimed::new(scope, uuid::Uuid::new_v4().to_string());
    let claim = ClaimRequest {
        scope: claimed.scope(),
        fingerprint: &fingerprint,
        claim_id: claimed.claim_id(),
        now: crate::domain::now().timestamp(),
        lock_seconds: lock.as_secs() as i64,
        keep_seconds: KEEP.as_secs() as i64,
    };
    match store.claim_idempotency(&claim).await? {
        Claim::Acquired => Ok(Start::Act(Some(claimed))),
        Claim::Answered { status, body } => Ok(Start::Replay(replay(status, body))),
        Claim::Reused => Err(ApiError::IdempotencyKeyReused),
        Claim::InUse => Err(ApiError::IdempotencyKeyInUse),
    }
}

/// The mutation's outcome as served: with a claim, kept for retries unless
/// its change committed it already, or released (400, 5xx).
pub(super) async fn finish(
    store: &Store,
    claimed: Option<&Claimed>,
    outcome: Result<Response<Body>, ApiError>,
) -> Result<Response<Body>, ApiError> {
    let Some(claimed) = claimed else {
        return outcome;
    };
    let response = outcome.unwrap_or_else(ApiError::into_response);
    let status = response.status();
    let kept = if status == StatusCode::BAD_REQUEST || status.is_server_error() {
        store.release_idempotency(claimed).await
    } else if claimed.settled() {
        return Ok(response);
    } else {
        store
            .complete_idempotency(claimed, &answer_of(&response))
            .await
    };
    match kept {
        Ok(true) => {}
        Ok(false) => tracing::warn!("idempotency claim taken over, or answered with its change"),
        Err(err) => tracing::warn!(error = %err, "idempotency answer not kept"),
    }
    Ok(response)
}

/// A response as kept for replays.
pub(super) fn answer_of(response: &Response<Body>) -> Answer {
    Answer {
        status: response.status().as_u16(),
        body: text(response.body()).to_owned(),
    }
}

/// The `Idempotency-Key` header: 1 to 255 visible ASCII characters.
fn key(headers: &HeaderMap) -> Result<Option<&str>, Invalid> {
    let invalid = || {
        Invalid::new(
            "invalid_idempotency_key",
            "Idempotency-Key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )
    };
    let mut values = headers.get_all(KEY_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid());
    }
    let key = value.to_str().map_err(|_| invalid())?;
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    Ok(Some(key))
}

/// A hash of what makes two requests the same: method, path and body (JSON
/// bodies compared as values, so key order and spacing do not matter).
fn fingerprint(req: &Request) -> String {
    let body: &[u8] = req.body().as_ref();
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_vec(&v).ok());
    hex(&Sha256::new()
        .chain_update(req.method().as_str())
        .chain_update([0])
        .chain_update(req.uri().path())
        .chain_update([0])
        .chain_update(canonical.as_deref().unwrap_or(body))
        .finalize())
}

/// A kept answer, served again.
fn replay(status: u16, body: String) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let error = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error").cloned());
    let empty = body.is_empty();
    let mut response = if empty {
        Response::new(Body::Empty)
    } else {
        Response::new(Body::Text(body))
    };
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if !empty {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    for (name, field) in [("x-error", "message"), ("x-error-id", "error_id")] {
        let value = error.as_ref().and_then(|e| e.get(field)?.as_str());
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    response
}

fn text(body: &Body) -> &str {
    match body {
        Body::Text(text) => text,
        Body::Binary(bytes) => std::str::from_utf8(bytes).unwrap_or_default(),
        Body::Empty => "",
        _ => "",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(KEY_HEADER, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_key_is_one_header_of_visible_ascii() {
        assert_eq!(key(&headers(&[])).unwrap(), None);
        assert_eq!(key(&headers(&["abc-123"])).unwrap(), Some("abc-123"));
        let long = "k".repeat(MAX_KEY_LEN + 1);
        for bad in [&["a b"][..], &[""], &[long.as_str()], &["a", "b"]] {
            assert_eq!(
                key(&headers(bad)).unwrap_err().code,
                "invalid_idempotency_key",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_fingerprint_ignores_json_layout_but_not_values_or_paths() {
        let req = |path: &str, body: &str| {
            http::Request::builder()
                .method("POST")
                .uri(path)
                .body(Body::from(body))
                .unwrap()
        };
        let a = fingerprint(&req("/c/1", r#"{"userID":"u","role":"user"}"#));
        let b = fingerprint(&req("/c/1", r#"{ "role": "user", "userID": "u" }"#));
        assert_eq!(a, b);
        assert_ne!(
            a,
            fingerprint(&req("/c/1", r#"{"userID":"u","role":"admin"}"#))
        );
        assert_ne!(
            a,
            fingerprint(&req("/c/2", r#"{"userID":"u","role":"user"}"#))
        );
    }

    #[test]
    fn a_replay_is_the_first_answer_marked_replayed() {
        let r = replay(201, r#"{"message":"acknowledged"}"#.into());
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()[REPLAYED_HEADER], "true");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let r = replay(204, String::new());
        assert!(matches!(r.body(), Body::Empty));
        assert!(r.headers().get(header::CONTENT_TYPE).is_none());
        let r = replay(
            404,
            r#"{"error":{"message":"gone","error_id":"e1"}}"#.into(),
        );
        assert_eq!(r.headers()["x-error-id"], "e1");
    }
}
