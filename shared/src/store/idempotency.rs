//! Idempotency records: a request claims its key before it acts, and leaves
//! its answer there for retries to get again. A request whose change commits
//! writes its answer in the same transaction ([`Answering`]), so a retry of a
//! request that died right after its commit replays it instead of acting again.

use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

use super::error::StoreError;
use super::handle::Store;
use super::observe::observe;
use super::table::{
    CLAIM_FREE, CLAIMED_BY, CLAIMED_RUNNING, CLAIMED_UNANSWERED, COMPLETE_CLAIM, IdempotencyItem,
    IdempotencyState, PENDING_ANSWER, idempotency_key, n, s,
};
use super::tx::{Tx, Write, used};

/// What claiming a key came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is this request's: act, then complete or release it.
    Acquired,
    /// The same request answered already: its status and body.
    Answered {
        /// Status of the first answer.
        status: u16,
        /// Body of the first answer (empty for none).
        body: String,
    },
    /// The key belongs to a different request.
    Reused,
    /// The same request is still running.
    InUse,
}

/// A claim to make: which record, for which request, by whom, for how long.
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    /// The record: a hash of the caller and the key.
    pub scope: &'a str,
    /// A hash of the request.
    pub fingerprint: &'a str,
    /// Unique to this attempt.
    pub claim_id: &'a str,
    /// Now, epoch seconds.
    pub now: i64,
    /// How long the claim holds against retries while the request runs.
    pub lock_seconds: i64,
    /// How long the record (and so the answer) is kept.
    pub keep_seconds: i64,
}

/// A key this request holds: the record and the claim, and whether its
/// answer was committed with its change (and whether as final).
#[derive(Debug)]
pub struct Claimed {
    scope: String,
    claim_id: String,
    answered: AtomicBool,
    settled: AtomicBool,
}

impl Claimed {
    /// The claim `claim_id` on the record `scope` (see [`ClaimRequest`]).
    pub fn new(scope: String, claim_id: String) -> Self {
        Self {
            scope,
            claim_id,
            answered: AtomicBool::new(false),
            settled: AtomicBool::new(false),
        }
    }

    /// The record: a hash of the caller and the key.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// Unique to this attempt.
    pub fn claim_id(&self) -> &str {
        &self.claim_id
    }

    /// Whether the answer was committed in the transaction of the change.
    pub fn answered(&self) -> bool {
        self.answered.load(Ordering::SeqCst)
    }

    /// Whether that answer was committed as final: the record is answered,
    /// nothing is left to write.
    pub fn settled(&self) -> bool {
        self.settled.load(Ordering::SeqCst)
    }
}

/// An answer as kept for replays: its status and body (empty for none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Status.
    pub status: u16,
    /// Body (JSON text; empty for none).
    pub body: String,
}

/// The answer of a claimed request, to commit in the transaction of its
/// change: the claim, and the answer as a function of what the change
/// wrote (`T`: the changed member; `()` when the answer is known before).
pub struct Answering<'a, T = ()> {
    claim: &'a Claimed,
    answer: &'a (dyn Fn(&T) -> Answer + Send + Sync),
    pending: bool,
}

impl<'a, T> Answering<'a, T> {
    /// `claim`'s final answer, `answer` of what the change wrote: a retry
    /// replays it at once.
    pub fn new(claim: &'a Claimed, answer: &'a (dyn Fn(&T) -> Answer + Send + Sync)) -> Self {
        Self {
            claim,
            answer,
            pending: false,
        }
    }

    /// `claim`'s answer when the request goes on after the change (a
    /// deletion's cascade): the key stays in use until the request answers
    /// (and keeps it final, or releases it on a 5xx) or its lock runs out;
    /// from then on a retry replays it.
    pub fn pending(claim: &'a Claimed, answer: &'a (dyn Fn(&T) -> Answer + Send + Sync)) -> Self {
        Self {
            claim,
            answer,
            pending: true,
        }
    }

    /// Notes that the transaction carrying the answer committed.
    pub(super) fn committed(answering: Option<&Self>) {
        if let Some(a) = answering {
            a.claim.answered.store(true, Ordering::SeqCst);
            a.claim.settled.store(!a.pending, Ordering::SeqCst);
        }
    }
}

impl<'s> Tx<'s> {
    /// Adds the claimed request's answer (a write named `idempotency`,
    /// conditioned on the claim still being held and unanswered); nothing
    /// without a claim.
    pub(super) fn answer<T>(
        self,
        answering: Option<&Answering<'_, T>>,
        of: &T,
    ) -> Result<Self, StoreError> {
        let Some(a) = answering else {
            return Ok(self);
        };
        let Answer { status, body } = (a.answer)(of);
        self.update(
            Write::Idempotency,
            idempotency_key(&a.claim.scope),
            if a.pending {
                PENDING_ANSWER
            } else {
                COMPLETE_CLAIM
            },
            Some(CLAIMED_RUNNING),
            &[
                (":done", s("done")),
                (":status", n(i64::from(status))),
                (":body", s(body)),
                (":claim", s(&a.claim.claim_id)),
                (":running", s("in_progress")),
            ],
        )
    }
}

impl Store {
    /// Claims an idempotency record for a request, or tells what holds it.
    pub async fn claim_idempotency(&self, c: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        observe(store_span!("claim_idempotency"), async {
            let item = IdempotencyItem::claim(
                c.scope,
                c.fingerprint.to_owned(),
                c.claim_id.to_owned(),
                c.now + c.lock_seconds,
                c.now + c.keep_seconds,
            );
            let (values, names) = used(
                &[CLAIM_FREE],
                &[
                    (":now", n(c.now)),
                    (":running", s("in_progress")),
                    (":fingerprint", s(c.fingerprint)),
                ],
            );
            let sent = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(serde_dynamo::to_item(item)?))
                .condition_expression(CLAIM_FREE)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let held = match sent {
                Ok(_) => return Ok(Claim::Acquired),
                Err(err) => match err.into_service_error() {
                    PutItemError::ConditionalCheckFailedException(e) => e.item,
                    other => return Err(StoreError::dynamo(other)),
                },
            };
            let held: IdempotencyItem = serde_dynamo::from_item(
                held.ok_or_else(|| StoreError::Corrupt("claim failed on no record".into()))?,
            )?;
            // A running request whose change committed its answer: replayed
            // once that request's lock ran out (it died before answering).
            let answered = match held.state {
                IdempotencyState::Done => true,
                IdempotencyState::InProgress => {
                    held.answer_status.is_some() && held.locked_until < c.now
                }
            };
            Ok(match (held.fingerprint == c.fingerprint, answered) {
                (false, _) => Claim::Reused,
                (true, false) => Claim::InUse,
                (true, true) => Claim::Answered {
                    status: held.answer_status.unwrap_or(200),
                    body: held.answer_body.unwrap_or_default(),
                },
            })
        })
        .await
    }

    /// Keeps a claimed request's answer, when its change did not commit it;
    /// `false` when the claim was lost (held past its lock and taken over by
    /// a retry) or already holds an answer.
    pub async fn complete_idempotency(
        &self,
        claim: &Claimed,
        answer: &Answer,
    ) -> Result<bool, StoreError> {
        observe(store_span!("complete_idempotency"), async {
            let (values, names) = used(
                &[COMPLETE_CLAIM, CLAIMED_RUNNING],
                &[
                    (":done", s("done")),
                    (":status", n(i64::from(answer.status))),
                    (":body", s(&answer.body)),
                    (":claim", s(&claim.claim_id)),
                    (":running", s("in_progress")),
                ],
            );
            let sent = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(idempotency_key(&claim.scope)))
                .update_expression(COMPLETE_CLAIM)
                .condition_expression(CLAIMED_RUNNING)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .send()
                .await;
            held(sent.map(drop).map_err(|e| e.into_service_error().into()))
        })
        .await
    }

    /// Gives up a claim without an answer, so a retry acts again (after a
    /// failure that changed nothing, or may not have); `false` when it was
    /// lost. An answer committed with its change stays (a retry replays
    /// it: the request failed without knowing its change had committed),
    /// unless this request saw its change commit and then failed (a
    /// deletion whose cascade stopped after its first transaction): then the
    /// answer goes too and a retry resumes.
    pub async fn release_idempotency(&self, claim: &Claimed) -> Result<bool, StoreError> {
        observe(store_span!("release_idempotency"), async {
            let condition = match claim.answered() {
                true => CLAIMED_BY,
                false => CLAIMED_UNANSWERED,
            };
            let (values, names) = used(
                &[condition],
                &[
                    (":claim", s(&claim.claim_id)),
                    (":running", s("in_progress")),
                ],
            );
            let sent = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(idempotency_key(&claim.scope)))
                .condition_expression(condition)
                .set_expression_attribute_names((!names.is_empty()).then_some(names))
                .set_expression_attribute_values(Some(values))
                .send()
                .await;
            held(sent.map(drop).map_err(|e| e.into_service_error().into()))
        })
        .await
    }
}

/// `true` when a write conditioned on a claim went through, `false` when the
/// claim was no longer held.
fn held(sent: Result<(), aws_sdk_dynamodb::Error>) -> Result<bool, StoreError> {
    match sent {
        Ok(()) => Ok(true),
        Err(aws_sdk_dynamodb::Error::ConditionalCheckFailedException(_)) => Ok(false),
        Err(e) => Err(StoreError::Dynamo(Box::new(e))),
    }
}
