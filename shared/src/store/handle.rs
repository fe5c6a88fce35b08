//! The handle on the table, and the reads every part of the store shares.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use super::audit_writers::AuditWriters;
use super::error::StoreError;
use super::table::{IN_PARTITION, IN_PARTITION_WITH_PREFIX, Item, PK, SK, names, s};

/// Handle on the table; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pub(super) client: Client,
    pub(super) table: String,
    /// This process's writers of each customer's audit trail, one at a time
    /// (see [`super::tx::Tx::commit`]); clones share it.
    pub(super) audit_writers: AuditWriters,
    /// Whether the table was seen marked reindexed (once it is, it stays
    /// so); clones share it.
    pub(super) reindexed: Arc<AtomicBool>,
}

impl Store {
    /// A store on `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            audit_writers: AuditWriters::default(),
            reindexed: Arc::default(),
        }
    }

    /// The table name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The DynamoDB client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates the table with its indexes, stream and time to live (local
    /// stack and tests).
    pub async fn create_table(&self) -> Result<(), StoreError> {
        use super::table::TableDefinition as T;
        self.client
            .create_table()
            .table_name(&self.table)
            .set_attribute_definitions(Some(T::attributes()))
            .set_key_schema(Some(T::key_schema()))
            .set_local_secondary_indexes(Some(T::local_indexes()))
            .set_global_secondary_indexes(Some(T::global_indexes()))
            .billing_mode(T::billing_mode())
            .stream_specification(T::stream())
            .send()
            .await
            .map_err(StoreError::dynamo)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(T::time_to_live())
            .send()
            .await
            .map_err(StoreError::dynamo)?;
        // A new table holds no customer without its entries.
        self.mark_reindexed().await
    }

    /// Whether the table exists.
    pub async fn table_exists(&self) -> Result<bool, StoreError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) => match aws_sdk_dynamodb::Error::from(err) {
                aws_sdk_dynamodb::Error::ResourceNotFoundException(_) => Ok(false),
                other => Err(StoreError::Dynamo(Box::new(other))),
            },
        }
    }

    pub(super) async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        self.get_with(key, true).await
    }

    pub(super) async fn get_with(
        &self,
        key: Item,
        consistent: bool,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(StoreError::dynamo)?;
        Ok(out.item)
    }

    /// Every item of one partition whose sort key starts with `prefix`, all
    /// pages, strongly consistent (for small partitions: the API keys).
    pub(super) async fn query_prefix_all(
        &self,
        partition: String,
        prefix: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let values = [(":pk", s(partition)), (":prefix", s(prefix))];
        self.query_all(IN_PARTITION_WITH_PREFIX, &values).await
    }

    /// Every item of one partition, all pages, strongly consistent.
    pub(super) async fn query_partition_all(
        &self,
        partition: &str,
    ) -> Result<Vec<Item>, StoreError> {
        self.query_all(IN_PARTITION, &[(":pk", s(partition))]).await
    }

    /// Every item of one partition of the local index `index` whose sort key
    /// (`sort_attr`) starts with `prefix`, all pages, strongly consistent.
    pub(super) async fn query_index_prefix_all(
        &self,
        index: (&'static str, &'static str),
        partition: String,
        prefix: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let values = [(":pk", s(partition)), (":prefix", s(prefix))];
        self.query_all_in(Some(index), IN_PARTITION_WITH_PREFIX, &values)
            .await
    }

    /// Every item a key condition on `#pk` (and `#sk`) selects in the table,
    /// all pages, strongly consistent.
    pub(super) async fn query_all(
        &self,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<Vec<Item>, StoreError> {
        self.query_all_in(None, condition, values).await
    }

    /// [`Store::query_all`] in the table or in a local index (its name and
    /// sort key attribute, which `#sk` then names).
    async fn query_all_in(
        &self,
        index: Option<(&'static str, &'static str)>,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(|(name, _)| name.to_owned()))
                .key_condition_expression(condition)
                .expression_attribute_names("#pk", PK)
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            if condition.contains("#sk") {
                let sort = index.map_or(SK, |(_, sort)| sort);
                query = query.expression_attribute_names("#sk", sort);
            }
            for (name, value) in values {
                query = query.expression_attribute_values(*name, value.clone());
            }
            let out = query.send().await.map_err(StoreError::dynamo)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// Items of one partition whose sort key starts with `prefix`, strongly consistent.
    pub(super) async fn query_prefix(
        &self,
        partition: String,
        prefix: &str,
        limit: i32,
    ) -> Result<Vec<Item>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(IN_PARTITION_WITH_PREFIX)
            .set_expression_attribute_names(Some(
                names()
                    .into_iter()
                    .filter(|(k, _)| k == "#pk" || k == "#sk")
                    .collect(),
            ))
            .expression_attribute_values(":pk", s(partition))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
            .limit(limit)
            .send()
            .await
            .map_err(StoreError::dynamo)?;
        Ok(out.items.unwrap_or_default())
    }
}
