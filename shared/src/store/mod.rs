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
mod audit_writers;
mod changes;
mod customers;
mod directory;
mod error;
mod fences;
mod handle;
mod idempotency;
mod listing_reader;
mod load;
mod members;
mod observe;
mod page;
mod reindex;
mod retry;
mod scan;
pub mod table;
mod tally;
mod tombstones;
mod tx;
mod writes;

pub use api_keys::{ApiKeyRecord, ApiKeySummary};
pub use changes::{Applied, CustomerChange, EventStamp};
pub use customers::DeletingCustomers;
pub use error::{ErrorKind, StoreError};
pub use handle::Store;
pub use idempotency::{Answer, Answering, Claim, ClaimRequest, Claimed};
pub use page::{Page, PageAt};
pub use reindex::Reindexed;
pub use table::Listing;
pub use tally::Folded;
