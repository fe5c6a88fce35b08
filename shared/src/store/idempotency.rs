//! Idempotency records: a request claims its key before it acts, and leaves
//! its answer there for retries to get again.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

use super::table::{
    CLAIM_FREE, CLAIMED_BY, COMPLETE_CLAIM, IdempotencyItem, IdempotencyState, idempotency_key, n,
    s,
};
use super::tx::used;
use super::{Store, StoreError, observe};

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
            Ok(match (held.fingerprint == c.fingerprint, held.state) {
                (false, _) => Claim::Reused,
                (true, IdempotencyState::InProgress) => Claim::InUse,
                (true, IdempotencyState::Done) => Claim::Answered {
                    status: held.answer_status.unwrap_or(200),
                    body: held.answer_body.unwrap_or_default(),
                },
            })
        })
        .await
    }

    /// Keeps a claimed request's answer; `false` when the claim was lost
    /// (held past its lock and taken over by a retry).
    pub async fn complete_idempotency(
        &self,
        scope: &str,
        claim_id: &str,
        status: u16,
        body: &str,
    ) -> Result<bool, StoreError> {
        observe(store_span!("complete_idempotency"), async {
            let (values, names) = used(
                &[COMPLETE_CLAIM, CLAIMED_BY],
                &[
                    (":done", s("done")),
                    (":status", n(i64::from(status))),
                    (":body", s(body)),
                    (":claim", s(claim_id)),
                ],
            );
            let sent = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(idempotency_key(scope)))
                .update_expression(COMPLETE_CLAIM)
                .condition_expression(CLAIMED_BY)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .send()
                .await;
            held(sent.map(drop).map_err(|e| e.into_service_error().into()))
        })
        .await
    }

    /// Gives up a claim without an answer, so a retry acts again (after a
    /// failure that changed nothing, or may not have); `false` when it was lost.
    pub async fn release_idempotency(
        &self,
        scope: &str,
        claim_id: &str,
    ) -> Result<bool, StoreError> {
        observe(store_span!("release_idempotency"), async {
            let sent = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(idempotency_key(scope)))
                .condition_expression(CLAIMED_BY)
                .expression_attribute_values(":claim", s(claim_id))
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
