//! Transactional writes with conditions, cancellation reasons and bounded retries.

use std::time::Duration;

use tracing::Instrument;
use tracing::field::Empty;

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};

use crate::domain::CustomerId;
use crate::domain::audit::AuditEntry;

use std::collections::HashMap;

use super::error::StoreError;
use super::handle::Store;
use super::table::{
    AuditItem, Item, NOT_EXISTS, PK, SEQUENCE_IS, audit_pk, audit_sequence_item,
    audit_sequence_key, audit_sequence_of, names,
};
pub(super) use super::writes::Write;

/// Attempts before a transaction that keeps conflicting gives up.
const ATTEMPTS: u32 = 10;
/// Attempts at numbering a transaction's audit entries while other writers
/// of the same customer take the numbers first: each round of racing
/// writers numbers one, so a burst of n concurrent changes to one customer
/// needs up to n rounds.
const NUMBERING_ATTEMPTS: u32 = 40;

/// Why a transaction was cancelled: for each write, in order, its name, the
/// reason code and the item its condition found. Read by name:
/// `c.failed(Write::Member)`, never by position.
#[derive(Debug)]
pub struct Cancelled(Vec<Reason>);

/// One write's cancellation reason.
#[derive(Debug)]
struct Reason {
    write: Write,
    code: String,
    item: Option<Item>,
}

impl Cancelled {
    /// Whether the write `write` failed its condition.
    pub(super) fn failed(&self, write: Write) -> bool {
        self.failures().any(|r| r.write == write)
    }

    /// The item the failed write `write` found, if it existed.
    pub(super) fn old(&self, write: Write) -> Option<&Item> {
        self.failures()
            .find(|r| r.write == write)
            .and_then(|r| r.item.as_ref())
    }

    /// Whether any write failed its condition.
    pub fn any_failed(&self) -> bool {
        self.failures().next().is_some()
    }

    fn failures(&self) -> impl Iterator<Item = &Reason> {
        self.0.iter().filter(|r| r.code == "ConditionalCheckFailed")
    }

    /// Whether the only conditions that failed are the audit numbering's:
    /// another writer took the numbers first.
    fn numbering_only(&self) -> bool {
        self.any_failed() && self.failures().all(|r| r.write.numbers_audits())
    }

    /// The audit sequences the failed numbering found, by partition key:
    /// what the next attempt numbers after, without reading them again.
    fn sequences_found(&self) -> HashMap<String, Item> {
        self.failures()
            .filter(|r| r.write == Write::AuditSequence)
            .filter_map(|r| {
                let item = r.item.as_ref()?;
                let pk = item.get(PK)?.as_s().ok()?.clone();
                Some((pk, item.clone()))
            })
            .collect()
    }

    fn conflicted(&self) -> bool {
        !self.any_failed() && self.0.iter().any(|r| r.code == "TransactionConflict")
    }
}

/// A transaction being put together: every write has a name ([`Write`]) that
/// its cancellation reason is read by ([`Cancelled::failed`]).
#[must_use]
pub struct Tx<'s> {
    store: &'s Store,
    writes: Vec<(Write, TransactWriteItem)>,
    /// Audit entries, numbered when the transaction commits.
    audits: Vec<AuditEntry>,
}

impl Tx<'_> {
    /// Adds the audit entry of the change this transaction makes: at commit
    /// it is numbered after its customer's newest entry and put
    /// ([`Write::Audit`]), and the customer's sequence moved on
    /// ([`Write::AuditSequence`]).
    pub(super) fn audit(mut self, entry: &AuditEntry) -> Result<Self, StoreError> {
        self.audits.push(entry.clone());
        Ok(self)
    }

    /// Adds a conditional put named `write`.
    pub(super) fn put(
        mut self,
        write: Write,
        item: Item,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<Self, StoreError> {
        let action = self.store.put(item, condition, values)?;
        self.writes.push((write, action));
        Ok(self)
    }

    /// Adds an update named `write`, optionally conditional.
    pub(super) fn update(
        mut self,
        write: Write,
        key: Item,
        expression: &str,
        condition: Option<&str>,
        values: &[(&str, AttributeValue)],
    ) -> Result<Self, StoreError> {
        let action = self.store.update(key, expression, condition, values)?;
        self.writes.push((write, action));
        Ok(self)
    }

    /// Adds a conditional delete named `write`.
    pub(super) fn delete(
        mut self,
        write: Write,
        key: Item,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<Self, StoreError> {
        let action = self.store.delete(key, condition, values)?;
        self.writes.push((write, action));
        Ok(self)
    }

    /// Adds a condition on an item it does not write, named `write`.
    pub(super) fn check(
        mut self,
        write: Write,
        key: Item,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<Self, StoreError> {
        let (vals, nms) = used(&[condition], values);
        let check = ConditionCheck::builder()
            .table_name(&self.store.table)
            .set_key(Some(key))
            .condition_expression(condition)
            .set_expression_attribute_names(none_if_empty(nms))
            .set_expression_attribute_values(none_if_empty(vals))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        let action = TransactWriteItem::builder().condition_check(check).build();
        self.writes.push((write, action));
        Ok(self)
    }

    /// Runs the transaction (see [`Store::transact`]). With audit entries,
    /// it first reads each of their customers' sequence (one consistent
    /// GetItem each) and numbers the entries after it; when another writer
    /// numbered entries meanwhile (the only conditions that failed are the
    /// numbering's), it numbers them again after the sequence the failed
    /// condition found and retries, a bounded number of times.
    ///
    /// Within one process the transactions that audit the same customer take
    /// turns (an async lock per customer, held from numbering to commit):
    /// racing there would only make all but one of them number again. Across
    /// processes (Lambda instances) the condition on the sequence decides.
    pub(super) async fn commit(self) -> Result<(), TxError> {
        if self.audits.is_empty() {
            return self.store.transact(self.writes).await;
        }
        let mut customers: Vec<CustomerId> = self.audits.iter().map(|e| e.customer_id).collect();
        customers.sort_unstable();
        customers.dedup();
        let _turns = self.store.audit_writers.turns(&customers).await;
        let mut found = HashMap::new();
        for attempt in 0..NUMBERING_ATTEMPTS {
            let mut writes = self.writes.clone();
            writes.extend(self.numbered_audits(&mut found).await?);
            match self.store.transact(writes).await {
                Err(TxError::Cancelled(c)) if c.numbering_only() => {
                    crate::telemetry::metrics::transaction_conflicts(1, 1);
                    found = c.sequences_found();
                    tokio::time::sleep(renumbering_backoff(attempt)).await;
                }
                outcome => return outcome,
            }
        }
        Err(StoreError::Contention.into())
    }

    /// The puts of the audit entries, numbered after their customers'
    /// sequences (as `found` holds them, else as read now), and each
    /// sequence's move.
    async fn numbered_audits(
        &self,
        found: &mut HashMap<String, Item>,
    ) -> Result<Vec<(Write, TransactWriteItem)>, StoreError> {
        let mut customers: Vec<CustomerId> = Vec::new();
        for entry in &self.audits {
            if !customers.contains(&entry.customer_id) {
                customers.push(entry.customer_id);
            }
        }
        let mut writes = Vec::with_capacity(self.audits.len() + customers.len());
        for customer in customers {
            let read = match found.remove(&audit_pk(&customer)) {
                Some(item) => Some(item),
                None => self.store.get(audit_sequence_key(&customer)).await?,
            };
            let last = audit_sequence_of(read.as_ref()).ok_or_else(|| {
                StoreError::Corrupt(format!("audit sequence of customer {customer}"))
            })?;
            let mut next = last;
            for entry in self.audits.iter().filter(|e| e.customer_id == customer) {
                next += 1;
                let item = serde_dynamo::to_item(AuditItem::new(entry, next))?;
                writes.push((Write::Audit, self.store.put(item, NOT_EXISTS, &[])?));
            }
            let sequence = audit_sequence_item(&customer, next);
            let moved = match read {
                None => self.store.put(sequence, NOT_EXISTS, &[])?,
                Some(_) => {
                    let at = AttributeValue::N(last.to_string());
                    self.store.put(sequence, SEQUENCE_IS, &[(":seq", at)])?
                }
            };
            writes.push((Write::AuditSequence, moved));
        }
        Ok(writes)
    }
}

/// Outcome of a transaction that did not commit.
#[derive(Debug)]
pub enum TxError {
    /// A condition failed; decide 404/409 from the reasons.
    Cancelled(Cancelled),
    /// Anything else.
    Store(StoreError),
}

impl From<StoreError> for TxError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

/// A transaction's failure that its caller does not decide on: its store
/// error, or (a cancellation no caller expects: the table broke an
/// invariant) a corrupt table.
impl From<TxError> for StoreError {
    fn from(err: TxError) -> Self {
        match err {
            TxError::Store(e) => e,
            TxError::Cancelled(c) => {
                StoreError::Corrupt(format!("transaction cancelled unexpectedly: {c:?}"))
            }
        }
    }
}

/// Expression attribute names and values: only those the expressions use.
pub(super) fn used(
    exprs: &[&str],
    values: &[(&str, AttributeValue)],
) -> (Item, std::collections::HashMap<String, String>) {
    let mentions = |token: &str| {
        exprs.iter().any(|e| {
            e.match_indices(token).any(|(at, _)| {
                let next = e[at + token.len()..].chars().next();
                !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
        })
    };
    let vals = values
        .iter()
        .filter(|(k, _)| mentions(k))
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let nms = names().into_iter().filter(|(k, _)| mentions(k)).collect();
    (vals, nms)
}

fn none_if_empty<K, V>(
    map: std::collections::HashMap<K, V>,
) -> Option<std::collections::HashMap<K, V>> {
    (!map.is_empty()).then_some(map)
}

impl Store {
    /// A new, empty transaction.
    pub(super) fn tx(&self) -> Tx<'_> {
        Tx {
            store: self,
            writes: Vec::new(),
            audits: Vec::new(),
        }
    }

    /// A conditional put.
    fn put(
        &self,
        item: Item,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<TransactWriteItem, StoreError> {
        let (vals, nms) = used(&[condition], values);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(none_if_empty(nms))
            .set_expression_attribute_values(none_if_empty(vals))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// An update, optionally conditional.
    fn update(
        &self,
        key: Item,
        expression: &str,
        condition: Option<&str>,
        values: &[(&str, AttributeValue)],
    ) -> Result<TransactWriteItem, StoreError> {
        let (vals, nms) = used(&[expression, condition.unwrap_or_default()], values);
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(expression)
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names(none_if_empty(nms))
            .set_expression_attribute_values(none_if_empty(vals))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A conditional delete.
    fn delete(
        &self,
        key: Item,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<TransactWriteItem, StoreError> {
        let (vals, nms) = used(&[condition], values);
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression(condition)
            .set_expression_attribute_names(none_if_empty(nms))
            .set_expression_attribute_values(none_if_empty(vals))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Runs a transaction, retrying (bounded, with backoff) while it only conflicts.
    /// Logs (debug) how many actions and attempts it took and how it ended, and
    /// counts its conflicts and retries (`TransactionConflicts`,
    /// `TransactionRetries`) for the current function.
    async fn transact(&self, writes: Vec<(Write, TransactWriteItem)>) -> Result<(), TxError> {
        let (names, items): (Vec<Write>, Vec<TransactWriteItem>) = writes.into_iter().unzip();
        let span = tracing::debug_span!(
            "store",
            operation = "transact",
            actions = items.len(),
            attempts = Empty,
            conflicts = Empty,
            outcome = Empty,
        );
        let mut tally = Tally::default();
        let result = self
            .attempts(&names, items, &mut tally)
            .instrument(span.clone())
            .await;
        crate::telemetry::metrics::transaction_conflicts(tally.conflicts, tally.retries);
        let outcome = match &result {
            Ok(()) => "ok",
            Err(TxError::Cancelled(_)) => "cancelled",
            Err(TxError::Store(StoreError::Contention)) => "contention",
            Err(TxError::Store(_)) => "error",
        };
        span.record("attempts", tally.attempts);
        span.record("conflicts", tally.conflicts);
        span.record("outcome", outcome);
        span.in_scope(|| tracing::debug!("transaction done"));
        result
    }

    async fn attempts(
        &self,
        names: &[Write],
        items: Vec<TransactWriteItem>,
        tally: &mut Tally,
    ) -> Result<(), TxError> {
        for attempt in 0..ATTEMPTS {
            tally.attempts += 1;
            if attempt > 0 {
                tally.retries += 1;
            }
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match sent {
                Ok(_) => return Ok(()),
                Err(err) => aws_sdk_dynamodb::Error::from(err),
            };
            let cancelled = match err {
                aws_sdk_dynamodb::Error::TransactionCanceledException(e) => Cancelled(
                    e.cancellation_reasons
                        .unwrap_or_default()
                        .into_iter()
                        .zip(
                            names
                                .iter()
                                .copied()
                                .chain(std::iter::repeat(Write::Unnamed)),
                        )
                        .map(|(r, write)| Reason {
                            write,
                            code: r.code.unwrap_or_default(),
                            item: r.item,
                        })
                        .collect(),
                ),
                aws_sdk_dynamodb::Error::TransactionInProgressException(_) => {
                    Cancelled(vec![Reason {
                        write: Write::Unnamed,
                        code: "TransactionConflict".to_owned(),
                        item: None,
                    }])
                }
                other => return Err(StoreError::Dynamo(Box::new(other)).into()),
            };
            if !cancelled.conflicted() {
                return Err(TxError::Cancelled(cancelled));
            }
            tally.conflicts += 1;
            if attempt + 1 < ATTEMPTS {
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
        Err(StoreError::Contention.into())
    }
}

/// What a transaction's attempts came to.
#[derive(Debug, Default)]
struct Tally {
    attempts: u32,
    conflicts: u32,
    retries: u32,
}

/// Before numbering again: full jitter up to 10 ms, 20 ms, ... capped at
/// 640 ms (as [`backoff`]), so that writers of several processes racing for
/// one customer's numbers spread out instead of retrying in step.
fn renumbering_backoff(attempt: u32) -> Duration {
    let cap = 10u64 << attempt.min(6);
    let jitter = getrandom::u64().unwrap_or(cap) % (cap + 1);
    Duration::from_millis(jitter.max(1))
}

/// Exponential backoff with full jitter: up to 10 ms, 20 ms, ... capped at 640 ms.
fn backoff(attempt: u32) -> Duration {
    let cap = 10u64 << attempt.min(6);
    let jitter = getrandom::u64().unwrap_or(cap) % (cap + 1);
    Duration::from_millis(jitter.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_names_and_values_an_expression_mentions() {
        // GIVEN a condition that mentions #pk, #state and :active but not :activeish
        let values = [
            (":active", AttributeValue::S("a".into())),
            (":activeish", AttributeValue::S("b".into())),
        ];
        // WHEN filtering
        let (vals, nms) = used(&["attribute_exists(#pk) AND #state = :active"], &values);
        // THEN exactly those survive
        assert_eq!(vals.keys().collect::<Vec<_>>(), vec![":active"]);
        let mut keys: Vec<_> = nms.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, vec!["#pk", "#state"]);
    }

    #[test]
    fn backoff_stays_within_its_cap() {
        for attempt in 0..20 {
            assert!(backoff(attempt) <= Duration::from_millis(640));
            assert!(renumbering_backoff(attempt) <= Duration::from_millis(640));
        }
    }
}
