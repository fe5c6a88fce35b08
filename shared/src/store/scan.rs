//! Reading every active customer's full record in pages (reconciliation,
//! audits): the entries of the listing of every customer, then their records
//! with BatchGetItem.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::KeysAndAttributes;
use futures_util::{StreamExt, TryStreamExt, stream};

use crate::domain::{Customer, CustomerId, CustomerState};

use super::customers::decode_customer;
use super::error::StoreError;
use super::handle::Store;
use super::observe::observe;
use super::table::{
    EntryItem, IN_PARTITION, IN_PARTITION_AFTER, Item, Listing, PK, SK, customer_key, s,
};

/// Keys per BatchGetItem: DynamoDB's limit.
const BATCH: usize = 100;
/// BatchGetItem calls in flight per page.
const BATCHES_IN_FLIGHT: usize = 4;
/// Attempts at a batch whose keys DynamoDB leaves unprocessed.
const ATTEMPTS: u32 = 8;

impl Store {
    /// Up to `limit` active customers (full records, Stripe ids included) in
    /// the order of the listing of every customer (`createdAt`, then id),
    /// after the entry `after` (the cursor a previous page returned); with the
    /// cursor of this page's last entry when more may follow. One Query of the
    /// listing's entries, then the records 100 per BatchGetItem (eventually
    /// consistent); a customer deleted meanwhile is left out.
    pub async fn scan_customers(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<Customer>, Option<String>), StoreError> {
        let span = store_span!("scan_customers", after = ?after, limit);
        observe(span, async {
            let pk = Listing::all().entries_pk();
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(pk))
                .limit(limit.clamp(1, 1000) as i32);
            query = match after {
                Some(after) => query
                    .key_condition_expression(IN_PARTITION_AFTER)
                    .expression_attribute_names("#sk", SK)
                    .expression_attribute_values(":after", s(after)),
                None => query.key_condition_expression(IN_PARTITION),
            };
            let out = query.send().await.map_err(StoreError::dynamo)?;
            let entries = out.items.unwrap_or_default();
            let next = match out.last_evaluated_key {
                Some(key) if !key.is_empty() => key
                    .get(SK)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| {
                        StoreError::Corrupt("listing entry without a sort key".into())
                    })?,
                _ => None,
            };
            let ids = entries
                .into_iter()
                .map(|item| {
                    Ok(serde_dynamo::from_item::<_, EntryItem>(item)?
                        .into_customer()?
                        .id)
                })
                .collect::<Result<Vec<CustomerId>, StoreError>>()?;
            let chunks: Vec<Vec<CustomerId>> = ids.chunks(BATCH).map(<[_]>::to_vec).collect();
            let mut found: HashMap<CustomerId, Customer> = stream::iter(chunks)
                .map(|chunk| async move { self.get_records(&chunk).await })
                .buffered(BATCHES_IN_FLIGHT)
                .try_collect::<Vec<_>>()
                .await?
                .into_iter()
                .flatten()
                .filter(|c| c.state == CustomerState::Active)
                .map(|c| (c.id, c))
                .collect();
            let customers = ids.iter().filter_map(|id| found.remove(id)).collect();
            Ok((customers, next))
        })
        .await
    }

    /// The records of up to [`BATCH`] customers (those that exist), again for
    /// any keys left unprocessed.
    async fn get_records(&self, ids: &[CustomerId]) -> Result<Vec<Customer>, StoreError> {
        let mut keys: Vec<Item> = ids.iter().map(customer_key).collect();
        let mut records = Vec::with_capacity(ids.len());
        for attempt in 0..ATTEMPTS {
            let request = KeysAndAttributes::builder().set_keys(Some(keys)).build()?;
            let mut out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(StoreError::dynamo)?;
            let items = out
                .responses
                .as_mut()
                .and_then(|r| r.remove(&self.table))
                .unwrap_or_default();
            for item in items {
                records.push(decode_customer(item)?);
            }
            keys = out
                .unprocessed_keys
                .and_then(|mut left| left.remove(&self.table))
                .map(|k| k.keys)
                .unwrap_or_default();
            if keys.is_empty() {
                return Ok(records);
            }
            tokio::time::sleep(Duration::from_millis(20 << attempt.min(5))).await;
        }
        Err(StoreError::Contention)
    }
}
