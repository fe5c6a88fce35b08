//! Idempotency records: one per caller and `Idempotency-Key`, holding the
//! request's fingerprint while it runs and its answer once it has one.

use serde::{Deserialize, Serialize};

use super::items::Header;
use super::{Item, key};

/// Whether a record's request is still running or has its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdempotencyState {
    /// Claimed by a request that has not answered yet.
    InProgress,
    /// Answered: the answer is kept.
    Done,
}

/// Stored shape of an idempotency record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotencyItem {
    #[serde(flatten)]
    header: Header,
    /// SHA-256 of the request (method, path, body).
    pub fingerprint: String,
    /// Running or answered.
    pub state: IdempotencyState,
    /// The claim of the request that runs it.
    #[serde(rename = "claimID")]
    pub claim_id: String,
    /// Until when (epoch seconds) a running request holds the key; after
    /// it, a retry of the same request takes the key over.
    #[serde(default)]
    pub locked_until: i64,
    /// When (epoch seconds) the record expires: the table's time to live.
    pub expires_at: i64,
    /// The answer's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_status: Option<u16>,
    /// The answer's body (JSON text; empty for 204).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_body: Option<String>,
}

impl IdempotencyItem {
    /// A claim on the record `scope` (the caller and key, hashed) by `claim_id`.
    pub fn claim(
        scope: &str,
        fingerprint: String,
        claim_id: String,
        locked_until: i64,
        expires_at: i64,
    ) -> Self {
        Self {
            header: Header::new(pk(scope), SK, "idempotency"),
            fingerprint,
            state: IdempotencyState::InProgress,
            claim_id,
            locked_until,
            expires_at,
            answer_status: None,
            answer_body: None,
        }
    }
}

const SK: &str = "IDEMPOTENCY";

fn pk(scope: &str) -> String {
    format!("IDEMPOTENCY#{scope}")
}

/// Key of the idempotency record `scope`.
pub fn idempotency_key(scope: &str) -> Item {
    key(pk(scope), SK)
}

/// Condition of a claim: no record, an expired one (not yet removed by the
/// time to live), or a running one of the same request whose holder died
/// before its change committed an answer.
pub const CLAIM_FREE: &str = "attribute_not_exists(#pk) OR expiresAt < :now \
     OR (#state = :running AND lockedUntil < :now AND fingerprint = :fingerprint \
     AND attribute_not_exists(answerStatus))";
/// Condition: the record is still held by claim `:claim`.
pub const CLAIMED_BY: &str = "claimID = :claim";
/// Condition: the record is held by claim `:claim` and has no answer yet
/// (`:running`): an answer committed with its change is never overwritten.
pub const CLAIMED_RUNNING: &str = "claimID = :claim AND #state = :running";
/// Condition: the record is held by claim `:claim`, running, and holds no
/// answer, not even a pending one (see [`PENDING_ANSWER`]).
pub const CLAIMED_UNANSWERED: &str =
    "claimID = :claim AND #state = :running AND attribute_not_exists(answerStatus)";
/// Update: the answer (`:status`, `:body`) of a request whose change
/// committed and that still runs (a deletion's cascade): kept for replays once
/// the request answered or its lock ran out.
pub const PENDING_ANSWER: &str = "SET answerStatus = :status, answerBody = :body";
/// Update: the claimed request's answer (`:status`, `:body`).
pub const COMPLETE_CLAIM: &str =
    "SET #state = :done, answerStatus = :status, answerBody = :body REMOVE lockedUntil";
