//! Event-driven cleanup: the DynamoDB Streams consumer (finishes stopped cascades,
//! publishes `customer.deleted` when a customer record is removed and the
//! membership events of new audit entries) and the platform's `user.deleted` hook.

use std::time::Duration;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};

use crate::cascade::{Cascade, CascadeError};
use crate::domain::audit::{Actor, Origin};
use crate::domain::{CustomerId, CustomerState, Role, UserId, now, time};
use crate::events::{CustomerDeleted, PublishError, Publisher};
use crate::sender::ExpectedSender;
use crate::store::table::{StreamCustomer, stream_customer};
use crate::store::{Store, StoreError};

/// A record or event could not be handled; the platform redelivers it.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    /// The cascade stopped.
    #[error(transparent)]
    Cascade(#[from] CascadeError),
    /// The table failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event could not be published.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// An incoming event is not what it claims; nothing was done.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// An event that did not come from the platform's rule (its `source` or
    /// `account` is not the platform's); nothing was done, and retrying
    /// cannot help.
    #[error("event refused: {0}")]
    ForeignSender(String),
}

/// What a `user.deleted` event led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCleanup {
    /// The user belonged to no customer (or was already removed).
    Nothing,
    /// The user was a member; the membership was removed.
    MembershipRemoved(CustomerId),
    /// The user owned the customer; the whole customer was deleted.
    CustomerDeleted(CustomerId),
}

/// How long a DELETE request has to finish its own cascade before the stream
/// consumer takes over (a request takes well under a second and gives up after its
/// budget, `cascade::DEFAULT_BUDGET` = 20 s; its Lambda times out at 29 s).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// The cleanup handlers and what they need.
#[derive(Debug, Clone)]
pub struct Cleanup {
    store: Store,
    cascade: Cascade,
    publisher: Publisher,
    grace: Duration,
    sender: Option<ExpectedSender>,
}

impl Cleanup {
    /// Handlers over a store, Stripe (for cascades) and an event publisher.
    pub fn new(
        store: Store,
        payments: Option<crate::cascade::Payments>,
        publisher: Publisher,
    ) -> Self {
        Self {
            cascade: Cascade::new(store.clone(), payments),
            store,
            publisher,
            grace: DEFAULT_GRACE,
            sender: None,
        }
    }

    /// Takes `user.deleted` only from `sender` (its `source` and `account`).
    pub fn with_sender(mut self, sender: ExpectedSender) -> Self {
        self.sender = Some(sender);
        self
    }

    /// Sets how long a cascade may be in progress before the stream consumer finishes it.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sets the time budget of each cascade this consumer runs (tests use short ones;
    /// the default is `cascade::DEFAULT_BUDGET`).
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.cascade = self.cascade.with_budget(budget);
        self
    }

    /// Handles a batch of stream records in order and answers which failed, for an
    /// event source mapping with `FunctionResponseTypes: [ReportBatchItemFailures]`.
    ///
    /// Processing stops at the first record that fails, and only that record's
    /// sequence number is reported. Lambda checkpoints at the lowest sequence
    /// number reported and redelivers every record from there, so the records after
    /// the failure come back whatever else is reported: handling them now would
    /// only do their work twice, and a second failing cascade (each may use its
    /// whole time budget) could push the invocation past its timeout, which fails
    /// the whole batch. Stopping also keeps every customer's records in stream
    /// order: none is handled before an earlier one has been. The records before
    /// the failure are done and not redelivered (with `BisectBatchOnFunctionError`,
    /// Lambda splits the batch at the reported record and retries the rest).
    /// A failed record without a sequence number is reported with a null identifier,
    /// which Lambda treats as a failure of the whole batch.
    pub async fn on_stream_batch(&self, event: &Event) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        if let Err((record, err)) = self.process(event).await {
            let sequence_number = record.change.sequence_number.clone();
            tracing::warn!(
                error = %err,
                cause = ?std::error::Error::source(&err),
                event_id = %record.event_id,
                sequence_number = sequence_number.as_deref().unwrap_or_default(),
                "stream record failed; it and the records after it will be redelivered"
            );
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = sequence_number;
            response.batch_item_failures.push(failure);
        }
        response
    }

    /// Handles a batch of stream records in order; the first failure fails the whole
    /// batch (for callers that retry whole batches, e.g. `billing-dev consume-stream`).
    pub async fn on_stream(&self, event: &Event) -> Result<(), CleanupError> {
        self.process(event).await.map_err(|(_, err)| err)
    }

    /// Handles the records in order up to the first failure, which it returns with
    /// its record.
    async fn process<'e>(&self, event: &'e Event) -> Result<(), (&'e EventRecord, CleanupError)> {
        let mut folded = std::collections::HashSet::new();
        for record in &event.records {
            self.on_record(record, &mut folded)
                .await
                .map_err(|err| (record, err))?;
        }
        Ok(())
    }

    /// Handles one record; `folded` holds the directories this batch compacted
    /// already (a compaction takes every pending change, so once per batch is
    /// enough; it publishes the age of the oldest as `FoldLagSeconds`) and the
    /// members' minutes whose fences it wrote.
    async fn on_record(
        &self,
        record: &EventRecord,
        folded: &mut std::collections::HashSet<String>,
    ) -> Result<(), CleanupError> {
        match stream_customer(record) {
            Some(StreamCustomer::Counted(pk)) => {
                if !folded.contains(&pk) {
                    let done = self.store.fold_listing(&pk).await?;
                    if let Some(age) = done.oldest.as_deref().and_then(age_of) {
                        crate::telemetry::metrics::fold_lag(age);
                    }
                    folded.insert(pk);
                }
                Ok(())
            }
            Some(StreamCustomer::MembersCounted(customer, slots)) => {
                // The batch was written before it came: one read of a minute
                // now sees every change the batch holds.
                for slot in slots {
                    if folded.insert(format!("{customer}/{slot}")) {
                        self.store.refresh_member_fences(&customer, &slot).await?;
                    }
                }
                Ok(())
            }
            Some(StreamCustomer::Deleting(id)) => self.finish_cascade(&id).await,
            Some(StreamCustomer::Audited(entry)) => Ok(self.publisher.audited(&entry).await?),
            Some(StreamCustomer::Removed(id)) => {
                let at = if record.change.approximate_creation_date_time.timestamp() > 0 {
                    record.change.approximate_creation_date_time
                } else {
                    now()
                };
                let event = CustomerDeleted {
                    event_id: record.event_id.clone(),
                    customer_id: id,
                    deleted_at: time::to_seconds(&at),
                };
                Ok(self.publisher.customer_deleted(&event, &at).await?)
            }
            None => Ok(()),
        }
    }

    /// Finishes a cascade whose DELETE request died; a no-op when it finished. A
    /// cascade younger than the grace period is given the rest of it first, so a
    /// live request is not raced.
    async fn finish_cascade(&self, id: &CustomerId) -> Result<(), CleanupError> {
        let since = match self.store.find_customer(id).await? {
            Some(c) if c.state == CustomerState::Deleting => c.deleting_since,
            _ => return Ok(()),
        };
        let age = since.map_or(self.grace, |t| (now() - t).to_std().unwrap_or_default());
        if age < self.grace {
            tokio::time::sleep(self.grace - age).await;
        }
        // The customer is deleting already: its deletion was audited when it began.
        match self.cascade.run(id, &Origin::system(STREAM_CONSUMER)).await {
            Ok(_) => Ok(()),
            Err(e) if e.nothing_to_delete() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Handles a `user.deleted` event as EventBridge delivers it: an event that
    /// does not parse, or is not `user.deleted`, is refused (the function fails it
    /// into its dead-letter queue) and nothing is done. With an expected sender,
    /// an event from any other `source` or `account` is refused first
    /// ([`CleanupError::ForeignSender`], logged and counted).
    pub async fn on_user_deleted_event(
        &self,
        event: &serde_json::Value,
    ) -> Result<UserCleanup, CleanupError> {
        use aws_lambda_events::eventbridge::EventBridgeEvent;
        if let Some(sender) = &self.sender {
            sender
                .admit(USER_DELETED_HOOK, event)
                .map_err(CleanupError::ForeignSender)?;
        }
        let event: EventBridgeEvent<crate::events::UserDeleted> =
            serde_json::from_value(event.clone())
                .map_err(|e| CleanupError::Malformed(format!("not a user.deleted event: {e}")))?;
        if event.detail_type != crate::events::USER_DELETED {
            return Err(CleanupError::Malformed(format!(
                "detail-type {:?} is not {}",
                event.detail_type,
                crate::events::USER_DELETED
            )));
        }
        let event_id = event.id.clone().unwrap_or_default();
        let origin = Origin::new(Actor::Platform {
            event_id: event_id.clone(),
        })
        .for_request(event_id);
        self.on_user_deleted(&event.detail.user_id, &origin).await
    }

    /// One invocation of the `user.deleted` hook: `Ok` when the event was
    /// handled, or refused as not the platform's (logged and counted: a retry
    /// would be refused again, so Lambda does not retry it); an error (Lambda
    /// retries it, then sends it to the dead-letter queue) otherwise.
    pub async fn on_user_deleted_invocation(
        &self,
        event: &serde_json::Value,
    ) -> Result<(), lambda_runtime::Error> {
        match self.on_user_deleted_event(event).await {
            Ok(outcome) => tracing::info!(?outcome, "user.deleted handled"),
            Err(CleanupError::ForeignSender(_)) => {}
            Err(err) => return Err(failed(err)),
        }
        Ok(())
    }

    /// The platform deleted a user: they are remembered first (their
    /// tombstone, so a late `customer.created` naming them owner is refused,
    /// even while what follows is under way), then an owner's customer is
    /// deleted through the cascade, a member's membership is removed, audited
    /// as by `origin`. Unknown users and replays remove nothing (a replay
    /// renews the tombstone).
    pub async fn on_user_deleted(
        &self,
        user: &UserId,
        origin: &Origin,
    ) -> Result<UserCleanup, CleanupError> {
        self.store.remember_deleted_user(user).await?;
        let Some((customer, role)) = self.store.membership_of(user).await? else {
            return Ok(UserCleanup::Nothing);
        };
        if role == Role::Owner {
            return match self.cascade.run(&customer, origin).await {
                Ok(_) => Ok(UserCleanup::CustomerDeleted(customer)),
                Err(e) if e.nothing_to_delete() => Ok(UserCleanup::Nothing),
                Err(e) => Err(e.into()),
            };
        }
        match self.store.remove_member(&customer, user, origin).await {
            Ok(()) => Ok(UserCleanup::MembershipRemoved(customer)),
            // Gone meanwhile, or the customer is being deleted: its cascade removes it.
            Err(StoreError::MemberNotFound | StoreError::CustomerNotFound) => {
                Ok(UserCleanup::Nothing)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The stream consumer's name: its function, and the actor of what it does.
pub const STREAM_CONSUMER: &str = "cleanup-stream";

/// The `user.deleted` hook's function (and `Function` metric dimension).
pub const USER_DELETED_HOOK: &str = "user-deleted";

/// Logs a failed invocation (the platform retries it) and hands it to the runtime.
fn failed(err: CleanupError) -> lambda_runtime::Error {
    tracing::error!(error = %err, cause = ?std::error::Error::source(&err), "cleanup failed; will be retried");
    err.into()
}

/// How long ago an RFC 3339 time was (zero when it is in the future).
fn age_of(at: &str) -> Option<Duration> {
    let at = chrono::DateTime::parse_from_rfc3339(at).ok()?;
    let age = now().signed_duration_since(at.with_timezone(&chrono::Utc));
    Some(age.to_std().unwrap_or(Duration::ZERO))
}
