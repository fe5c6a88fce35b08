//! What each endpoint's code does to the table, as IAM names the actions: the
//! facts the template's policies are checked against (the contract tests read
//! them here, through [`crate::api::Endpoint`]).

use crate::store::table::MEMBERS_INDEX;

/// `dynamodb:GetItem`.
pub const GET_ITEM: &str = "dynamodb:GetItem";
/// `dynamodb:Query`.
pub const QUERY: &str = "dynamodb:Query";
/// `dynamodb:PutItem`.
pub const PUT_ITEM: &str = "dynamodb:PutItem";
/// `dynamodb:UpdateItem`.
pub const UPDATE_ITEM: &str = "dynamodb:UpdateItem";
/// `dynamodb:DeleteItem`.
pub const DELETE_ITEM: &str = "dynamodb:DeleteItem";
/// `dynamodb:ConditionCheckItem`.
pub const CONDITION_CHECK_ITEM: &str = "dynamodb:ConditionCheckItem";

/// One endpoint's access to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableAccess {
    /// The actions on items outside a transaction: `GetItem` everywhere (API
    /// keys, then records), `Query` where it reads partitions (listings,
    /// members, the deletion cascade's members, audit entries and their count).
    pub reads: &'static [&'static str],
    /// The secondary indexes it queries.
    pub indexes: &'static [&'static str],
    /// The item actions inside its `TransactWriteItems` (IAM authorizes a
    /// transaction by them). Every change of a customer, a member or a
    /// membership puts its audit entry in the same transaction, and with an
    /// `Idempotency-Key` its answer (an Update of the key's record).
    pub transaction_writes: &'static [&'static str],
    /// The item actions outside a transaction, on its `Idempotency-Key`
    /// records only (claim; the answer of a request whose change committed
    /// none; release), each conditional.
    pub idempotency_writes: &'static [&'static str],
}

impl TableAccess {
    /// A reader of single items.
    const GETS: Self = Self {
        reads: &[GET_ITEM],
        indexes: &[],
        transaction_writes: &[],
        idempotency_writes: &[],
    };
    /// What an `Idempotency-Key` adds.
    const IDEMPOTENCY: &[&str] = &[PUT_ITEM, UPDATE_ITEM, DELETE_ITEM];

    /// `GET /customers`: the listing's partitions.
    pub const LIST_CUSTOMERS: Self = Self {
        reads: &[GET_ITEM, QUERY],
        ..Self::GETS
    };
    /// `GET /customer/{customerID}`.
    pub const GET_CUSTOMER: Self = Self::GETS;
    /// `DELETE /customer/{customerID}`: the cascade puts listing deltas, the
    /// audit entry and the customer's tombstone, updates the record and
    /// counts, deletes entries, members, memberships and the record.
    pub const DELETE_CUSTOMER: Self = Self {
        reads: &[GET_ITEM, QUERY],
        indexes: &[],
        transaction_writes: &[PUT_ITEM, UPDATE_ITEM, DELETE_ITEM],
        idempotency_writes: Self::IDEMPOTENCY,
    };
    /// `GET /customer/{customerID}/members`: the members index.
    pub const LIST_MEMBERS: Self = Self {
        reads: &[GET_ITEM, QUERY],
        indexes: &[MEMBERS_INDEX],
        ..Self::GETS
    };
    /// `POST /customer/{customerID}/member`: the members and memberships
    /// (Put), the customer's count, its entries' and its members directory
    /// (Update).
    pub const ADD_MEMBER: Self = Self {
        transaction_writes: &[PUT_ITEM, UPDATE_ITEM],
        idempotency_writes: Self::IDEMPOTENCY,
        ..Self::GETS
    };
    /// `DELETE /customer/{customerID}/member/{userID}`: the audit entry
    /// (Put), the counts and directory (Update), the member and membership
    /// (Delete).
    pub const REMOVE_MEMBER: Self = Self {
        transaction_writes: &[PUT_ITEM, UPDATE_ITEM, DELETE_ITEM],
        ..Self::GETS
    };
    /// `PATCH /customer/{customerID}/member/{userID}`: the customer checked
    /// active, the member put, the membership and the members directory
    /// updated.
    pub const CHANGE_MEMBER_ROLE: Self = Self {
        transaction_writes: &[CONDITION_CHECK_ITEM, PUT_ITEM, UPDATE_ITEM],
        idempotency_writes: Self::IDEMPOTENCY,
        ..Self::GETS
    };
    /// `GET /user/{userID}/customer`.
    pub const GET_USER_CUSTOMER: Self = Self::GETS;
    /// `GET /customer/{customerID}/audit`: the audit partition and its count.
    pub const LIST_AUDIT: Self = Self::LIST_CUSTOMERS;
}
