//! Response bodies, exactly the spec's fields.

use serde::Serialize;
use uuid::Uuid;

use crate::domain::{
    Customer, CustomerId, Member, Role, SubscriptionStatus, TierName, UserId, time,
};

/// One customer in a list.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerSummary<'a> {
    id: CustomerId,
    name: &'a str,
    tier_name: &'a TierName,
    subscription_status: SubscriptionStatus,
    member_count: u64,
    created_at: String,
    #[serde(rename = "ownerUserID")]
    owner_user_id: UserId,
}

impl<'a> From<&'a Customer> for CustomerSummary<'a> {
    fn from(c: &'a Customer) -> Self {
        Self {
            id: c.id,
            name: &c.name,
            tier_name: &c.tier_name,
            subscription_status: c.subscription_status,
            member_count: c.member_count,
            created_at: time::to_seconds(&c.created_at),
            owner_user_id: c.owner_user_id,
        }
    }
}

/// The full administrative record.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerDetail<'a> {
    id: CustomerId,
    name: &'a str,
    created_at: String,
    tier_name: &'a TierName,
    #[serde(rename = "tierID")]
    tier_id: Uuid,
    subscription_status: SubscriptionStatus,
    member_count: u64,
    #[serde(rename = "ownerUserID")]
    owner_user_id: UserId,
}

impl<'a> From<&'a Customer> for CustomerDetail<'a> {
    fn from(c: &'a Customer) -> Self {
        Self {
            id: c.id,
            name: &c.name,
            created_at: time::to_seconds(&c.created_at),
            tier_name: &c.tier_name,
            tier_id: c.tier_id,
            subscription_status: c.subscription_status,
            member_count: c.member_count,
            owner_user_id: c.owner_user_id,
        }
    }
}

/// One member in a list.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    #[serde(rename = "roleID")]
    role_id: Uuid,
    #[serde(rename = "userID")]
    user_id: UserId,
    role: Role,
    joined_at: String,
}

impl From<&Member> for MemberView {
    fn from(m: &Member) -> Self {
        Self {
            role_id: m.role_id,
            user_id: m.user_id,
            role: m.role,
            joined_at: time::to_seconds(&m.joined_at),
        }
    }
}

/// A page of customers.
#[derive(Debug, Serialize)]
pub struct CustomerList<'a> {
    /// Summaries on this page.
    pub customers: Vec<CustomerSummary<'a>>,
    /// Total matching.
    pub items: u64,
    /// Total pages.
    pub pages: u64,
    /// Cursor of the page after this one, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A page of members.
#[derive(Debug, Serialize)]
pub struct MemberList {
    /// Members on this page.
    pub members: Vec<MemberView>,
    /// Total members.
    pub items: u64,
    /// Total pages.
    pub pages: u64,
    /// Cursor of the page after this one, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}
