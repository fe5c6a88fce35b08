//! Loading many new customers at once into a table that serves no requests yet
//! (a first import, benchmarks): batched writes, no transactions.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};

use crate::domain::{NewCustomer, time};

use super::rank::slot;
use super::table::{CustomerItem, EntryItem, Item, Listing, dir_delta_item};
use super::{Store, StoreError, observe};

/// Items per BatchWriteItem: DynamoDB's limit.
const BATCH: usize = 25;
/// Attempts at a batch whose items DynamoDB leaves unprocessed.
const ATTEMPTS: u32 = 8;

impl Store {
    /// Writes `customers` (with no members) and their listing entries, and
    /// counts them in their listings with one delta per listing and minute;
    /// [`Store::fold_index`] folds those as it folds any. Not atomic and not
    /// checked: only for customers that do not exist yet, in a table no request
    /// writes meanwhile. Returns the items written.
    pub async fn load_customers(&self, customers: &[NewCustomer]) -> Result<u64, StoreError> {
        observe(
            store_span!("load_customers", customers = customers.len()),
            async {
                let mut items = Vec::with_capacity(customers.len() * 5);
                let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
                for new in customers {
                    let record = CustomerItem::new(new);
                    items.push(serde_dynamo::to_item(&record)?);
                    let customer = record.into_customer()?;
                    let at = slot("", &time::to_seconds(&customer.created_at));
                    for listing in Listing::of(&customer.tier_name, customer.subscription_status) {
                        items.push(serde_dynamo::to_item(EntryItem::new(&listing, &customer))?);
                        *counts.entry((listing.index_pk(), at.clone())).or_default() += 1;
                    }
                }
                items.extend(
                    counts
                        .into_iter()
                        .map(|((pk, at), count)| dir_delta_item(&pk, &at, count)),
                );
                let written = items.len() as u64;
                for batch in items.chunks(BATCH) {
                    self.write_batch(batch.to_vec()).await?;
                }
                Ok(written)
            },
        )
        .await
    }

    /// Puts `items` with BatchWriteItem, again for any left unprocessed.
    async fn write_batch(&self, items: Vec<Item>) -> Result<(), StoreError> {
        let mut requests: Vec<WriteRequest> = items
            .into_iter()
            .map(|item| {
                let put = PutRequest::builder().set_item(Some(item)).build()?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<_, StoreError>>()?;
        for attempt in 0..ATTEMPTS {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(StoreError::dynamo)?;
            requests = out
                .unprocessed_items
                .and_then(|mut left| left.remove(&self.table))
                .unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20 << attempt.min(5))).await;
        }
        Err(StoreError::Contention)
    }
}
