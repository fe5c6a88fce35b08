//! The deletion cascade: ordered, resumable steps. A retry (or the stream
//! consumer) runs it again and it finishes what an earlier run left.

use crate::domain::CustomerId;
use crate::store::{Store, StoreError};

/// The steps, in the platform's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Persist the deleting state: hides the customer, blocks new members.
    MarkDeleting,
    /// Delete every membership, keeping `memberCount` exact.
    DeleteMembers,
    /// Delete the customer record last.
    DeleteRecord,
}

/// What a finished cascade did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// Members this run removed.
    pub members: u64,
    /// Whether this run removed the record (a concurrent run may have).
    pub record_removed: bool,
}

/// Why a cascade stopped; nothing after the failed step ran.
#[derive(Debug, thiserror::Error)]
#[error("deletion cascade stopped at {step:?}")]
pub struct CascadeError {
    /// The step that failed.
    pub step: Step,
    /// Why.
    #[source]
    pub source: StoreError,
}

/// Runs the cascade for one customer.
#[derive(Debug, Clone)]
pub struct Cascade {
    store: Store,
}

impl Cascade {
    /// A cascade over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Deletes the customer and everything that belongs to it; resumes a cascade
    /// that stopped half way. `CustomerNotFound` only when there was nothing to delete.
    pub async fn run(&self, id: &CustomerId) -> Result<Deleted, CascadeError> {
        let at = |step| move |source| CascadeError { step, source };
        self.store
            .begin_deletion(id)
            .await
            .map_err(at(Step::MarkDeleting))?;
        let members = self
            .store
            .delete_all_members(id)
            .await
            .map_err(at(Step::DeleteMembers))?;
        let record_removed = self
            .store
            .delete_customer_record(id)
            .await
            .map_err(at(Step::DeleteRecord))?;
        Ok(Deleted {
            members,
            record_removed,
        })
    }
}
