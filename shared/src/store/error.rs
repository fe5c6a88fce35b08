use aws_sdk_dynamodb::error::BuildError;

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such customer, or it is being deleted.
    #[error("no customer with the given ID exists")]
    CustomerNotFound,
    /// The user is not a member of that customer.
    #[error("the user is not a member of this customer")]
    MemberNotFound,
    /// The user already belongs to a customer (one customer per user).
    #[error("the user is already a member of a customer")]
    AlreadyMember,
    /// The owner's membership cannot be removed.
    #[error("the user is the owner; transfer ownership first")]
    OwnerNotRemovable,
    /// The owner's role cannot be changed (only by transferring ownership).
    #[error("the user is the owner; the owner's role changes only by transferring ownership")]
    OwnerRoleChange,
    /// A customer with that ID already exists.
    #[error("a customer with that ID already exists")]
    CustomerExists,
    /// The Stripe customer is another customer's already.
    #[error("the Stripe customer belongs to another customer")]
    StripeCustomerClaimed,
    /// The request's `Idempotency-Key` claim was taken over by a retry (its
    /// lock ran out): the retry acts, this request changed nothing.
    #[error("a request with this Idempotency-Key is in progress; retry after it answers")]
    IdempotencyClaimLost,
    /// The customer's id was deleted (at this time) less than
    /// `table::TOMBSTONE_DAYS` ago: a creation from an event does not bring it back.
    #[error("the customer was deleted at {0}; its id is not created again")]
    CustomerDeleted(String),
    /// The owner was deleted (`user.deleted`, at this time) less than
    /// `table::TOMBSTONE_DAYS` ago: no customer is created for them.
    #[error("the owner was deleted at {0}")]
    OwnerDeleted(String),
    /// Transactions kept conflicting with concurrent writes.
    #[error("too many concurrent writes to the same items")]
    Contention,
    /// An item in the table does not have the expected shape.
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
    /// DynamoDB failed or could not be reached.
    #[error("dynamodb request failed")]
    Dynamo(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What a store error means to the caller: its HTTP status and its outcome
/// in the store's metrics both follow from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The customer or member is not there.
    NotFound,
    /// A condition of the change does not hold.
    Conflict,
    /// Concurrent changes kept this one from committing.
    Contention,
    /// The table failed, or holds what it should not.
    Failure,
}

impl StoreError {
    /// What it means to the caller.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::CustomerNotFound | Self::MemberNotFound => ErrorKind::NotFound,
            Self::AlreadyMember
            | Self::OwnerNotRemovable
            | Self::OwnerRoleChange
            | Self::CustomerExists
            | Self::StripeCustomerClaimed
            | Self::IdempotencyClaimLost
            | Self::CustomerDeleted(_)
            | Self::OwnerDeleted(_) => ErrorKind::Conflict,
            Self::Contention => ErrorKind::Contention,
            Self::Corrupt(_) | Self::Dynamo(_) => ErrorKind::Failure,
        }
    }

    /// Wraps any DynamoDB SDK error.
    pub fn dynamo<E>(err: E) -> Self
    where
        aws_sdk_dynamodb::Error: From<E>,
    {
        Self::Dynamo(Box::new(aws_sdk_dynamodb::Error::from(err)))
    }
}

impl From<BuildError> for StoreError {
    fn from(err: BuildError) -> Self {
        Self::Dynamo(Box::new(err))
    }
}

impl From<serde_dynamo::Error> for StoreError {
    fn from(err: serde_dynamo::Error) -> Self {
        Self::Corrupt(err.to_string())
    }
}

impl From<chrono::ParseError> for StoreError {
    fn from(err: chrono::ParseError) -> Self {
        Self::Corrupt(err.to_string())
    }
}
