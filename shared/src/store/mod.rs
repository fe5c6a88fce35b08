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
mod audit;
mod changes;
mod customers;
mod error;
mod fences;
mod idempotency;
mod load;
mod members;
mod rank;
mod ranked;
mod reindex;
mod scan;
pub mod table;
mod tally;
mod tombstones;
mod tx;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use tracing::Instrument;

use crate::domain::PageRequest;

pub use api_keys::{ApiKeyRecord, ApiKeySummary};
pub use changes::{Applied, CustomerChange, EventStamp};
pub use customers::DeletingCustomers;
pub use error::StoreError;
pub use idempotency::{Answer, Answering, Claim, ClaimRequest, Claimed};
pub use reindex::Reindexed;
pub use table::Listing;
pub use tally::Folded;

use aws_sdk_dynamodb::types::AttributeValue;
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
            StoreError::AlreadyMember
            | StoreError::OwnerNotRemovable
            | StoreError::OwnerRoleChange
            | StoreError::CustomerExists
            | StoreError::StripeCustomerClaimed
            | StoreError::IdempotencyClaimLost
            | StoreError::CustomerDeleted(_)
            | StoreError::OwnerDeleted(_),
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
    /// When more items follow: the sort key of this page's last one, which
    /// [`PageAt::After`] continues from.
    pub more_after: Option<String>,
}

/// Which page of a listing to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageAt {
    /// A numbered page.
    Number(PageRequest),
    /// The `limit` items after the one with sort key `after` (from a cursor).
    After {
        /// Sort key of the last item already seen.
        after: String,
        /// Items per page.
        limit: u32,
    },
}

impl PageAt {
    fn window(&self) -> ranked::Window {
        match self {
            Self::Number(p) => ranked::Window::Offset {
                offset: p.offset(),
                take: p.limit,
            },
            Self::After { after, limit } => ranked::Window::After {
                after: after.clone(),
                take: *limit,
            },
        }
    }
}

/// Handle on the table; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
    table: String,
    /// This process's writers of each customer's audit trail, one at a time
    /// (see [`tx::Tx::commit`]); clones share it.
    audit_writers: tx::AuditWriters,
}

impl Store {
    /// A store on `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            audit_writers: tx::AuditWriters::default(),
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
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(T::time_to_live())
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
        self.get_with(key, true).await
    }

    async fn get_with(&self, key: Item, consistent: bool) -> Result<Option<Item>, StoreError> {
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
    async fn query_prefix_all(
        &self,
        partition: String,
        prefix: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let values = [(":pk", s(partition)), (":prefix", s(prefix))];
        self.query_all(IN_PARTITION_WITH_PREFIX, &values).await
    }

    /// Every item of one partition, all pages, strongly consistent.
    async fn query_partition_all(&self, partition: &str) -> Result<Vec<Item>, StoreError> {
        self.query_all(IN_PARTITION, &[(":pk", s(partition))]).await
    }

    /// Every item a key condition on `#pk` (and `#sk`) selects in the table,
    /// all pages, strongly consistent.
    async fn query_all(
        &self,
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
                .key_condition_expression(condition)
                .expression_attribute_names("#pk", PK)
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            if condition.contains("#sk") {
                query = query.expression_attribute_names("#sk", SK);
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
