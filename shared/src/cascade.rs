//! The deletion cascade: ordered, resumable steps. A retried DELETE (or the stream
//! consumer) runs it again and it finishes whatever an earlier run left.
//!
//! 1. mark the customer deleting (hidden, closed to new members, uncounted);
//! 2. cancel its Stripe subscriptions and delete the Stripe customer;
//! 3. delete every membership;
//! 4. delete the customer record last;
//! 5. `customer.deleted` is published by the stream consumer when it sees the
//!    record's removal (the stream is the outbox: a crash here loses nothing).
//!
//! The model keeps no per-customer usage counters, so there is nothing to wipe
//! between 3 and 4; the listing counters are adjusted in step 1.
//!
//! A run has one time budget ([`DEFAULT_BUDGET`]): every step, and every Stripe
//! attempt and retry sleep inside a step, ends by the same [`Deadline`]. A run that
//! runs out of time stops with [`Failure::OutOfTime`], the customer left deleting
//! (hidden, closed); a retried DELETE or the stream consumer finishes it.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::deadline::Deadline;
use crate::domain::audit::Origin;
use crate::domain::{Customer, CustomerId};
pub use crate::payments::Closed;
#[cfg(feature = "stripe")]
pub use crate::payments::{Payments, PaymentsError};
use crate::store::{Answering, Store, StoreError};
use crate::telemetry::metrics;

/// The Stripe client of a build without the `stripe` feature: it has no value,
/// so a cascade's `Option<Payments>` is always `None` and a customer with a
/// Stripe customer stops at [`Step::CloseBilling`] with
/// [`Failure::StripeNotConfigured`]. The functions that delete customers are
/// built with the feature.
#[cfg(not(feature = "stripe"))]
#[derive(Debug, Clone)]
pub enum Payments {}

/// The time budget of one cascade run, DELETE request or stream consumer.
///
/// The delete function times out after 29 s, and the HTTP API cuts integrations
/// off at 30 s; the budget must end early enough that the function still answers
/// (503 `deletion_in_progress`, in the error convention) itself. 20 s leaves 9 s
/// for what happens before the cascade starts (cold-start initialisation does not
/// count against the timeout; authentication is a local signature check or one
/// API-key `GetItem`, bounded by the DynamoDB operation timeout of 6 s, see
/// `aws::dynamodb`) and for writing the answer. Inside it:
/// - the one Stripe call gets up to 3 attempts of 5 s with 1 s + 2 s of backoff
///   (18 s worst case; `payments::ATTEMPT_TIMEOUT`), only as many as still fit;
/// - one DynamoDB operation takes at most 6 s (3 s per attempt), so a stuck call
///   fails while the budget still has room.
///
/// A healthy cascade takes well under a second (one Stripe call, a few
/// transactions). The stream consumer leaves a cascade younger than its grace
/// (30 s) alone, so it never races a DELETE that is still within this budget.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(20);

/// Seconds a client should wait before retrying a DELETE that ran out of time
/// (the `Retry-After` of the 503).
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// The steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Persist the deleting state.
    MarkDeleting,
    /// Cancel subscriptions, delete the Stripe customer.
    CloseBilling,
    /// Delete every membership, keeping `memberCount` exact.
    DeleteMembers,
    /// Delete the customer record.
    DeleteRecord,
}

impl Step {
    /// The `Step` dimension value of its metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::MarkDeleting => "mark_deleting",
            Self::CloseBilling => "close_billing",
            Self::DeleteMembers => "delete_members",
            Self::DeleteRecord => "delete_record",
        }
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// It did its work (or found it done).
    Ok,
    /// The customer was not there (already deleted).
    NotFound,
    /// The run's time budget ran out during it.
    OutOfTime,
    /// It failed (Stripe, the table, configuration).
    Failed,
}

impl StepOutcome {
    /// The outcome of a step's result.
    pub fn of<T>(result: &Result<T, CascadeError>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(e) if e.nothing_to_delete() => Self::NotFound,
            Err(e) if e.out_of_time() => Self::OutOfTime,
            Err(_) => Self::Failed,
        }
    }

    /// The `Outcome` dimension value of its metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NotFound => "not_found",
            Self::OutOfTime => "out_of_time",
            Self::Failed => "failed",
        }
    }
}

/// What a finished cascade did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Stripe's side, when the customer had one.
    pub billing: Option<Closed>,
    /// Members this run removed.
    pub members: u64,
    /// Whether this run removed the record (a concurrent run may have).
    pub record_removed: bool,
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The table.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stripe.
    #[cfg(feature = "stripe")]
    #[error(transparent)]
    Payments(#[from] PaymentsError),
    /// The customer has Stripe objects but no Stripe client is configured.
    #[error("the customer has a Stripe customer but Stripe is not configured")]
    StripeNotConfigured,
    /// The run's time budget ran out during the step (or Stripe timed out on every
    /// attempt that fitted in it); what the step did so far stays, a rerun resumes.
    #[error("the deletion cascade ran out of time")]
    OutOfTime,
}

/// A cascade stopped at `step`; nothing after it ran.
#[derive(Debug, thiserror::Error)]
#[error("deletion cascade stopped at {step:?}")]
pub struct CascadeError {
    /// The step that failed.
    pub step: Step,
    /// Why.
    #[source]
    pub failure: Failure,
}

impl CascadeError {
    /// The customer was not there to delete (already gone).
    pub fn nothing_to_delete(&self) -> bool {
        matches!(self.failure, Failure::Store(StoreError::CustomerNotFound))
    }

    /// The run ran out of time; the customer stays deleting until a rerun.
    pub fn out_of_time(&self) -> bool {
        matches!(self.failure, Failure::OutOfTime)
    }
}

/// Runs the cascade.
#[derive(Debug, Clone)]
pub struct Cascade {
    store: Store,
    payments: Option<Payments>,
    budget: Duration,
}

impl Cascade {
    /// A cascade over a store and, where customers have Stripe objects, Stripe,
    /// with the [`DEFAULT_BUDGET`] per run.
    pub fn new(store: Store, payments: Option<Payments>) -> Self {
        Self {
            store,
            payments,
            budget: DEFAULT_BUDGET,
        }
    }

    /// Sets the time budget of a run (tests use short ones).
    #[must_use]
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// The time budget of a run.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// Deletes the customer and everything that belongs to it, or finishes a cascade
    /// that stopped half way, within the budget. `CustomerNotFound` when there is
    /// nothing to delete, [`Failure::OutOfTime`] when the budget ran out. Starting
    /// a deletion records it in the audit trail as by `origin`.
    pub async fn run(&self, id: &CustomerId, origin: &Origin) -> Result<Deleted, CascadeError> {
        self.run_until(id, Deadline::after(self.budget), origin)
            .await
    }

    /// [`Cascade::run`], every step ending by `deadline`.
    pub async fn run_until(
        &self,
        id: &CustomerId,
        deadline: Deadline,
        origin: &Origin,
    ) -> Result<Deleted, CascadeError> {
        self.run_answered(id, deadline, origin, None).await
    }

    /// [`Cascade::run_until`], committing a claimed request's answer in the
    /// transaction that marks the customer deleting (step 1; a resumed
    /// cascade commits none).
    pub async fn run_answered(
        &self,
        id: &CustomerId,
        deadline: Deadline,
        origin: &Origin,
        answering: Option<&Answering<'_>>,
    ) -> Result<Deleted, CascadeError> {
        let customer = self
            .mark_deleting_until(id, deadline, origin, answering)
            .await?;
        let billing = self.close_billing_until(&customer, deadline).await?;
        let members = self.delete_members_until(id, deadline).await?;
        let record_removed = self.delete_record_until(id, deadline).await?;
        Ok(Deleted {
            billing,
            members,
            record_removed,
        })
    }

    /// Step 1 alone, with a budget of its own: returns the customer, now (or
    /// already) deleting; the deletion is audited as by `origin`.
    pub async fn mark_deleting(
        &self,
        id: &CustomerId,
        origin: &Origin,
    ) -> Result<Customer, CascadeError> {
        self.mark_deleting_until(id, self.fresh_deadline(), origin, None)
            .await
    }

    /// Step 2 alone, with a budget of its own: Stripe objects already gone count as
    /// done; any other failure stops here.
    pub async fn close_billing(&self, customer: &Customer) -> Result<Option<Closed>, CascadeError> {
        self.close_billing_until(customer, self.fresh_deadline())
            .await
    }

    /// Step 3 alone, with a budget of its own: returns how many members this call
    /// removed.
    pub async fn delete_members(&self, id: &CustomerId) -> Result<u64, CascadeError> {
        self.delete_members_until(id, self.fresh_deadline()).await
    }

    /// Step 4 alone, with a budget of its own: `false` when a concurrent run
    /// removed the record first.
    pub async fn delete_record(&self, id: &CustomerId) -> Result<bool, CascadeError> {
        self.delete_record_until(id, self.fresh_deadline()).await
    }

    fn fresh_deadline(&self) -> Deadline {
        Deadline::after(self.budget)
    }

    async fn mark_deleting_until(
        &self,
        id: &CustomerId,
        deadline: Deadline,
        origin: &Origin,
        answering: Option<&Answering<'_>>,
    ) -> Result<Customer, CascadeError> {
        bounded(
            Step::MarkDeleting,
            deadline,
            self.store.begin_deletion_answered(id, origin, answering),
        )
        .await
    }

    async fn close_billing_until(
        &self,
        customer: &Customer,
        deadline: Deadline,
    ) -> Result<Option<Closed>, CascadeError> {
        let Some(stripe_id) = &customer.stripe_customer_id else {
            return Ok(None);
        };
        let payments = self.payments.as_ref().ok_or(CascadeError {
            step: Step::CloseBilling,
            failure: Failure::StripeNotConfigured,
        })?;
        let closed = bounded(
            Step::CloseBilling,
            deadline,
            close_customer(payments, stripe_id, deadline),
        )
        .await?;
        Ok(Some(closed))
    }

    async fn delete_members_until(
        &self,
        id: &CustomerId,
        deadline: Deadline,
    ) -> Result<u64, CascadeError> {
        bounded(
            Step::DeleteMembers,
            deadline,
            self.store.delete_all_members(id),
        )
        .await
    }

    async fn delete_record_until(
        &self,
        id: &CustomerId,
        deadline: Deadline,
    ) -> Result<bool, CascadeError> {
        bounded(
            Step::DeleteRecord,
            deadline,
            self.store.delete_customer_record(id),
        )
        .await
    }
}

/// Deletes the Stripe customer (which cancels its subscriptions) within `deadline`.
///
/// Boxed: the Stripe client's futures nest deep, and every binary that runs the
/// cascade would otherwise need a higher `recursion_limit` to lay out its future.
#[cfg(feature = "stripe")]
fn close_customer<'a>(
    payments: &'a Payments,
    stripe_id: &'a str,
    deadline: Deadline,
) -> Pin<Box<dyn Future<Output = Result<Closed, Failure>> + Send + 'a>> {
    Box::pin(async move {
        payments
            .close_customer(stripe_id, deadline)
            .await
            .map_err(|e| {
                // Stripe timing out on every attempt that fitted is the budget
                // running out, not an answer from Stripe.
                if e.timed_out() {
                    Failure::OutOfTime
                } else {
                    Failure::Payments(e)
                }
            })
    })
}

/// Without the `stripe` feature there is no [`Payments`] value to call.
#[cfg(not(feature = "stripe"))]
fn close_customer<'a>(
    payments: &'a Payments,
    _stripe_id: &'a str,
    _deadline: Deadline,
) -> Pin<Box<dyn Future<Output = Result<Closed, Failure>> + Send + 'a>> {
    match *payments {}
}

/// Runs one step until it finishes or `deadline` passes (a step is not started
/// once it has); either way a failure names the step.
async fn bounded<T, E: Into<Failure>>(
    step: Step,
    deadline: Deadline,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, CascadeError> {
    let started = std::time::Instant::now();
    let result = match deadline.run(work).await {
        Ok(done) => done.map_err(at(step)),
        Err(crate::deadline::Expired) => Err(CascadeError {
            step,
            failure: Failure::OutOfTime,
        }),
    };
    let outcome = StepOutcome::of(&result);
    metrics::cascade_step(step.name(), outcome.as_str(), started.elapsed());
    result
}

fn at<E: Into<Failure>>(step: Step) -> impl FnOnce(E) -> CascadeError {
    move |e| CascadeError {
        step,
        failure: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::capture::{directives, one, strings};

    #[test]
    fn step_outcomes_of_results() {
        let failed = |failure| -> Result<(), CascadeError> {
            Err(CascadeError {
                step: Step::CloseBilling,
                failure,
            })
        };
        assert_eq!(StepOutcome::of(&Ok::<_, CascadeError>(())), StepOutcome::Ok);
        assert_eq!(
            StepOutcome::of(&failed(Failure::Store(StoreError::CustomerNotFound))),
            StepOutcome::NotFound
        );
        assert_eq!(
            StepOutcome::of(&failed(Failure::OutOfTime)),
            StepOutcome::OutOfTime
        );
        assert_eq!(
            StepOutcome::of(&failed(Failure::StripeNotConfigured)),
            StepOutcome::Failed
        );
    }

    #[test]
    fn cascade_steps_by_step_and_outcome() {
        let steps = [
            (Step::MarkDeleting, "mark_deleting"),
            (Step::CloseBilling, "close_billing"),
            (Step::DeleteMembers, "delete_members"),
            (Step::DeleteRecord, "delete_record"),
        ];
        for (step, name) in steps {
            let doc = one(|| {
                metrics::cascade_step(
                    step.name(),
                    StepOutcome::Ok.as_str(),
                    Duration::from_millis(7),
                )
            });
            assert_eq!(
                directives(&doc),
                [(
                    strings(&["Stack", "Step", "Outcome"]),
                    strings(&["CascadeSteps", "CascadeStepDuration"])
                )]
            );
            assert_eq!(doc["Step"], name);
            assert_eq!(doc["Outcome"], "ok");
            assert_eq!(doc["CascadeSteps"], 1.0);
            assert_eq!(doc["CascadeStepDuration"], 7.0);
        }
        let outcomes = [
            (StepOutcome::Ok, "ok"),
            (StepOutcome::NotFound, "not_found"),
            (StepOutcome::OutOfTime, "out_of_time"),
            (StepOutcome::Failed, "failed"),
        ];
        for (outcome, name) in outcomes {
            assert_eq!(outcome.as_str(), name);
        }
        let doc = one(|| {
            metrics::cascade_step(
                Step::CloseBilling.name(),
                StepOutcome::OutOfTime.as_str(),
                Duration::ZERO,
            )
        });
        assert_eq!(doc["Outcome"], "out_of_time");
    }
}
