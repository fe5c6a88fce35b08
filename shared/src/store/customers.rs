//! Customer records, their listing counters and the deleting state.

use crate::domain::{
    Customer, CustomerId, CustomerState, NewCustomer, PageRequest, Timestamp, now, time,
};

use super::table::{
    CUSTOMER_ACTIVE, CUSTOMER_DELETING, CustomerItem, DELETING_INDEX, DELETING_PARTITION,
    DELETING_SINCE, IN_PARTITION, Item, Listing, MARK_DELETING, NOT_EXISTS, counter_update,
    counter_value, counter_values, customer_key, deleting_sort, is_counter, n, s,
};
use super::tx::{Tx, TxError};
use super::{Page, Store, StoreError, Window, observe};

/// The customers in the deleting state: how many, and since when the oldest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeletingCustomers {
    /// How many customers are being deleted.
    pub count: u64,
    /// When the oldest deletion began; `None` when there is none.
    pub oldest_since: Option<Timestamp>,
}

impl Store {
    /// The customer, visible or being deleted; `None` when there is no record.
    pub async fn find_customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError> {
        observe(store_span!("find_customer", customer = %id), async {
            match self.get(customer_key(id)).await? {
                Some(item) => Ok(Some(decode_customer(item)?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// An active customer; one consistent read.
    pub async fn get_customer(&self, id: &CustomerId) -> Result<Customer, StoreError> {
        observe(store_span!("get_customer", customer = %id), async {
            match self.find_customer(id).await? {
                Some(c) if c.state == CustomerState::Active => Ok(c),
                _ => Err(StoreError::CustomerNotFound),
            }
        })
        .await
    }

    /// One page of active customers in a listing, by `createdAt` then `id`, with the
    /// listing's total: a single query for page 1 (the total sorts first).
    pub async fn list_customers(
        &self,
        listing: &Listing,
        page: PageRequest,
    ) -> Result<Page<Customer>, StoreError> {
        let span = store_span!(
            "list_customers",
            index = listing.index(),
            page = page.page,
            limit = page.limit
        );
        observe(span, async {
            let window = Window {
                index: listing.index(),
                partition_attr: listing.index_pk(),
                partition: listing.partition(),
                consistent: false,
                skip: page.offset(),
                take: page.limit,
            };
            let (header, items) = self
                .read_window(window, |i| is_counter(i).then(|| counter_value(i)))
                .await?;
            let items = items
                .into_iter()
                .map(decode_customer)
                .collect::<Result<_, _>>()?;
            Ok(Page {
                items,
                total: header.as_ref().map_or(0, counter_value),
            })
        })
        .await
    }

    /// Creates an active customer with no members and counts it in its listings.
    pub async fn create_customer(&self, customer: &NewCustomer) -> Result<(), StoreError> {
        let span = store_span!("create_customer", customer = %customer.id);
        observe(span, async {
            let item = serde_dynamo::to_item(CustomerItem::new(customer))?;
            let mut tx = self.tx().put("customer", item, NOT_EXISTS, &[])?;
            for listing in Listing::of(&customer.tier_name, customer.subscription_status) {
                tx = count(tx, &listing, 1)?;
            }
            match tx.commit().await {
                Ok(()) => Ok(()),
                Err(TxError::Cancelled(c)) if c.failed("customer") => {
                    Err(StoreError::CustomerExists)
                }
                Err(TxError::Cancelled(c)) => Err(unexpected(&c)),
                Err(TxError::Store(e)) => Err(e),
            }
        })
        .await
    }

    /// Puts an active customer into the deleting state, which hides it from every
    /// read and closes it to new members; returns it. Resumes (returns it as is)
    /// when it is already deleting.
    ///
    /// The record leaves every listing index and enters GSI1's `DELETING`
    /// partition, sorted by `deletingSince` (see [`Store::deleting_customers`]).
    pub async fn begin_deletion(&self, id: &CustomerId) -> Result<Customer, StoreError> {
        observe(store_span!("begin_deletion", customer = %id), async {
            for _ in 0..3 {
                let customer = self
                    .find_customer(id)
                    .await?
                    .ok_or(StoreError::CustomerNotFound)?;
                if customer.state == CustomerState::Deleting {
                    return Ok(customer);
                }
                let since = now();
                let stamp = time::to_millis(&since);
                let mut tx = self.tx().update(
                    "customer",
                    customer_key(id),
                    MARK_DELETING,
                    Some(CUSTOMER_ACTIVE),
                    &[
                        (":active", s("active")),
                        (":deleting", s("deleting")),
                        (":deletingpk", s(DELETING_PARTITION)),
                        (":deletingsk", s(deleting_sort(&stamp, id))),
                        (":now", s(stamp)),
                    ],
                )?;
                for listing in Listing::of(&customer.tier_name, customer.subscription_status) {
                    tx = count(tx, &listing, -1)?;
                }
                match tx.commit().await {
                    Ok(()) => {
                        return Ok(Customer {
                            state: CustomerState::Deleting,
                            deleting_since: Some(since),
                            ..customer
                        });
                    }
                    // Changed under us (deleted, or marked by a concurrent call): look again.
                    Err(TxError::Cancelled(c)) if c.failed("customer") => continue,
                    Err(TxError::Cancelled(c)) => return Err(unexpected(&c)),
                    Err(TxError::Store(e)) => return Err(e),
                }
            }
            Err(StoreError::Contention)
        })
        .await
    }

    /// Deletes the record of a deleting customer whose members are all gone.
    /// `Ok(false)` when the record was already gone.
    pub async fn delete_customer_record(&self, id: &CustomerId) -> Result<bool, StoreError> {
        let span = store_span!("delete_customer_record", customer = %id);
        observe(span, async {
            let condition = format!("{CUSTOMER_DELETING} AND #members = :zero");
            let tx = self.tx().delete(
                "customer",
                customer_key(id),
                &condition,
                &[(":deleting", s("deleting")), (":zero", n(0))],
            )?;
            match tx.commit().await {
                Ok(()) => Ok(true),
                Err(TxError::Cancelled(c))
                    if c.failed("customer") && c.old("customer").is_none() =>
                {
                    Ok(false)
                }
                Err(TxError::Cancelled(c)) => Err(unexpected(&c)),
                Err(TxError::Store(e)) => Err(e),
            }
        })
        .await
    }

    /// How many customers are being deleted and when the oldest deletion began:
    /// one Query (every page) of GSI1's `DELETING` partition, oldest first,
    /// reading only `deletingSince`. Eventually consistent, as GSIs are.
    pub async fn deleting_customers(&self) -> Result<DeletingCustomers, StoreError> {
        observe(store_span!("deleting_customers"), async {
            let (index, partition_attr) = DELETING_INDEX;
            let mut found = DeletingCustomers::default();
            let mut start: Option<Item> = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(index)
                    .key_condition_expression(IN_PARTITION)
                    .expression_attribute_names("#pk", partition_attr)
                    .expression_attribute_names("#since", DELETING_SINCE)
                    .expression_attribute_values(":pk", s(DELETING_PARTITION))
                    .projection_expression("#since")
                    .scan_index_forward(true)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(StoreError::dynamo)?;
                let items = out.items.unwrap_or_default();
                if found.oldest_since.is_none()
                    && let Some(first) = items.first()
                {
                    found.oldest_since = Some(deleting_since(first)?);
                }
                found.count += items.len() as u64;
                match out.last_evaluated_key {
                    Some(key) if !key.is_empty() => start = Some(key),
                    _ => return Ok(found),
                }
            }
        })
        .await
    }
}

/// Adds `delta` to a listing's counter in `tx`.
fn count<'s>(tx: Tx<'s>, listing: &Listing, delta: i64) -> Result<Tx<'s>, StoreError> {
    tx.update(
        "counter",
        listing.counter_key(),
        &counter_update(listing.index_pk()),
        None,
        &counter_values(listing, delta),
    )
}

/// The `deletingSince` of an entry of the `DELETING` partition.
fn deleting_since(item: &Item) -> Result<Timestamp, StoreError> {
    let raw = item
        .get(DELETING_SINCE)
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Corrupt("deleting customer without deletingSince".into()))?;
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| StoreError::Corrupt(format!("deletingSince {raw:?}")))
}

pub(super) fn decode_customer(item: Item) -> Result<Customer, StoreError> {
    let item: CustomerItem = serde_dynamo::from_item(item)?;
    Ok(item.into_customer()?)
}

/// A cancellation no caller expects: the table broke an invariant.
pub(super) fn unexpected(c: &super::tx::Cancelled) -> StoreError {
    StoreError::Corrupt(format!("transaction cancelled unexpectedly: {c:?}"))
}
