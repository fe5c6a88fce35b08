use uuid::Uuid;

use super::{CustomerId, Role, SubscriptionStatus, TierName, TierSource, Timestamp, UserId};

/// A customer's display name as given: 1 to 200 characters once trimmed;
/// returns it trimmed, or why not.
pub fn customer_name(raw: &str) -> Result<&str, &'static str> {
    let name = raw.trim();
    if (1..=200).contains(&name.chars().count()) {
        Ok(name)
    } else {
        Err("name must be 1 to 200 characters")
    }
}

/// Lifecycle of a customer record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CustomerState {
    /// Visible and open to new members.
    Active,
    /// The deletion cascade has started: hidden, closed to new members.
    Deleting,
}

/// A customer account as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// Customer UUID.
    pub id: CustomerId,
    /// Display name.
    pub name: String,
    /// Current subscription tier name.
    pub tier_name: TierName,
    /// Current subscription tier UUID.
    pub tier_id: Uuid,
    /// Stripe subscription status.
    pub subscription_status: SubscriptionStatus,
    /// Members currently on the account, kept exact by every membership write.
    pub member_count: u64,
    /// When the customer was created.
    pub created_at: Timestamp,
    /// Account owner; the zero UUID for an orphaned customer.
    pub owner_user_id: UserId,
    /// Active or being deleted.
    pub state: CustomerState,
    /// When the deletion cascade started, if it did.
    pub deleting_since: Option<Timestamp>,
    /// The Stripe customer (`cus_...`), when billing exists.
    pub stripe_customer_id: Option<String>,
    /// The Stripe subscription (`sub_...`), when one exists.
    pub stripe_subscription_id: Option<String>,
    /// The ordering key of the last billing event applied (`store::Version`).
    pub billing_version: Option<String>,
    /// When Stripe reported the customer's billing deleted (someone deleted the
    /// Stripe customer): the record stays, without Stripe ids.
    pub billing_gone_at: Option<Timestamp>,
    /// The platform's revision of the customer last applied (its events'
    /// `version`): an event with a version at or below it changes nothing.
    pub platform_version: Option<u64>,
    /// Who owns the tier (see [`TierSource`]); `None` on records written before
    /// the marker was kept.
    pub tier_source: Option<TierSource>,
}

/// What it takes to create a customer (seeding and fixtures).
#[derive(Debug, Clone, PartialEq)]
pub struct NewCustomer {
    /// Customer UUID.
    pub id: CustomerId,
    /// Display name.
    pub name: String,
    /// Subscription tier name.
    pub tier_name: TierName,
    /// Subscription tier UUID.
    pub tier_id: Uuid,
    /// Stripe subscription status.
    pub subscription_status: SubscriptionStatus,
    /// Creation instant.
    pub created_at: Timestamp,
    /// Account owner; the zero UUID for an orphaned customer.
    pub owner_user_id: UserId,
    /// The Stripe customer, when one was created.
    pub stripe_customer_id: Option<String>,
    /// The Stripe subscription, when one was created.
    pub stripe_subscription_id: Option<String>,
}

/// One membership of a user in a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// UUID of this membership (role assignment).
    pub role_id: Uuid,
    /// The member's user UUID.
    pub user_id: UserId,
    /// The member's role.
    pub role: Role,
    /// When the user joined.
    pub joined_at: Timestamp,
}

/// The customer a user belongs to (a user belongs to at most one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The customer.
    pub customer_id: CustomerId,
    /// The user's role there.
    pub role: Role,
    /// When the user joined.
    pub joined_at: Timestamp,
}

#[cfg(test)]
impl Customer {
    /// An active "Acme" on the `pro` tier, created now, with a random owner
    /// and no Stripe ids: the record unit tests start from.
    pub(crate) fn sample() -> Self {
        Self::from(&NewCustomer {
            id: CustomerId::random(),
            name: "Acme".into(),
            tier_name: TierName::parse("pro").unwrap_or_else(|e| panic!("{e}")),
            tier_id: Uuid::nil(),
            subscription_status: SubscriptionStatus::Active,
            created_at: super::now(),
            owner_user_id: UserId::random(),
            stripe_customer_id: None,
            stripe_subscription_id: None,
        })
    }
}

impl From<&NewCustomer> for Customer {
    /// The customer a new one becomes: active, with no members yet.
    fn from(c: &NewCustomer) -> Self {
        Self {
            id: c.id,
            name: c.name.clone(),
            tier_name: c.tier_name.clone(),
            tier_id: c.tier_id,
            subscription_status: c.subscription_status,
            member_count: 0,
            created_at: c.created_at,
            owner_user_id: c.owner_user_id,
            state: CustomerState::Active,
            deleting_since: None,
            stripe_customer_id: c.stripe_customer_id.clone(),
            stripe_subscription_id: c.stripe_subscription_id.clone(),
            billing_version: None,
            billing_gone_at: None,
            platform_version: None,
            tier_source: None,
        }
    }
}
