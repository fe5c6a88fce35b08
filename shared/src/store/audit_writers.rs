//! This process's writers of each customer's audit trail, one at a time (see
//! [`super::tx::Tx::commit`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::CustomerId;

/// Per customer, the lock its audit writers in this process take turns on.
#[derive(Clone, Debug, Default)]
pub(super) struct AuditWriters(Arc<Mutex<HashMap<CustomerId, Arc<tokio::sync::Mutex<()>>>>>);

/// Turns held on some customers' audit trails; released when dropped.
pub(super) struct Turns<'w> {
    writers: &'w AuditWriters,
    held: Vec<(CustomerId, tokio::sync::OwnedMutexGuard<()>)>,
}

impl AuditWriters {
    /// Waits for this process's turn at each of `customers` (sorted, so two
    /// writers never wait for each other crosswise).
    pub(super) async fn turns(&self, customers: &[CustomerId]) -> Turns<'_> {
        let mut held = Vec::with_capacity(customers.len());
        for customer in customers {
            let lock = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(*customer)
                .or_default()
                .clone();
            held.push((*customer, lock.lock_owned().await));
        }
        Turns {
            writers: self,
            held,
        }
    }
}

impl Drop for Turns<'_> {
    /// Releases the turns, and forgets the locks nobody else holds or awaits.
    fn drop(&mut self) {
        let mut locks = self
            .writers
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (customer, guard) in self.held.drain(..) {
            drop(guard);
            if locks
                .get(&customer)
                .is_some_and(|l| Arc::strong_count(l) == 1)
            {
                locks.remove(&customer);
            }
        }
    }
}
