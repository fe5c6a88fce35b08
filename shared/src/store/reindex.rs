//! Re-projecting a table into the listings: an entry and a count in every
//! listing for each active customer that has none, safe while the table serves
//! requests and resumable from any page of its scan.

use std::sync::atomic::Ordering;

use crate::domain::{Customer, CustomerState, now};

use super::customers::decode_customer;
use super::error::StoreError;
use super::handle::Store;
use super::observe::observe;
use super::retry::{Attempt, optimistic};
use super::table::{
    CUSTOMER_ACTIVE, CUSTOMER_KIND, EntryItem, IS_CUSTOMER, Item, LEGACY_COUNTERS, Listing,
    NOT_EXISTS, REPROJECT, TYPE, customer_key, n, reindexed_item, reindexed_key, s,
};
use super::tally::count;
use super::tx::{TxError, Write};

/// Customer records read per page of the scan.
const PAGE: i32 = 100;

/// What one page of a reindex did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reindexed {
    /// Items the scan read.
    pub scanned: u64,
    /// Customers given their entries.
    pub added: u64,
    /// Active customers already in their listings.
    pub present: u64,
}

impl Store {
    /// Reindexes one page of the table's scan from `start` (`None`: the
    /// beginning); returns what it did and where the next page starts (`None`
    /// when the scan is done). Pages may be repeated: a customer already in
    /// its listings is left as it is.
    pub async fn reindex_page(
        &self,
        start: Option<Item>,
    ) -> Result<(Reindexed, Option<Item>), StoreError> {
        observe(store_span!("reindex_page"), async {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(IS_CUSTOMER)
                .expression_attribute_names("#type", TYPE)
                .expression_attribute_values(":customer", s(CUSTOMER_KIND))
                .limit(PAGE)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::dynamo)?;
            let mut done = Reindexed {
                scanned: out.scanned_count.max(0) as u64,
                ..Reindexed::default()
            };
            for item in out.items.unwrap_or_default() {
                let customer = decode_customer(item)?;
                if customer.state != CustomerState::Active {
                    continue;
                }
                if self.reproject(customer).await? {
                    done.added += 1;
                } else {
                    done.present += 1;
                }
            }
            let next = out.last_evaluated_key.filter(|k| !k.is_empty());
            Ok((done, next))
        })
        .await
    }

    /// Gives an active customer its entry and count in every listing, unless
    /// it has them: `Ok(false)` then, or when it is no longer active.
    async fn reproject(&self, customer: Customer) -> Result<bool, StoreError> {
        optimistic(customer, |customer| async move {
            let mut tx = self.tx().update(
                Write::Customer,
                customer_key(&customer.id),
                REPROJECT,
                Some(&format!("{CUSTOMER_ACTIVE} AND #members = :count")),
                &[
                    (":active", s("active")),
                    (":count", n(customer.member_count as i64)),
                ],
            )?;
            for listing in Listing::of(&customer) {
                let entry = serde_dynamo::to_item(EntryItem::new(&listing, &customer))?;
                tx = tx.put(Write::Entry, entry, NOT_EXISTS, &[])?;
                tx = count(tx, &listing, &customer, 1)?;
            }
            match tx.commit().await {
                Ok(()) => Ok(Attempt::Done(true)),
                Err(TxError::Cancelled(c)) if c.failed(Write::Entry) => Ok(Attempt::Done(false)),
                // Changed since it was read (members, or deletion began): read again.
                Err(TxError::Cancelled(c)) if c.failed(Write::Customer) => {
                    match self.find_customer(&customer.id).await? {
                        Some(c) if c.state == CustomerState::Active => Ok(Attempt::Again(c)),
                        _ => Ok(Attempt::Done(false)),
                    }
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Marks the table reindexed: every active customer has its listing
    /// entries. `billing-dev reindex` does once its scan is done, and
    /// [`Store::create_table`] for a new table; from then on the writes no
    /// longer allow for a customer without its entries ([`Store::is_reindexed`]).
    pub async fn mark_reindexed(&self) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(reindexed_item(&now())))
            .send()
            .await
            .map_err(StoreError::dynamo)?;
        Ok(())
    }

    /// Whether the table is marked reindexed ([`Store::mark_reindexed`]): one
    /// consistent read until this store (or a clone) has seen it marked, none
    /// after.
    pub async fn is_reindexed(&self) -> Result<bool, StoreError> {
        if self.reindexed.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let marked = self.get(reindexed_key()).await?.is_some();
        if marked {
            self.reindexed.store(true, Ordering::Relaxed);
        }
        Ok(marked)
    }

    /// Deletes the counters of the listing indexes the listings replaced;
    /// returns how many there were.
    pub async fn drop_legacy_counters(&self) -> Result<u64, StoreError> {
        let counters = self.query_partition_all(LEGACY_COUNTERS).await?;
        for item in &counters {
            let key = [super::table::PK, super::table::SK]
                .into_iter()
                .filter_map(|k| item.get(k).map(|v| (k.to_owned(), v.clone())))
                .collect();
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key))
                .send()
                .await
                .map_err(StoreError::dynamo)?;
        }
        Ok(counters.len() as u64)
    }
}
