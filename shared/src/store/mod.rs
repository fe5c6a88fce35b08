//! The single-table DynamoDB store: every read and write the service makes.
//!
//! Every public operation runs in a debug-level `store` span (`operation`, the
//! ids it acts on, `outcome`) and logs its outcome and duration at debug; no
//! span or log carries an item's contents, a secret or a secret's hash.

/// The span of a store operation: `operation`, `outcome` (recorded by [`observe`])
/// and the given fields (ids only).
macro_rules! store_span {
    ($operation:literal $(, $($fields:tt)+)?) => {
        tracing::debug_span!(
            "store",
            operation = $operation,
            outcome = tracing::field::Empty
            $(, $($fields)+)?
        )
    };
}

mod api_keys;
mod customers;
mod error;
mod members;
pub mod table;
mod tx;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use tracing::Instrument;

pub use api_keys::{ApiKeyRecord, ApiKeySummary};
pub use customers::DeletingCustomers;
pub use error::StoreError;
pub use members::MEMBERS_PER_TRANSACTION;
pub use table::Listing;

use table::{IN_PARTITION, IN_PARTITION_WITH_PREFIX, Item, PK, SK, names, s};

/// Runs a store operation in `span`, then records and logs (debug) how it ended.
///
/// Boxed: the callers' futures (handlers, the cascade, the stream consumer) then
/// hold a pointer rather than every nested operation's state, which keeps their
/// types shallow enough for the compiler's default recursion limit.
fn observe<'a, T: Send + 'a>(
    span: tracing::Span,
    work: impl Future<Output = Result<T, StoreError>> + Send + 'a,
) -> Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>> {
    Box::pin(async move {
        let started = Instant::now();
        let result = work.instrument(span.clone()).await;
        let outcome = outcome(&result);
        span.record("outcome", outcome);
        span.in_scope(|| {
            tracing::debug!(
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                "store operation {outcome}"
            );
        });
        result
    })
}

/// How an operation ended, in one word.
fn outcome<T>(result: &Result<T, StoreError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(StoreError::CustomerNotFound | StoreError::MemberNotFound) => "not_found",
        Err(
            StoreError::AlreadyMember | StoreError::OwnerNotRemovable | StoreError::CustomerExists,
        ) => "conflict",
        Err(StoreError::Contention) => "contention",
        Err(StoreError::Corrupt(_) | StoreError::Dynamo(_)) => "error",
    }
}

/// One page of results and the total they were drawn from.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// Total matching items across all pages.
    pub total: u64,
}

/// Handle on the table; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
    table: String,
}

/// Which items a paged query reads.
struct Window<'a> {
    index: &'a str,
    partition_attr: &'a str,
    partition: String,
    consistent: bool,
    /// Items before the page, after the leading header item.
    skip: u64,
    take: u32,
}

impl Store {
    /// A store on `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
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

    /// Creates the table with its indexes and stream (local stack and tests).
    pub async fn create_table(&self) -> Result<(), StoreError> {
        use table::TableDefinition as T;
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
        Ok(())
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

    async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamo)?;
        Ok(out.item)
    }

    /// Reads a partition's header item (its first, when `header_total` gives its
    /// total) and then one page of the items after it, skipping `w.skip`: one round
    /// trip for page 1, more only as deep pages need, none past the last page.
    async fn read_window(
        &self,
        w: Window<'_>,
        header_total: impl Fn(&Item) -> Option<u64>,
    ) -> Result<(Option<Item>, Vec<Item>), StoreError> {
        let take = w.take as usize;
        let mut header = None;
        let mut to_skip = w.skip;
        let mut page = Vec::with_capacity(take);
        let mut start: Option<Item> = None;
        let mut first = true;
        loop {
            let wanted = u64::from(first) + to_skip + (take - page.len()) as u64;
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(w.index)
                .key_condition_expression(IN_PARTITION)
                .expression_attribute_names("#pk", w.partition_attr)
                .expression_attribute_values(":pk", s(w.partition.clone()))
                .consistent_read(w.consistent)
                .limit(i32::try_from(wanted).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(StoreError::dynamo)?;
            let mut items = out.items.unwrap_or_default().into_iter().peekable();
            if first {
                first = false;
                if let Some(total) = items.peek().and_then(&header_total) {
                    header = items.next();
                    if total <= w.skip {
                        return Ok((header, page));
                    }
                }
            }
            for item in items {
                if to_skip > 0 {
                    to_skip -= 1;
                } else if page.len() < take {
                    page.push(item);
                }
            }
            match out.last_evaluated_key {
                Some(key) if page.len() < take => start = Some(key),
                _ => return Ok((header, page)),
            }
        }
    }

    /// Every item of one partition whose sort key starts with `prefix`, all
    /// pages, strongly consistent (for small partitions: the API keys).
    async fn query_prefix_all(
        &self,
        partition: String,
        prefix: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(IN_PARTITION_WITH_PREFIX)
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(partition.clone()))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(StoreError::dynamo)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// Items of one partition whose sort key starts with `prefix`, strongly consistent.
    async fn query_prefix(
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
