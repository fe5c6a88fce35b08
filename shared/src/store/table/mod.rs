//! The single table: key formats, index names, item shapes and expressions.
//!
//! Nothing outside this module knows an attribute name or a key format.
//!
//! | item        | PK                | SK            | LSI1SK                          | GSI keys                          |
//! |-------------|-------------------|---------------|---------------------------------|-----------------------------------|
//! | customer    | `CUSTOMER#<id>`   | `CUSTOMER`    | `#`                             | -                                 |
//! | customer, deleting | `CUSTOMER#<id>` | `CUSTOMER` | `#`                        | GSI1PK `DELETING`, GSI1SK `<deletingSince>#<id>` |
//! | member      | `CUSTOMER#<id>`   | `MEMBER#<uid>`| `MEMBER#<rank>#<joinedAt>#<uid>`| -                                 |
//! | members directory | `CUSTOMER#<id>` | `DIR#...`, `DIRL2#...` ([`dir`]) | -          | -                                 |
//! | membership  | `USER#<uid>`      | `MEMBERSHIP`  | -                               | -                                 |
//! | listing entry | `LIST#<listing>` | `<createdAt>#<id>` | -                          | -                                 |
//! | listing directory | `INDEX#<listing>` | `DIR#...`, `DIRL2#...` ([`dir`]) | -      | -                                 |
//! | api key     | `APIKEY`          | `APIKEY#<keyId>` | -                            | -                                 |
//! | stripe customer | `STRIPE#<cus_...>` | `CUSTOMER`  | -                               | -                                 |
//! | applied event | `EVENT#<source>#<id>` | `EVENT`    | -                               | -                                 |
//! | audit entry | `AUDIT#<customerID>` | `SEQ#<n>` (before numbering: `<at>#<entryID>`) | - | - ([`audit`])  |
//! | audit sequence | `AUDIT#<customerID>` | `#SEQ` | -                                   | -                                 |
//! | idempotency record | `IDEMPOTENCY#<sha256(caller, key)>` | `IDEMPOTENCY` | -       | -                                 |
//! | tombstone   | `TOMBSTONE#CUSTOMER#<id>`, `TOMBSTONE#USER#<uid>` | `TOMBSTONE` | - | - ([`tombstone`])        |
//!
//! A customer listing is a partition of entries, one per active customer,
//! written in the same transaction as the customer ([`Listing`]); there is no
//! index per filter. The only global index holds the customers being deleted.

mod audit;
mod idempotency;
mod tombstone;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{
    Customer, CustomerId, CustomerState, Member, NewCustomer, Role, SubscriptionStatus, TierName,
    TierSource, Timestamp, UserId, time,
};

pub use audit::{
    AUDIT_RETENTION_DAYS, AuditItem, ENTRIES_FROM, LEGACY_TO, SEQUENCE_IS, audit_number, audit_pk,
    audit_sequence_item, audit_sequence_key, audit_sequence_of, audit_sort,
};
pub use idempotency::{
    CLAIM_FREE, CLAIMED_BY, CLAIMED_RUNNING, CLAIMED_UNANSWERED, COMPLETE_CLAIM, IdempotencyItem,
    IdempotencyState, PENDING_ANSWER, idempotency_key,
};
pub use tombstone::{
    NOT_TOMBSTONED, TOMBSTONE_DAYS, TOMBSTONE_FREE_OR_KEPT, customer_tombstone_key,
    tombstone_deleted_at, tombstone_item, tombstone_values, user_tombstone_key,
};

/// A DynamoDB item or key.
pub type Item = HashMap<String, AttributeValue>;

/// Partition key attribute.
pub const PK: &str = "PK";
/// Sort key attribute.
pub const SK: &str = "SK";
/// Sort key of the members-by-rank local index.
pub const LSI1SK: &str = "LSI1SK";
/// Partition key of the deletions index.
pub const GSI1PK: &str = "GSI1PK";
/// Sort key of the deletions index.
pub const GSI1SK: &str = "GSI1SK";

/// Local index listing a customer's record first, then its members by rank and join time.
pub const MEMBERS_INDEX: &str = "LSI1";
/// Global index of the customers being deleted (name, partition key attribute).
pub const DELETING_INDEX: (&str, &str) = ("GSI1", GSI1PK);
/// `LSI1SK` of a customer record: sorts before every member.
const CUSTOMER_RANK_SORT: &str = "#";

/// Expression attribute names used by the expressions below.
pub fn names() -> HashMap<String, String> {
    [
        ("#pk", PK),
        ("#sk", SK),
        ("#state", "state"),
        ("#count", "count"),
        ("#members", "memberCount"),
        ("#role", "role"),
        ("#customer", "customerID"),
        ("#revoked", "revokedAt"),
        ("#type", "type"),
        ("#name", "name"),
        ("#tier", "tierName"),
        ("#status", "subscriptionStatus"),
        ("#version", "billingVersion"),
        ("#platformVersion", "platformVersion"),
        ("#tierSource", "tierSource"),
        ("#expires", TTL_ATTRIBUTE),
        ("#seq", "seq"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Condition: the item does not exist yet.
pub const NOT_EXISTS: &str = "attribute_not_exists(#pk)";
/// Condition: the customer exists and is active.
pub const CUSTOMER_ACTIVE: &str = "attribute_exists(#pk) AND #state = :active";
/// Condition: the customer exists and is being deleted.
pub const CUSTOMER_DELETING: &str = "attribute_exists(#pk) AND #state = :deleting";
/// Condition: the member exists with role `:role`.
pub const MEMBER_IS: &str = "attribute_exists(#pk) AND #role = :role";
/// Condition: the membership item exists.
pub const EXISTS: &str = "attribute_exists(#pk)";
/// Condition: the user's membership points at `:customer`.
pub const MEMBERSHIP_OF: &str = "#customer = :customer";
/// Update: change `memberCount` by `:delta`.
pub const ADD_MEMBERS: &str = "ADD #members :delta";
/// Update: mark a customer deleting and put it into GSI1's `DELETING`
/// partition, sorted by when the deletion began (`:deletingpk` =
/// [`DELETING_PARTITION`], `:deletingsk` = [`deleting_sort`]).
pub const MARK_DELETING: &str = "SET #state = :deleting, deletingSince = :now, \
     GSI1PK = :deletingpk, GSI1SK = :deletingsk";
/// GSI1 partition of the customers being deleted: no listing reads it, and it
/// has no counter; the record's final delete takes the customer out of it.
pub const DELETING_PARTITION: &str = "DELETING";
/// `GSI1SK` of a deleting customer: its `deletingSince` (RFC 3339 with
/// milliseconds, fixed width) then its id, so the oldest deletion sorts first.
pub fn deleting_sort(since: &str, id: &CustomerId) -> String {
    format!("{since}#{id}")
}
/// Projection of a deletion backlog query: when each deletion began.
pub const DELETING_SINCE: &str = "deletingSince";
/// Update (with [`CUSTOMER_ACTIVE`]): what re-projecting an active customer
/// does to its record: drops the keys of the listing indexes the listings
/// replaced.
pub const REPROJECT: &str = "SET #state = :active REMOVE GSI1PK, GSI2PK, GSI3PK, GSI4PK, GSI1SK";
/// Partition of the counters of the listing indexes the listings replaced.
pub const LEGACY_COUNTERS: &str = "COUNTER";
/// Update: revoke an API key.
pub const REVOKE: &str = "SET #revoked = :now";
/// Key condition: one partition.
pub const IN_PARTITION: &str = "#pk = :pk";
/// Key condition: one partition, sort keys with a prefix.
pub const IN_PARTITION_WITH_PREFIX: &str = "#pk = :pk AND begins_with(#sk, :prefix)";
/// Key condition: one partition, sort keys after `:after`.
pub const IN_PARTITION_AFTER: &str = "#pk = :pk AND #sk > :after";
/// `SK` prefix of member items.
pub const MEMBER_PREFIX: &str = "MEMBER#";

/// Condition on a customer record about to be replaced: still active and as
/// it was read (what its entries and counts were written from).
pub const CUSTOMER_AS_READ: &str = "attribute_exists(#pk) AND #state = :active \
     AND #members = :members AND #name = :name AND #tier = :tier AND #status = :status";
/// Condition (beside [`CUSTOMER_AS_READ`]) on a customer record about to be
/// replaced: its platform revision and tier owner are as read from `c`, so a
/// platform event or a tier write committed since the read cancels the
/// replacement (which then reads again and decides again). With the read
/// revision below a platform event's `version`, the event's change commits
/// only over a revision below its own. Returns the expression and its values.
pub fn provenance_as_read(c: &Customer) -> (String, Vec<(&'static str, AttributeValue)>) {
    let mut values = Vec::new();
    let version = match c.platform_version {
        Some(v) => {
            values.push((":readPlatformVersion", AttributeValue::N(v.to_string())));
            "#platformVersion = :readPlatformVersion"
        }
        None => "attribute_not_exists(#platformVersion)",
    };
    let source = match c.tier_source {
        Some(source) => {
            values.push((":readTierSource", s(source.as_str())));
            "#tierSource = :readTierSource"
        }
        None => "attribute_not_exists(#tierSource)",
    };
    (format!("{version} AND {source}"), values)
}

/// Condition on the lookup of a Stripe customer: free, or this customer's.
pub const STRIPE_FREE_OR_OF: &str = "attribute_not_exists(#pk) OR #customer = :customer";

/// Key of the lookup from a Stripe customer (`cus_...`) to its customer.
pub fn stripe_customer_key(stripe_id: &str) -> Item {
    key(format!("STRIPE#{stripe_id}"), "CUSTOMER")
}

/// The lookup item of a Stripe customer.
pub fn stripe_customer_item(stripe_id: &str, customer: &CustomerId) -> Item {
    let mut item = stripe_customer_key(stripe_id);
    item.insert("type".to_owned(), s("stripeCustomer"));
    item.insert("customerID".to_owned(), s(customer.to_string()));
    item
}

/// The customer a Stripe customer lookup item points at.
pub fn stripe_customer_of(item: &Item) -> Option<CustomerId> {
    let raw = item.get("customerID")?.as_s().ok()?;
    CustomerId::parse(raw).ok()
}

/// The key of the item recording that an event was applied.
pub fn applied_event_key(source: &str, event_id: &str) -> Item {
    key(format!("EVENT#{source}#{event_id}"), "EVENT")
}

/// The item recording that an event (`source`: `stripe`, `platform`) was
/// applied, kept until `expires` (epoch seconds; the table's TTL attribute).
pub fn applied_event_item(source: &str, event_id: &str, expires: i64) -> Item {
    let mut item = applied_event_key(source, event_id);
    item.insert("type".to_owned(), s("appliedEvent"));
    item.insert(TTL_ATTRIBUTE.to_owned(), n(expires));
    item
}

/// The table's time-to-live attribute (epoch seconds): items past it are
/// removed by DynamoDB within days.
pub const TTL_ATTRIBUTE: &str = "expiresAt";

/// A string attribute value.
pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute value.
pub fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The key of an item.
pub fn key(pk: String, sk: &str) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

/// Key of a customer record.
pub fn customer_key(id: &CustomerId) -> Item {
    key(customer_pk(id), "CUSTOMER")
}

/// Partition of a customer: its record and its member items.
pub fn customer_pk(id: &CustomerId) -> String {
    format!("CUSTOMER#{id}")
}

/// Key of a member item within its customer's partition.
pub fn member_key(customer: &CustomerId, user: &UserId) -> Item {
    key(customer_pk(customer), &format!("{MEMBER_PREFIX}{user}"))
}

/// The group of a member in its customer's members directory: its rank.
pub fn member_group(role: Role) -> String {
    format!("{}#", role.rank())
}

/// Key of a user's membership item: the table key that makes a user belong to one customer.
pub fn membership_key(user: &UserId) -> Item {
    key(user_pk(user), MEMBERSHIP_SK)
}

fn user_pk(user: &UserId) -> String {
    format!("USER#{user}")
}

const MEMBERSHIP_SK: &str = "MEMBERSHIP";

/// Key of an API key item. Every key lives in one partition, so that listing
/// the keys is one Query: there are few, and each request reads one.
pub fn api_key_key(key_id: &str) -> Item {
    key(API_KEY_PK.to_owned(), &format!("{API_KEY_PREFIX}{key_id}"))
}

/// Partition of the API keys.
pub const API_KEY_PK: &str = "APIKEY";
/// `SK` prefix of API key items.
pub const API_KEY_PREFIX: &str = "APIKEY#";

/// A customer listing: the filters it applies, each `None` for "any".
///
/// Everything a listing needs is derived from this value in one place: the
/// partition of its entries ([`Listing::entries_pk`]), the partition of its
/// order-statistics directory ([`Listing::index_pk`]) and the listings a
/// customer appears in ([`Listing::of`]). Adding a filter is one field here,
/// its line in [`Listing::fields`] and [`Listing::keep`], and its parsing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    /// Only customers on this tier.
    pub tier: Option<TierName>,
    /// Only customers in this subscription status.
    pub status: Option<SubscriptionStatus>,
}

impl Listing {
    /// Number of filters: a customer appears in `2^FILTERS` listings.
    const FILTERS: u32 = 2;

    /// Every active customer.
    pub fn all() -> Self {
        Self::default()
    }

    /// The listing for optional filters.
    pub fn for_filters(tier: Option<TierName>, status: Option<SubscriptionStatus>) -> Self {
        Self { tier, status }
    }

    /// Every listing a customer with these values appears in: each filter either
    /// set to the customer's value or left open.
    pub fn of(tier: &TierName, status: SubscriptionStatus) -> Vec<Self> {
        let full = Self::for_filters(Some(tier.clone()), Some(status));
        (0..1u32 << Self::FILTERS)
            .map(|mask| full.keep(mask))
            .collect()
    }

    /// This listing with only the filters whose bit is set in `mask`.
    fn keep(&self, mask: u32) -> Self {
        Self {
            tier: self.tier.clone().filter(|_| mask & 1 != 0),
            status: self.status.filter(|_| mask & 2 != 0),
        }
    }

    /// The filters as query parameter names and values, in a fixed order.
    fn fields(&self) -> [(&'static str, Option<&str>); Self::FILTERS as usize] {
        [
            ("tierName", self.tier.as_ref().map(TierName::as_str)),
            ("status", self.status.map(SubscriptionStatus::as_str)),
        ]
    }

    /// The listing's name: `CUSTOMERS`, then `#name=value` per set filter.
    /// Tier names cannot hold `#` or `=`, so the name is unambiguous.
    pub fn key(&self) -> String {
        let mut key = "CUSTOMERS".to_owned();
        for (name, value) in self.fields() {
            if let Some(value) = value {
                key.push_str(&format!("#{name}={value}"));
            }
        }
        key
    }

    /// Partition of the listing's entries (one per customer, by `createdAt#id`).
    pub fn entries_pk(&self) -> String {
        format!("LIST#{}", self.key())
    }

    /// Partition of the listing's order-statistics directory.
    pub fn index_pk(&self) -> String {
        format!("INDEX#{}", self.key())
    }
}

/// Sort key of a customer's entries: `createdAt` (seconds) then its id.
pub fn entry_sort(created_at: &Timestamp, id: &CustomerId) -> String {
    format!("{}#{id}", time::to_seconds(created_at))
}

/// Key of a customer's entry in a listing.
pub fn entry_key(listing: &Listing, created_at: &Timestamp, id: &CustomerId) -> Item {
    key(listing.entries_pk(), &entry_sort(created_at, id))
}

/// Stored shape of a listing entry: what a listing page shows of a customer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "type")]
    kind: String,
    id: CustomerId,
    name: String,
    tier_name: TierName,
    #[serde(rename = "tierID")]
    tier_id: Uuid,
    subscription_status: SubscriptionStatus,
    member_count: u64,
    created_at: String,
    #[serde(rename = "ownerUserID")]
    owner_user_id: UserId,
}

impl EntryItem {
    /// The entry of `customer` in `listing`.
    pub fn new(listing: &Listing, c: &Customer) -> Self {
        Self {
            pk: listing.entries_pk(),
            sk: entry_sort(&c.created_at, &c.id),
            kind: "entry".to_owned(),
            id: c.id,
            name: c.name.clone(),
            tier_name: c.tier_name.clone(),
            tier_id: c.tier_id,
            subscription_status: c.subscription_status,
            member_count: c.member_count,
            created_at: time::to_seconds(&c.created_at),
            owner_user_id: c.owner_user_id,
        }
    }

    /// The customer as the listing shows it (active, no billing ids).
    pub fn into_customer(self) -> Result<Customer, chrono::ParseError> {
        Ok(Customer {
            id: self.id,
            name: self.name,
            tier_name: self.tier_name,
            tier_id: self.tier_id,
            subscription_status: self.subscription_status,
            member_count: self.member_count,
            created_at: parse_time(&self.created_at)?,
            owner_user_id: self.owner_user_id,
            state: CustomerState::Active,
            deleting_since: None,
            stripe_customer_id: None,
            stripe_subscription_id: None,
            billing_version: None,
            billing_gone_at: None,
            platform_version: None,
            tier_source: None,
        })
    }
}

/// Update: change a listing entry's `memberCount` by `:delta`.
pub const ADD_ENTRY_MEMBERS: &str = "ADD #members :delta";

/// The order-statistics directory of a listing (see `store::rank`): counts of
/// its entries per month and per day of their time, so that any page's first
/// entry is found without reading the entries before it.
///
/// | item  | SK                            | attributes                           |
/// |-------|-------------------------------|--------------------------------------|
/// | month | `DIR#M#<group><YYYY-MM>`       | `count`, `d01`..`d31` (per day)      |
/// | delta | `DIR#X#<uuid>`                | `at` = `<group><YYYY-MM-DDTHH:MM>`, `count` |
/// | day   | `DIRL2#<group><YYYY-MM-DD>`    | `count`, `s0000`..`s2359` (per minute) |
///
/// `<group>` orders entries before their time: empty for customers, the rank
/// and `#` for members. Months and deltas sort together (one Query reads them,
/// with a member listing's customer record); days sort after them.
pub mod dir {
    /// First sort key of the items one directory read returns (a customer
    /// record sorts before it, in its own partition).
    pub const READ_FROM: &str = "CUSTOMER";
    /// Last sort key of the items one directory read returns.
    pub const READ_TO: &str = "DIR#~";
    /// Sort key prefix of every directory item but the days.
    pub const PREFIX: &str = "DIR#";
    /// Sort key prefix of the days.
    pub const DAY_PREFIX: &str = "DIRL2#";
    /// Sort key prefix of a month.
    pub const MONTH: &str = "DIR#M#";
    /// Sort key prefix of a delta.
    pub const DELTA: &str = "DIR#X#";
    /// Attribute of a delta: the slot it counts in.
    pub const AT: &str = "at";
    /// Attribute of the total of a month, a day or a delta.
    pub const COUNT: &str = "count";
}

/// The sharded day counts of a customer listing (see `store::tally`): every
/// change of a listing's entries adds to one of [`tally::SHARDS`] items in its
/// transaction, and the stream consumer compacts them into the months.
///
/// | item   | SK                      | attributes |
/// |--------|-------------------------|------------|
/// | shard  | `DIR#S#<n>`             | `count`, `d<YYYYMMDD>` (entries), `v<YYYYMMDD>` (changes), `chg`, `firstAt` |
/// | month  | `DIR#M#<YYYY-MM>`       | `count`, `dDD`, `vDD` |
/// | fences | `DIRF#<YYYY-MM-DD>#<nnnnn>` | `ver`, `keys`: every [`tally::FENCE_EVERY`]-th sort key of the day |
pub mod tally {
    /// Sort key prefix of a shard.
    pub const SHARD: &str = "DIR#S#";
    /// Shards per listing: writers pick one by their customer's id.
    pub const SHARDS: u32 = 8;
    /// Sort key prefix of a day's fences (sorts after every directory read).
    pub const FENCES: &str = "DIRF#";
    /// Entries between two fences of a day.
    pub const FENCE_EVERY: u64 = 32;
    /// Fences per fence item.
    pub const FENCES_PER_ITEM: u64 = 128;
    /// Attribute of a shard: changes it holds (its version, for compaction).
    pub const CHANGES: &str = "chg";
    /// Attribute of a shard: when its oldest uncompacted change was written.
    pub const FIRST_AT: &str = "firstAt";
    /// Attribute of a fence item: the day's version its fences were read at.
    pub const VERSION: &str = "ver";
    /// Attribute of a fence item: the fences, in order.
    pub const KEYS: &str = "keys";
}

/// Key of shard `shard` of the day counts in directory `pk`.
pub fn tally_shard_key(pk: &str, shard: u32) -> Item {
    key(pk.to_owned(), &format!("{}{shard}", tally::SHARD))
}

/// Key of fence item `n` of `day` (`YYYY-MM-DD`) in directory `pk`.
pub fn fences_key(pk: &str, day: &str, n: u64) -> Item {
    key(pk.to_owned(), &format!("{}{day}#{n:05}", tally::FENCES))
}

/// Update of a shard: `:delta` entries more (or fewer) on a day and one more
/// change, given the day's attributes (`d<YYYYMMDD>`, `v<YYYYMMDD>`); values
/// `:delta`, `:one`, `:tally`, `:now`.
pub fn tally_add(count_attr: &str, version_attr: &str) -> String {
    format!(
        "ADD #count :delta, {count_attr} :delta, {version_attr} :one, {} :one \
         SET #type = :tally, {} = if_not_exists({}, :now)",
        tally::CHANGES,
        tally::FIRST_AT,
        tally::FIRST_AT
    )
}

/// Key of a directory month (`bucket` = `<group><YYYY-MM>`).
pub fn dir_month_key(pk: &str, bucket: &str) -> Item {
    key(pk.to_owned(), &format!("{}{bucket}", dir::MONTH))
}

/// Key of a directory day (`bucket` = `<group><YYYY-MM-DD>`).
pub fn dir_day_key(pk: &str, bucket: &str) -> Item {
    key(pk.to_owned(), &format!("{}{bucket}", dir::DAY_PREFIX))
}

/// A pending delta of a listing's directory: `count` entries more (or fewer)
/// in `slot`, folded into the months and days later (`Store::fold_index`).
pub fn dir_delta_item(pk: &str, slot: &str, count: i64) -> Item {
    let mut item = key(pk.to_owned(), &format!("{}{}", dir::DELTA, Uuid::new_v4()));
    item.insert("type".to_owned(), s("delta"));
    item.insert(dir::AT.to_owned(), s(slot));
    item.insert(dir::COUNT.to_owned(), n(count));
    item
}

/// Update: add counts to a month or a day: `ADD count :c0, <attr1> :c1, ...`.
pub fn dir_add(attrs: &[String]) -> String {
    let parts = std::iter::once("#count :c0".to_owned()).chain(
        attrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{a} :c{}", i + 1)),
    );
    format!("ADD {}", parts.collect::<Vec<_>>().join(", "))
}

/// Stored shape of a customer record.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "LSI1SK")]
    lsi1sk: String,
    #[serde(rename = "GSI1PK", default, skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(rename = "GSI1SK", default, skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<String>,
    id: CustomerId,
    name: String,
    tier_name: TierName,
    #[serde(rename = "tierID")]
    tier_id: Uuid,
    subscription_status: SubscriptionStatus,
    member_count: u64,
    created_at: String,
    #[serde(rename = "ownerUserID")]
    owner_user_id: UserId,
    state: CustomerState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleting_since: Option<String>,
    #[serde(
        rename = "stripeCustomerID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    stripe_customer_id: Option<String>,
    #[serde(
        rename = "stripeSubscriptionID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    stripe_subscription_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    billing_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    billing_gone_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    platform_version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tier_source: Option<TierSource>,
}

impl CustomerItem {
    /// The record of a new, active customer with no members yet.
    pub fn new(c: &NewCustomer) -> Self {
        Self::of(&Customer::from(c))
    }

    /// The record of an active customer as it now is (a change of its fields).
    pub fn of(c: &Customer) -> Self {
        Self {
            pk: customer_pk(&c.id),
            sk: "CUSTOMER".to_owned(),
            kind: "customer".to_owned(),
            lsi1sk: CUSTOMER_RANK_SORT.to_owned(),
            gsi1pk: None,
            gsi1sk: None,
            id: c.id,
            name: c.name.clone(),
            tier_name: c.tier_name.clone(),
            tier_id: c.tier_id,
            subscription_status: c.subscription_status,
            member_count: c.member_count,
            created_at: time::to_seconds(&c.created_at),
            owner_user_id: c.owner_user_id,
            state: CustomerState::Active,
            deleting_since: None,
            stripe_customer_id: c.stripe_customer_id.clone(),
            stripe_subscription_id: c.stripe_subscription_id.clone(),
            billing_version: c.billing_version.clone(),
            billing_gone_at: c.billing_gone_at.as_ref().map(time::to_seconds),
            platform_version: c.platform_version,
            tier_source: c.tier_source,
        }
    }

    /// Whether a raw item is a customer record.
    pub fn is_one(item: &Item) -> bool {
        matches!(item.get("type"), Some(AttributeValue::S(t)) if t == "customer")
    }

    /// The domain value.
    pub fn into_customer(self) -> Result<Customer, chrono::ParseError> {
        Ok(Customer {
            id: self.id,
            name: self.name,
            tier_name: self.tier_name,
            tier_id: self.tier_id,
            subscription_status: self.subscription_status,
            member_count: self.member_count,
            created_at: parse_time(&self.created_at)?,
            owner_user_id: self.owner_user_id,
            state: self.state,
            deleting_since: self.deleting_since.as_deref().map(parse_time).transpose()?,
            stripe_customer_id: self.stripe_customer_id,
            stripe_subscription_id: self.stripe_subscription_id,
            billing_version: self.billing_version,
            billing_gone_at: self
                .billing_gone_at
                .as_deref()
                .map(parse_time)
                .transpose()?,
            platform_version: self.platform_version,
            tier_source: self.tier_source,
        })
    }
}

/// Stored shape of a member item (in the customer's partition).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "LSI1SK")]
    lsi1sk: String,
    #[serde(rename = "customerID")]
    customer_id: CustomerId,
    #[serde(rename = "userID")]
    user_id: UserId,
    #[serde(rename = "roleID")]
    role_id: Uuid,
    role: Role,
    joined_at: String,
}

impl MemberItem {
    /// The member item of `member` in `customer`.
    pub fn new(customer: &CustomerId, member: &Member) -> Self {
        let joined = time::to_millis(&member.joined_at);
        Self {
            pk: customer_pk(customer),
            sk: format!("{MEMBER_PREFIX}{}", member.user_id),
            kind: "member".to_owned(),
            lsi1sk: format!(
                "{MEMBER_PREFIX}{}#{joined}#{}",
                member.role.rank(),
                member.user_id
            ),
            customer_id: *customer,
            user_id: member.user_id,
            role_id: member.role_id,
            role: member.role,
            joined_at: joined,
        }
    }

    /// The user this item is for.
    pub fn user_id(&self) -> UserId {
        self.user_id
    }

    /// The domain value.
    pub fn into_member(self) -> Result<Member, chrono::ParseError> {
        Ok(Member {
            role_id: self.role_id,
            user_id: self.user_id,
            role: self.role,
            joined_at: parse_time(&self.joined_at)?,
        })
    }
}

/// Stored shape of a user's membership: at most one per user, by its key.
#[derive(Debug, Serialize, Deserialize)]
pub struct MembershipItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "type")]
    kind: String,
    /// The customer the user belongs to.
    #[serde(rename = "customerID")]
    pub customer_id: CustomerId,
    /// The user's role there.
    pub role: Role,
    /// When the user joined (absent from items written before it was kept:
    /// the member item has it).
    #[serde(rename = "joinedAt", default, skip_serializing_if = "Option::is_none")]
    joined_at: Option<String>,
}

impl MembershipItem {
    /// The membership of `member` in `customer`.
    pub fn new(customer: &CustomerId, member: &Member) -> Self {
        Self {
            pk: user_pk(&member.user_id),
            sk: MEMBERSHIP_SK.to_owned(),
            kind: "membership".to_owned(),
            customer_id: *customer,
            role: member.role,
            joined_at: Some(time::to_millis(&member.joined_at)),
        }
    }

    /// When the user joined, if the item holds it.
    pub fn joined_at(&self) -> Result<Option<Timestamp>, chrono::ParseError> {
        self.joined_at.as_deref().map(parse_time).transpose()
    }
}

/// Update: a membership's role (`:role`) and join time (`:joined`).
pub const SET_MEMBERSHIP_ROLE: &str = "SET #role = :role, joinedAt = :joined";

/// Stored shape of an API key: the secret only as a SHA-256 hash.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "type")]
    kind: String,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    /// The user the key acts as.
    #[serde(rename = "userID")]
    pub user_id: String,
    /// Roles the key carries.
    pub roles: Vec<String>,
    /// When the key was issued.
    pub created_at: String,
    /// When the key stops working (RFC 3339). Never the table's time to live
    /// ([`TTL_ATTRIBUTE`]): a key is refused from then on, and stays listed
    /// until someone removes it; nothing deletes it behind the operator's back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    valid_until: Option<String>,
    /// The expiry as keys written before `validUntil` stored it: in
    /// [`TTL_ATTRIBUTE`], as an RFC 3339 string (which the time to live
    /// ignores), or as epoch seconds were it ever made a number. Read, never
    /// written.
    #[serde(rename = "expiresAt", default, skip_serializing)]
    legacy_expires_at: Option<LegacyExpiry>,
    /// When the key was revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

impl ApiKeyItem {
    /// A new, unrevoked key.
    pub fn new(
        key_id: &str,
        secret_hash: String,
        user_id: String,
        roles: Vec<String>,
        created_at: &Timestamp,
        expires_at: Option<&Timestamp>,
    ) -> Self {
        Self {
            pk: API_KEY_PK.to_owned(),
            sk: format!("{API_KEY_PREFIX}{key_id}"),
            kind: "apiKey".to_owned(),
            secret_hash,
            user_id,
            roles,
            created_at: time::to_seconds(created_at),
            valid_until: expires_at.map(time::to_seconds),
            legacy_expires_at: None,
            revoked_at: None,
        }
    }

    /// When the key stops working, if it ever does: `validUntil`, else the
    /// expiry of a key written before it (`expiresAt`).
    pub fn expires_at(&self) -> Result<Option<Timestamp>, chrono::ParseError> {
        match (&self.valid_until, &self.legacy_expires_at) {
            (Some(text), _) | (None, Some(LegacyExpiry::Text(text))) => parse_time(text).map(Some),
            (None, Some(LegacyExpiry::Seconds(seconds))) => {
                Ok(chrono::DateTime::from_timestamp(*seconds, 0))
            }
            (None, None) => Ok(None),
        }
    }

    /// The key id, from the sort key.
    pub fn key_id(&self) -> &str {
        self.sk.strip_prefix(API_KEY_PREFIX).unwrap_or(&self.sk)
    }
}

/// An API key's expiry under its old name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum LegacyExpiry {
    /// RFC 3339, as every release before `validUntil` wrote it.
    Text(String),
    /// Epoch seconds.
    Seconds(i64),
}

fn parse_time(raw: &str) -> Result<Timestamp, chrono::ParseError> {
    chrono::DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&chrono::Utc))
}

/// The table definition: keys, the members index, the deletions index and the stream.
pub struct TableDefinition;

impl TableDefinition {
    /// Key attributes, all strings.
    pub fn attributes() -> Vec<AttributeDefinition> {
        [PK, SK, LSI1SK, GSI1PK, GSI1SK]
            .into_iter()
            .filter_map(|name| {
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .ok()
            })
            .collect()
    }

    /// Table key schema.
    pub fn key_schema() -> Vec<KeySchemaElement> {
        key_schema(PK, SK)
    }

    /// The members-by-rank local index.
    pub fn local_indexes() -> Vec<LocalSecondaryIndex> {
        LocalSecondaryIndex::builder()
            .index_name(MEMBERS_INDEX)
            .set_key_schema(Some(key_schema(PK, LSI1SK)))
            .projection(all_attributes())
            .build()
            .into_iter()
            .collect()
    }

    /// The deletions index: only customers being deleted have its keys, and
    /// the monitor reads only `deletingSince` from it.
    pub fn global_indexes() -> Vec<GlobalSecondaryIndex> {
        GlobalSecondaryIndex::builder()
            .index_name(DELETING_INDEX.0)
            .set_key_schema(Some(key_schema(DELETING_INDEX.1, GSI1SK)))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::Include)
                    .non_key_attributes(DELETING_SINCE)
                    .build(),
            )
            .build()
            .into_iter()
            .collect()
    }

    /// Items expire at [`TTL_ATTRIBUTE`] (the applied events' ids).
    pub fn time_to_live() -> TimeToLiveSpecification {
        TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(TTL_ATTRIBUTE)
            .build()
            .unwrap_or_else(|_| unreachable!("both fields are set"))
    }

    /// On-demand billing.
    pub fn billing_mode() -> BillingMode {
        BillingMode::PayPerRequest
    }

    /// A stream with old and new images, for the cleanup consumer.
    pub fn stream() -> StreamSpecification {
        StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(StreamViewType::NewAndOldImages)
            .build()
            .unwrap_or_else(|_| unreachable!("stream_enabled is set"))
    }
}

/// The members index projects every attribute: a page is served by it alone.
fn all_attributes() -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::All)
        .build()
}

fn key_schema(hash: &str, range: &str) -> Vec<KeySchemaElement> {
    [(hash, KeyType::Hash), (range, KeyType::Range)]
        .into_iter()
        .filter_map(|(name, kind)| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .ok()
        })
        .collect()
}

/// What a stream record says about a customer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamCustomer {
    /// The record was written in the deleting state.
    Deleting(CustomerId),
    /// The record was removed.
    Removed(CustomerId),
    /// A listing's directory (in this partition) got a change to compact (a
    /// shard's day counts, or a delta a previous release wrote).
    Counted(String),
    /// An audit entry was written (the outbox of the membership events).
    Audited(Box<crate::domain::audit::AuditEntry>),
}

/// The customer-record fields a stream image is read for.
#[derive(Debug, Deserialize)]
struct ImageCustomer {
    #[serde(rename = "type")]
    kind: String,
    id: CustomerId,
    state: CustomerState,
}

/// Reads a stream record: `None` for anything but a customer record entering the
/// deleting state or being removed, a written shard of day counts, a directory
/// delta or a new audit entry.
pub fn stream_customer(
    record: &aws_lambda_events::dynamodb::EventRecord,
) -> Option<StreamCustomer> {
    let image = |item: &serde_dynamo::Item| {
        serde_dynamo::from_item::<_, ImageCustomer>(item.clone())
            .ok()
            .filter(|c| c.kind == "customer")
    };
    match record.event_name.as_str() {
        "REMOVE" => image(&record.change.old_image).map(|c| StreamCustomer::Removed(c.id)),
        "INSERT" if is_kind(&record.change.new_image, "audit") => {
            serde_dynamo::from_item::<_, AuditItem>(record.change.new_image.clone())
                .ok()
                .and_then(|i| i.into_entry().ok())
                .map(|e| StreamCustomer::Audited(Box::new(e)))
        }
        "INSERT" | "MODIFY" if is_kind(&record.change.new_image, "tally") => {
            match record.change.keys.get(PK) {
                Some(serde_dynamo::AttributeValue::S(pk)) => {
                    Some(StreamCustomer::Counted(pk.clone()))
                }
                _ => None,
            }
        }
        "INSERT" if is_kind(&record.change.new_image, "delta") => {
            match record.change.keys.get(PK) {
                Some(serde_dynamo::AttributeValue::S(pk)) => {
                    Some(StreamCustomer::Counted(pk.clone()))
                }
                _ => None,
            }
        }
        "INSERT" | "MODIFY" => image(&record.change.new_image)
            .filter(|c| c.state == CustomerState::Deleting)
            .map(|c| StreamCustomer::Deleting(c.id)),
        _ => None,
    }
}

fn is_kind(image: &serde_dynamo::Item, kind: &str) -> bool {
    matches!(image.get("type"), Some(serde_dynamo::AttributeValue::S(t)) if t == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_is_in_every_listing_its_values_open_or_match() {
        let pro = TierName::parse("pro").unwrap();
        let keys: Vec<String> = Listing::of(&pro, SubscriptionStatus::PastDue)
            .iter()
            .map(Listing::key)
            .collect();
        assert_eq!(
            keys,
            [
                "CUSTOMERS",
                "CUSTOMERS#tierName=pro",
                "CUSTOMERS#status=past_due",
                "CUSTOMERS#tierName=pro#status=past_due",
            ]
        );
        let filtered = Listing::for_filters(Some(pro), Some(SubscriptionStatus::PastDue));
        assert_eq!(filtered.entries_pk(), format!("LIST#{}", keys[3]));
        assert_eq!(filtered.index_pk(), format!("INDEX#{}", keys[3]));
        assert_eq!(Listing::all().key(), "CUSTOMERS");
    }

    #[test]
    fn a_replacement_is_conditioned_on_the_revision_and_tier_owner_read() {
        // GIVEN a record as read, first without a revision or tier owner
        let mut c = Customer::sample();
        // THEN the condition is that neither has appeared since
        let (expr, values) = provenance_as_read(&c);
        assert_eq!(
            expr,
            "attribute_not_exists(#platformVersion) AND attribute_not_exists(#tierSource)"
        );
        assert!(values.is_empty());
        // AND with both read, that both are still as read
        c.platform_version = Some(7);
        c.tier_source = Some(TierSource::Stripe);
        let (expr, values) = provenance_as_read(&c);
        assert_eq!(
            expr,
            "#platformVersion = :readPlatformVersion AND #tierSource = :readTierSource"
        );
        assert_eq!(
            values,
            vec![
                (":readPlatformVersion", AttributeValue::N("7".into())),
                (":readTierSource", s("stripe")),
            ]
        );
        // AND every name the expressions use is defined
        for name in ["#platformVersion", "#tierSource", "#expires"] {
            assert!(names().contains_key(name), "{name}");
        }
    }
}
