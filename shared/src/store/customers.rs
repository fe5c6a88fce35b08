//! Customer records, their listing counters and the deleting state.

use crate::domain::audit::{Action, AuditEntry, Origin};
use crate::domain::{Customer, CustomerId, CustomerState, NewCustomer, Timestamp, now, time};

use super::error::StoreError;
use super::handle::Store;
use super::idempotency::Answering;
use super::listing_reader::Place;
use super::observe::observe;
use super::page::Page;
use super::page::PageAt;
use super::retry::{Attempt, optimistic};
use super::table::{
    CUSTOMER_ACTIVE, CUSTOMER_DELETING, CustomerItem, DELETING_INDEX, DELETING_PARTITION,
    DELETING_SINCE, EXISTS, EntryItem, IN_PARTITION, Item, Listing, MARK_DELETING, SK,
    STRIPE_FREE_OR_OF, TOMBSTONE_FREE_OR_KEPT, customer_key, customer_tombstone_key, deleting_sort,
    entry_key, n, s, stripe_customer_key, tombstone_item, tombstone_values,
};
use super::tally::{Tally, count};
use super::tx::{TxError, Write};

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

    /// One page of active customers in a listing, by `createdAt` then `id`, with
    /// the listing's total. Page 1 and the page after a cursor: the listing's
    /// directory and its entries, read at once. Page *n*: the directory (its
    /// day counts), then (deep in a day) that day's fence, then the entries
    /// from the fence (see `store::tally`).
    pub async fn list_customers(
        &self,
        listing: &Listing,
        at: PageAt,
    ) -> Result<Page<Customer>, StoreError> {
        let span = store_span!("list_customers", listing = %listing.key(), at = ?at);
        observe(span, async {
            let r = Place {
                dir_pk: listing.index_pk(),
                index: None,
                entries_pk: listing.entries_pk(),
                sort_attr: SK,
                sort_prefix: "",
                consistent: false,
            };
            let (dir, entries) = match &at {
                PageAt::Number(p) if !at.reads_from_a_key() => {
                    let dir = Tally::from_items(&self.read_directory(&r.dir_pk).await?)?;
                    let entries = self.tally_page(&r, &dir, p.offset(), p.limit).await?;
                    (dir, entries)
                }
                _ => {
                    let (dir, entries) = tokio::join!(
                        self.read_directory(&r.dir_pk),
                        self.read_entries(&r, None, &at)
                    );
                    (Tally::from_items(&dir?)?, entries?)
                }
            };
            let items = entries
                .items
                .into_iter()
                .map(|i| Ok(serde_dynamo::from_item::<_, EntryItem>(i)?.into_customer()?))
                .collect::<Result<_, StoreError>>()?;
            Ok(Page {
                items,
                total: dir.total(),
                more_after: entries.more_after,
            })
        })
        .await
    }

    /// Creates an active customer with no members and counts it in its listings
    /// (see [`Store::create_customer_with_owner`]).
    pub async fn create_customer(
        &self,
        customer: &NewCustomer,
        origin: &Origin,
    ) -> Result<(), StoreError> {
        self.create_customer_with_owner(customer, None, None, origin)
            .await
            .map(drop)
    }

    /// Puts an active customer into the deleting state, which hides it from every
    /// read and closes it to new members; returns it. Resumes (returns it as is)
    /// when it is already deleting.
    ///
    /// The customer's entries leave every listing, and its record enters GSI1's
    /// `DELETING` partition, sorted by `deletingSince` (see
    /// [`Store::deleting_customers`]). The same transaction writes the
    /// `customer.deleted` audit entry by `origin`; resuming writes nothing.
    pub async fn begin_deletion(
        &self,
        id: &CustomerId,
        origin: &Origin,
    ) -> Result<Customer, StoreError> {
        self.begin_deletion_answered(id, origin, None).await
    }

    /// [`Store::begin_deletion`], committing a claimed request's answer in
    /// the transaction that marks the customer deleting (resuming commits none).
    pub async fn begin_deletion_answered(
        &self,
        id: &CustomerId,
        origin: &Origin,
        answering: Option<&Answering<'_>>,
    ) -> Result<Customer, StoreError> {
        observe(store_span!("begin_deletion", customer = %id), async {
            optimistic(true, |listed| async move {
                let customer = self
                    .find_customer(id)
                    .await?
                    .ok_or(StoreError::CustomerNotFound)?;
                if customer.state == CustomerState::Deleting {
                    return Ok(Attempt::Done(customer));
                }
                let since = now();
                let stamp = time::to_millis(&since);
                let tx = self.tx().update(
                    Write::Customer,
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
                let mut tx = tx
                    .audit(
                        &AuditEntry::new(Action::CustomerDeleted, origin, *id).changed(
                            "state",
                            Some("active"),
                            Some("deleting"),
                        ),
                    )?
                    .answer(answering, &())?;
                let listings = match listed {
                    true => Listing::of(&customer),
                    false => Vec::new(),
                };
                for listing in listings {
                    let entry = entry_key(&listing, &customer.created_at, id);
                    tx = tx.delete(Write::Entry, entry, EXISTS, &[])?;
                    tx = count(tx, &listing, &customer, -1)?;
                }
                match tx.commit().await {
                    Ok(()) => {
                        Answering::committed(answering);
                        Ok(Attempt::Done(Customer {
                            state: CustomerState::Deleting,
                            deleting_since: Some(since),
                            ..customer
                        }))
                    }
                    Err(TxError::Cancelled(c)) if c.failed(Write::Idempotency) => {
                        Err(StoreError::IdempotencyClaimLost)
                    }
                    // Changed under us (deleted, or marked by a concurrent call): look again.
                    Err(TxError::Cancelled(c)) if c.failed(Write::Customer) => {
                        Ok(Attempt::Again(listed))
                    }
                    // Not in its listings (a table not reindexed yet): without them.
                    Err(TxError::Cancelled(c)) if c.failed(Write::Entry) => {
                        Ok(Attempt::Again(self.is_listed(&customer).await?))
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .await
        })
        .await
    }

    /// Whether an active customer has its entries: yes once the table is
    /// marked reindexed ([`Store::is_reindexed`]; a write whose entry failed
    /// then reads again, as for a customer that moved between listings), else
    /// its entry in the listing of every customer is read. Asked only when an
    /// entry's condition failed: the writes of a table not reindexed yet go
    /// without the entries its customers do not have.
    pub(super) async fn is_listed(&self, customer: &Customer) -> Result<bool, StoreError> {
        if self.is_reindexed().await? {
            return Ok(true);
        }
        let entry = entry_key(&Listing::all(), &customer.created_at, &customer.id);
        Ok(self.get(entry).await?.is_some())
    }

    /// Deletes the record of a deleting customer whose members are all gone,
    /// with the lookup of its Stripe customer, and puts its tombstone (its id
    /// remembered for `table::TOMBSTONE_DAYS`) in the same transaction.
    /// `Ok(false)` when the record was already gone.
    pub async fn delete_customer_record(&self, id: &CustomerId) -> Result<bool, StoreError> {
        let span = store_span!("delete_customer_record", customer = %id);
        observe(span, async {
            let Some(record) = self.find_customer(id).await? else {
                return Ok(false);
            };
            let condition = format!("{CUSTOMER_DELETING} AND #members = :zero");
            let mut tx = self.tx().delete(
                Write::Customer,
                customer_key(id),
                &condition,
                &[(":deleting", s("deleting")), (":zero", n(0))],
            )?;
            let tombstone = tombstone_item(customer_tombstone_key(id), &now());
            let values = tombstone_values(&now());
            tx = tx.put(Write::Tombstone, tombstone, TOMBSTONE_FREE_OR_KEPT, &values)?;
            if let Some(stripe_id) = &record.stripe_customer_id {
                tx = tx.delete(
                    Write::Lookup,
                    stripe_customer_key(stripe_id),
                    STRIPE_FREE_OR_OF,
                    &[(":customer", s(id.to_string()))],
                )?;
            }
            match tx.commit().await {
                Ok(()) => Ok(true),
                Err(TxError::Cancelled(c))
                    if c.failed(Write::Customer) && c.old(Write::Customer).is_none() =>
                {
                    Ok(false)
                }
                Err(e) => Err(e.into()),
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
