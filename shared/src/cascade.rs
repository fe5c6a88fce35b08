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

use crate::domain::{Customer, CustomerId};
use crate::payments::{Closed, Payments, PaymentsError};
use crate::store::{Store, StoreError};

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
    #[error(transparent)]
    Payments(#[from] PaymentsError),
    /// The customer has Stripe objects but no Stripe client is configured.
    #[error("the customer has a Stripe customer but Stripe is not configured")]
    StripeNotConfigured,
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
}

/// Runs the cascade.
#[derive(Debug, Clone)]
pub struct Cascade {
    store: Store,
    payments: Option<Payments>,
}

impl Cascade {
    /// A cascade over a store and, where customers have Stripe objects, Stripe.
    pub fn new(store: Store, payments: Option<Payments>) -> Self {
        Self { store, payments }
    }

    /// Deletes the customer and everything that belongs to it, or finishes a cascade
    /// that stopped half way. `CustomerNotFound` when there is nothing to delete.
    pub async fn run(&self, id: &CustomerId) -> Result<Deleted, CascadeError> {
        let customer = self.mark_deleting(id).await?;
        let billing = self.close_billing(&customer).await?;
        let members = self.delete_members(id).await?;
        let record_removed = self.delete_record(id).await?;
        Ok(Deleted {
            billing,
            members,
            record_removed,
        })
    }

    /// Step 1: returns the customer, now (or already) deleting.
    pub async fn mark_deleting(&self, id: &CustomerId) -> Result<Customer, CascadeError> {
        self.store
            .begin_deletion(id)
            .await
            .map_err(at(Step::MarkDeleting))
    }

    /// Step 2: Stripe objects already gone count as done; any other failure stops here.
    pub async fn close_billing(&self, customer: &Customer) -> Result<Option<Closed>, CascadeError> {
        let Some(stripe_id) = &customer.stripe_customer_id else {
            return Ok(None);
        };
        let payments = self.payments.as_ref().ok_or(CascadeError {
            step: Step::CloseBilling,
            failure: Failure::StripeNotConfigured,
        })?;
        payments
            .close_customer(stripe_id)
            .await
            .map(Some)
            .map_err(at(Step::CloseBilling))
    }

    /// Step 3: returns how many members this call removed.
    pub async fn delete_members(&self, id: &CustomerId) -> Result<u64, CascadeError> {
        self.store
            .delete_all_members(id)
            .await
            .map_err(at(Step::DeleteMembers))
    }

    /// Step 4: `false` when a concurrent run removed the record first.
    pub async fn delete_record(&self, id: &CustomerId) -> Result<bool, CascadeError> {
        self.store
            .delete_customer_record(id)
            .await
            .map_err(at(Step::DeleteRecord))
    }
}

fn at<E: Into<Failure>>(step: Step) -> impl FnOnce(E) -> CascadeError {
    move |e| CascadeError {
        step,
        failure: e.into(),
    }
}
