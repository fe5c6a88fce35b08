//! Stored shapes of the items: customer records, listing entries, members,
//! memberships, API keys and the lookup and event items.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{
    Customer, CustomerId, CustomerState, Member, NewCustomer, Role, SubscriptionStatus, TierName,
    TierSource, Timestamp, UserId, time,
};

use super::keys::{
    API_KEY_PK, API_KEY_PREFIX, CUSTOMER_RANK_SORT, CUSTOMER_SK, Item, MEMBER_PREFIX,
    MEMBERSHIP_SK, TTL_ATTRIBUTE, TYPE, applied_event_key, customer_pk, n, reindexed_key, s,
    stripe_customer_key, user_pk,
};
use super::listing::{Listing, entry_sort};

/// The kind (`type`) of a customer record.
pub const CUSTOMER_KIND: &str = "customer";

/// The item marking the table reindexed (`doneAt`: when).
pub fn reindexed_item(at: &Timestamp) -> Item {
    let mut item = reindexed_key();
    item.insert(TYPE.to_owned(), s("migration"));
    item.insert("doneAt".to_owned(), s(time::to_seconds(at)));
    item
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

/// The item recording that an event (`source`: `stripe`, `platform`) was
/// applied, kept until `expires` (epoch seconds; the table's TTL attribute).
pub fn applied_event_item(source: &str, event_id: &str, expires: i64) -> Item {
    let mut item = applied_event_key(source, event_id);
    item.insert("type".to_owned(), s("appliedEvent"));
    item.insert(TTL_ATTRIBUTE.to_owned(), n(expires));
    item
}

/// The key and kind every item begins with (flattened into each stored shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Header {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "type")]
    kind: String,
}

impl Header {
    /// The header of an item of `kind` at `pk`, `sk`.
    pub(super) fn new(pk: String, sk: impl Into<String>, kind: &str) -> Self {
        Self {
            pk,
            sk: sk.into(),
            kind: kind.to_owned(),
        }
    }

    /// The item's sort key.
    pub(super) fn sk(&self) -> &str {
        &self.sk
    }
}

/// The fields of a customer that its record and its listing entries both hold.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomerFields {
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

impl CustomerFields {
    fn of(c: &Customer) -> Self {
        Self {
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

    /// The customer these fields describe: active, no billing ids.
    fn into_customer(self) -> Result<Customer, chrono::ParseError> {
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

/// Stored shape of a listing entry: what a listing page shows of a customer.
#[derive(Debug, Serialize, Deserialize)]
pub struct EntryItem {
    #[serde(flatten)]
    header: Header,
    #[serde(flatten)]
    fields: CustomerFields,
}

impl EntryItem {
    /// The entry of `customer` in `listing`.
    pub fn new(listing: &Listing, c: &Customer) -> Self {
        Self {
            header: Header::new(
                listing.entries_pk(),
                entry_sort(&c.created_at, &c.id),
                "entry",
            ),
            fields: CustomerFields::of(c),
        }
    }

    /// The customer as the listing shows it (active, no billing ids).
    pub fn into_customer(self) -> Result<Customer, chrono::ParseError> {
        self.fields.into_customer()
    }
}

/// Stored shape of a customer record.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerItem {
    #[serde(flatten)]
    header: Header,
    #[serde(rename = "LSI1SK")]
    lsi1sk: String,
    #[serde(rename = "GSI1PK", default, skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(rename = "GSI1SK", default, skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<String>,
    #[serde(flatten)]
    fields: CustomerFields,
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
            header: Header::new(customer_pk(&c.id), CUSTOMER_SK, CUSTOMER_KIND),
            lsi1sk: CUSTOMER_RANK_SORT.to_owned(),
            gsi1pk: None,
            gsi1sk: None,
            fields: CustomerFields::of(c),
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
        matches!(item.get(TYPE), Some(AttributeValue::S(t)) if t == CUSTOMER_KIND)
    }

    /// The domain value.
    pub fn into_customer(self) -> Result<Customer, chrono::ParseError> {
        Ok(Customer {
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
            ..self.fields.into_customer()?
        })
    }
}

/// Stored shape of a member item (in the customer's partition).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberItem {
    #[serde(flatten)]
    header: Header,
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
            header: Header::new(
                customer_pk(customer),
                format!("{MEMBER_PREFIX}{}", member.user_id),
                "member",
            ),
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
    #[serde(flatten)]
    header: Header,
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
            header: Header::new(user_pk(&member.user_id), MEMBERSHIP_SK, "membership"),
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

/// Stored shape of an API key: the secret only as a SHA-256 hash.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyItem {
    #[serde(flatten)]
    header: Header,
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
            header: Header::new(
                API_KEY_PK.to_owned(),
                format!("{API_KEY_PREFIX}{key_id}"),
                "apiKey",
            ),
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
        let sk = &self.header.sk;
        sk.strip_prefix(API_KEY_PREFIX).unwrap_or(sk)
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

pub(super) fn parse_time(raw: &str) -> Result<Timestamp, chrono::ParseError> {
    chrono::DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&chrono::Utc))
}
