//! Loading many new customers at once into a table that serves no requests yet
//! (a first import, benchmarks): batched writes, no transactions.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};

use crate::domain::{NewCustomer, time};

use super::error::StoreError;
use super::handle::Store;
use super::observe::observe;
use super::table::{
    CustomerItem, EntryItem, Item, Listing, TALLY_KIND, n, names, s, tally_load, tally_shard_key,
};
use super::tally::compact_day;

/// Items per BatchWriteItem: DynamoDB's limit.
const BATCH: usize = 25;
/// Attempts at a batch whose items DynamoDB leaves unprocessed.
const ATTEMPTS: u32 = 8;

impl Store {
    /// Writes `customers` (with no members) and their listing entries, and
    /// counts them in their listings with one update of a shard per listing
    /// (every day's entries and changes); [`Store::fold_listing`] compacts
    /// those as it compacts any. Not atomic and not
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
                    let at = compact_day(&time::to_seconds(&customer.created_at));
                    for listing in Listing::of(&customer) {
                        items.push(serde_dynamo::to_item(EntryItem::new(&listing, &customer))?);
                        *counts.entry((listing.index_pk(), at.clone())).or_default() += 1;
                    }
                }
                let mut written = items.len() as u64;
                for batch in items.chunks(BATCH) {
                    self.write_batch(batch.to_vec()).await?;
                }
                let mut by_listing: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
                for ((pk, day), count) in counts {
                    by_listing.entry(pk).or_default().push((day, count));
                }
                for (pk, days) in by_listing {
                    self.count_loaded(&pk, &days).await?;
                    written += 1;
                }
                Ok(written)
            },
        )
        .await
    }

    /// Adds loaded entries per day (`YYYYMMDD`, count) to shard 0 of a
    /// listing's day counts, as that many writers would one at a time.
    async fn count_loaded(&self, pk: &str, days: &[(String, i64)]) -> Result<(), StoreError> {
        let total: i64 = days.iter().map(|(_, c)| c).sum();
        let names_of_days: Vec<&str> = days.iter().map(|(day, _)| day.as_str()).collect();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(tally_shard_key(pk, 0)))
            .expression_attribute_names("#count", &names()["#count"])
            .expression_attribute_names("#type", &names()["#type"])
            .expression_attribute_values(":total", n(total))
            .expression_attribute_values(":changes", n(total.abs()))
            .expression_attribute_values(":tally", s(TALLY_KIND))
            .expression_attribute_values(":now", s(time::to_millis(&crate::domain::now())));
        for (i, (_, count)) in days.iter().enumerate() {
            update = update
                .expression_attribute_values(format!(":c{i}"), n(*count))
                .expression_attribute_values(format!(":v{i}"), n(count.abs()));
        }
        update
            .update_expression(tally_load(&names_of_days))
            .send()
            .await
            .map_err(StoreError::dynamo)?;
        Ok(())
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
