//! The single table: key formats, index names, item shapes and expressions.
//!
//! Nothing outside this module knows an attribute name or a key format.
//!
//! | item        | PK                | SK            | LSI1SK                          | GSI keys                          |
//! |-------------|-------------------|---------------|---------------------------------|-----------------------------------|
//! | customer    | `CUSTOMER#<id>`   | `CUSTOMER`    | `#`                             | GSI1PK..GSI4PK + GSI1SK while active |
//! | customer, deleting | `CUSTOMER#<id>` | `CUSTOMER` | `#`                        | GSI1PK `DELETING`, GSI1SK `<deletingSince>#<id>` |
//! | member      | `CUSTOMER#<id>`   | `MEMBER#<uid>`| `MEMBER#<rank>#<joinedAt>#<uid>`| -                                 |
//! | membership  | `USER#<uid>`      | `MEMBERSHIP`  | -                               | -                                 |
//! | counter     | `COUNTER`         | listing key   | -                               | one GSInPK + GSI1SK `#COUNT`      |
//! | api key     | `APIKEY`          | `APIKEY#<keyId>` | -                            | -                                 |

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType,
    StreamSpecification, StreamViewType,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{
    Customer, CustomerId, CustomerState, Member, NewCustomer, Role, SubscriptionStatus, TierName,
    Timestamp, UserId, time,
};

/// A DynamoDB item or key.
pub type Item = HashMap<String, AttributeValue>;

/// Partition key attribute.
pub const PK: &str = "PK";
/// Sort key attribute.
pub const SK: &str = "SK";
/// Sort key of the members-by-rank local index.
pub const LSI1SK: &str = "LSI1SK";
/// Sort key shared by the four customer listing indexes.
pub const GSI1SK: &str = "GSI1SK";

/// Local index listing a customer's record first, then its members by rank and join time.
pub const MEMBERS_INDEX: &str = "LSI1";
/// The customer listing indexes (name, partition key attribute), all sorted by `GSI1SK`:
/// every customer, by status, by tier, by tier and status.
pub const LISTING_INDEXES: [(&str, &str); 4] = [
    ("GSI1", "GSI1PK"),
    ("GSI2", "GSI2PK"),
    ("GSI3", "GSI3PK"),
    ("GSI4", "GSI4PK"),
];
/// `GSI1SK` of a counter: sorts before every `createdAt#id`.
const COUNTER_SORT: &str = "#COUNT";
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
/// Condition: the member exists and is not the owner.
pub const MEMBER_REMOVABLE: &str = "attribute_exists(#pk) AND #role <> :owner";
/// Condition: the membership item exists.
pub const EXISTS: &str = "attribute_exists(#pk)";
/// Condition: the user's membership points at `:customer`.
pub const MEMBERSHIP_OF: &str = "#customer = :customer";
/// Update: change `memberCount` by `:delta`.
pub const ADD_MEMBERS: &str = "ADD #members :delta";
/// Update: change a counter by `:delta`, (re)writing its index keys.
pub fn counter_update(index_pk: &str) -> String {
    format!("ADD #count :delta SET {index_pk} = :listing, {GSI1SK} = :countsort, #type = :ctype")
}
/// Update: mark a customer deleting, drop it from every listing index and put it
/// into GSI1's `DELETING` partition, sorted by when the deletion began
/// (`:deletingpk` = [`DELETING_PARTITION`], `:deletingsk` = [`deleting_sort`]).
pub const MARK_DELETING: &str = "SET #state = :deleting, deletingSince = :now, \
     GSI1PK = :deletingpk, GSI1SK = :deletingsk REMOVE GSI2PK, GSI3PK, GSI4PK";
/// GSI1 partition of the customers being deleted: no listing reads it, and it
/// has no counter; the record's final delete takes the customer out of it.
pub const DELETING_PARTITION: &str = "DELETING";
/// Index holding [`DELETING_PARTITION`].
pub const DELETING_INDEX: (&str, &str) = LISTING_INDEXES[0];
/// `GSI1SK` of a deleting customer: its `deletingSince` (RFC 3339 with
/// milliseconds, fixed width) then its id, so the oldest deletion sorts first.
pub fn deleting_sort(since: &str, id: &CustomerId) -> String {
    format!("{since}#{id}")
}
/// Projection of a deletion backlog query: when each deletion began.
pub const DELETING_SINCE: &str = "deletingSince";
/// Update: revoke an API key.
pub const REVOKE: &str = "SET #revoked = :now";
/// Key condition: one partition.
pub const IN_PARTITION: &str = "#pk = :pk";
/// Key condition: one partition, sort keys with a prefix.
pub const IN_PARTITION_WITH_PREFIX: &str = "#pk = :pk AND begins_with(#sk, :prefix)";
/// `SK` prefix of member items.
pub const MEMBER_PREFIX: &str = "MEMBER#";

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

/// A customer listing: which index, and which partition of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// Every active customer.
    All,
    /// Active customers in one subscription status.
    Status(SubscriptionStatus),
    /// Active customers on one tier.
    Tier(TierName),
    /// Active customers on one tier in one status.
    TierStatus(TierName, SubscriptionStatus),
}

impl Listing {
    /// The listing for optional filters.
    pub fn for_filters(tier: Option<TierName>, status: Option<SubscriptionStatus>) -> Self {
        match (tier, status) {
            (None, None) => Self::All,
            (None, Some(s)) => Self::Status(s),
            (Some(t), None) => Self::Tier(t),
            (Some(t), Some(s)) => Self::TierStatus(t, s),
        }
    }

    /// The four listings a customer appears in.
    pub fn of(tier: &TierName, status: SubscriptionStatus) -> [Self; 4] {
        [
            Self::All,
            Self::Status(status),
            Self::Tier(tier.clone()),
            Self::TierStatus(tier.clone(), status),
        ]
    }

    fn slot(&self) -> usize {
        match self {
            Self::All => 0,
            Self::Status(_) => 1,
            Self::Tier(_) => 2,
            Self::TierStatus(..) => 3,
        }
    }

    /// Index that serves this listing.
    pub fn index(&self) -> &'static str {
        LISTING_INDEXES[self.slot()].0
    }

    /// Partition key attribute of that index.
    pub fn index_pk(&self) -> &'static str {
        LISTING_INDEXES[self.slot()].1
    }

    /// Partition key value in that index.
    pub fn partition(&self) -> String {
        match self {
            Self::All => "CUSTOMERS".to_owned(),
            Self::Status(s) => format!("STATUS#{}", s.as_str()),
            Self::Tier(t) => format!("TIER#{t}"),
            Self::TierStatus(t, s) => format!("TIER#{t}#STATUS#{}", s.as_str()),
        }
    }

    /// Key of the counter holding this listing's total.
    pub fn counter_key(&self) -> Item {
        key("COUNTER".to_owned(), &self.partition())
    }
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
    #[serde(rename = "GSI2PK", default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(rename = "GSI3PK", default, skip_serializing_if = "Option::is_none")]
    gsi3pk: Option<String>,
    #[serde(rename = "GSI4PK", default, skip_serializing_if = "Option::is_none")]
    gsi4pk: Option<String>,
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
}

impl CustomerItem {
    /// The record of a new, active customer with no members yet.
    pub fn new(c: &NewCustomer) -> Self {
        let [all, status, tier, tier_status] = Listing::of(&c.tier_name, c.subscription_status);
        Self {
            pk: customer_pk(&c.id),
            sk: "CUSTOMER".to_owned(),
            kind: "customer".to_owned(),
            lsi1sk: CUSTOMER_RANK_SORT.to_owned(),
            gsi1pk: Some(all.partition()),
            gsi2pk: Some(status.partition()),
            gsi3pk: Some(tier.partition()),
            gsi4pk: Some(tier_status.partition()),
            gsi1sk: Some(format!("{}#{}", time::to_seconds(&c.created_at), c.id)),
            id: c.id,
            name: c.name.clone(),
            tier_name: c.tier_name.clone(),
            tier_id: c.tier_id,
            subscription_status: c.subscription_status,
            member_count: 0,
            created_at: time::to_seconds(&c.created_at),
            owner_user_id: c.owner_user_id,
            state: CustomerState::Active,
            deleting_since: None,
            stripe_customer_id: c.stripe_customer_id.clone(),
            stripe_subscription_id: c.stripe_subscription_id.clone(),
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
}

impl MembershipItem {
    /// The membership of `user` in `customer`.
    pub fn new(customer: &CustomerId, user: &UserId, role: Role) -> Self {
        Self {
            pk: user_pk(user),
            sk: MEMBERSHIP_SK.to_owned(),
            kind: "membership".to_owned(),
            customer_id: *customer,
            role,
        }
    }
}

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
    /// When the key stops working, if it ever does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
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
            expires_at: expires_at.map(time::to_seconds),
            revoked_at: None,
        }
    }

    /// The key id, from the sort key.
    pub fn key_id(&self) -> &str {
        self.sk.strip_prefix(API_KEY_PREFIX).unwrap_or(&self.sk)
    }
}

/// The total held by a counter item, 0 when the item does not exist.
pub fn counter_value(item: &Item) -> u64 {
    match item.get("count") {
        Some(AttributeValue::N(raw)) => raw.parse::<i64>().map_or(0, |n| n.max(0) as u64),
        _ => 0,
    }
}

/// Whether an index entry is a counter rather than a customer.
pub fn is_counter(item: &Item) -> bool {
    matches!(item.get("type"), Some(AttributeValue::S(t)) if t == "counter")
}

/// Expression values of a counter update.
pub fn counter_values(listing: &Listing, delta: i64) -> [(&'static str, AttributeValue); 4] {
    [
        (":delta", n(delta)),
        (":listing", s(listing.partition())),
        (":countsort", s(COUNTER_SORT)),
        (":ctype", s("counter")),
    ]
}

fn parse_time(raw: &str) -> Result<Timestamp, chrono::ParseError> {
    chrono::DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&chrono::Utc))
}

/// The table definition: keys, the members index, the four listing indexes and the stream.
pub struct TableDefinition;

impl TableDefinition {
    /// Key attributes, all strings.
    pub fn attributes() -> Vec<AttributeDefinition> {
        [PK, SK, LSI1SK, GSI1SK]
            .into_iter()
            .chain(LISTING_INDEXES.map(|(_, pk)| pk))
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

    /// The four customer listing indexes.
    pub fn global_indexes() -> Vec<GlobalSecondaryIndex> {
        LISTING_INDEXES
            .into_iter()
            .filter_map(|(index, pk)| {
                GlobalSecondaryIndex::builder()
                    .index_name(index)
                    .set_key_schema(Some(key_schema(pk, GSI1SK)))
                    .projection(all_attributes())
                    .build()
                    .ok()
            })
            .collect()
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

/// Indexes project every attribute: a listing page is served by the index alone.
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
/// deleting state or being removed.
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
        "INSERT" | "MODIFY" => image(&record.change.new_image)
            .filter(|c| c.state == CustomerState::Deleting)
            .map(|c| StreamCustomer::Deleting(c.id)),
        _ => None,
    }
}
