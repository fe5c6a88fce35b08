//! Domain types that parse at the edge: past this module nothing is re-checked.

pub mod audit;
mod customer;
mod ids;
mod page;
mod role;
mod status;
mod stripe_id;
mod tier;
pub mod time;

pub use customer::{Customer, CustomerState, Member, Membership, NewCustomer, customer_name};
pub use ids::{CustomerId, UserId};
pub use page::{PageRequest, pages};
pub use role::Role;
pub use status::SubscriptionStatus;
pub use stripe_id::StripeIdKind;
pub use tier::{TierName, TierSource};
pub use time::{Timestamp, now};

/// Why a value from a request was rejected; becomes a 400 with `param`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// Stable machine-readable code, e.g. `invalid_customer_id`.
    pub code: &'static str,
    /// The offending input's name.
    pub param: &'static str,
    /// A sentence for a person; never echoes the input.
    pub message: String,
}

impl Invalid {
    /// A rejection of `param` with `code` and a message for a person.
    pub fn new(code: &'static str, param: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            param,
            message: message.into(),
        }
    }
}
