//! The audit trail: an entry written in the transaction of the change it
//! records, and the newest-first pages of a customer's entries.

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::Select;

use crate::domain::CustomerId;
use crate::domain::audit::AuditEntry;

use super::table::{AuditItem, IN_PARTITION, Item, NOT_EXISTS, PK, audit_pk, key, s};
use super::tx::Tx;
use super::{Page, PageAt, Store, StoreError, observe};

impl Tx<'_> {
    /// Adds the audit entry of the change this transaction makes (named `audit`).
    pub(super) fn audit(self, entry: &AuditEntry) -> Result<Self, StoreError> {
        let item = serde_dynamo::to_item(AuditItem::new(entry))?;
        self.put("audit", item, NOT_EXISTS, &[])
    }
}

impl Store {
    /// One page of a customer's audit entries, newest first, and their total;
    /// strongly consistent. Entries outlive the customer (for
    /// [`super::table::AUDIT_RETENTION_DAYS`]); a customer without any has
    /// an empty page.
    ///
    /// The total is a `COUNT` query over the partition, run beside the page's
    /// own query; a numbered page reads the entries before it.
    pub async fn list_audit(
        &self,
        customer: &CustomerId,
        at: PageAt,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let span = store_span!("list_audit", customer = %customer, at = ?at);
        observe(span, async {
            let pk = audit_pk(customer);
            let (skip, take, start) = match at {
                PageAt::Number(p) => (p.offset(), p.limit as usize, None),
                PageAt::After { after, limit } => {
                    (0, limit as usize, Some(key(pk.clone(), &after)))
                }
            };
            let (total, items) = tokio::join!(
                self.count_partition(&pk),
                self.newest_first(&pk, start, skip, take + 1)
            );
            let (total, mut items) = (total?, items?);
            let more = items.len() > take;
            items.truncate(take);
            let entries = items
                .into_iter()
                .map(serde_dynamo::from_item::<_, AuditItem>)
                .collect::<Result<Vec<_>, _>>()?;
            let more_after = match (more, entries.last()) {
                (true, Some(last)) => Some(last.sort_key().to_owned()),
                _ => None,
            };
            Ok(Page {
                items: entries
                    .into_iter()
                    .map(AuditItem::into_entry)
                    .collect::<Result<_, _>>()?,
                total,
                more_after,
            })
        })
        .await
    }

    /// A strongly consistent query of one partition.
    fn in_partition(&self, pk: &str) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression(IN_PARTITION)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(true)
    }

    /// How many items a partition holds.
    async fn count_partition(&self, pk: &str) -> Result<u64, StoreError> {
        let mut total = 0u64;
        let mut start = None;
        loop {
            let out = self
                .in_partition(pk)
                .select(Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(StoreError::dynamo)?;
            total += u64::try_from(out.count).unwrap_or_default();
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(total),
            }
        }
    }

    /// Up to `take` items of a partition from its newest, after `start` (a
    /// key) and past the first `skip`.
    async fn newest_first(
        &self,
        pk: &str,
        mut start: Option<Item>,
        mut skip: u64,
        take: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::with_capacity(take);
        loop {
            let wanted = skip + (take - items.len()) as u64;
            let out = self
                .in_partition(pk)
                .scan_index_forward(false)
                .limit(i32::try_from(wanted).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(StoreError::dynamo)?;
            for item in out.items.unwrap_or_default() {
                if skip > 0 {
                    skip -= 1;
                } else if items.len() < take {
                    items.push(item);
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && items.len() < take => start = Some(k),
                _ => return Ok(items),
            }
        }
    }
}
