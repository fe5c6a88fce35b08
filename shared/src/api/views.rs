//! Response bodies, exactly the spec's fields (and the extensions' own).

use serde::Serialize;
use uuid::Uuid;

use crate::domain::audit::{Action, Actor, AuditEntry, Changes};
use crate::domain::{
    Customer, CustomerId, Member, Membership, Role, SubscriptionStatus, TierName, UserId, time,
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

/// What a page of a listing says besides its items.
#[derive(Debug, Serialize)]
pub struct PageInfo {
    /// Total items across all pages.
    pub items: u64,
    /// Total pages.
    pub pages: u64,
    /// Cursor of the page after this one, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A page of customers.
#[derive(Debug, Serialize)]
pub struct CustomerList<'a> {
    /// Summaries on this page.
    pub customers: Vec<CustomerSummary<'a>>,
    /// Totals and the next page's cursor.
    #[serde(flatten)]
    pub page: PageInfo,
}

/// A page of members.
#[derive(Debug, Serialize)]
pub struct MemberList {
    /// Members on this page.
    pub members: Vec<MemberView>,
    /// Totals and the next page's cursor.
    #[serde(flatten)]
    pub page: PageInfo,
}

/// A member after a role change.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRoleView {
    #[serde(rename = "userID")]
    user_id: UserId,
    role: Role,
    joined_at: String,
}

impl From<&Member> for MemberRoleView {
    fn from(m: &Member) -> Self {
        Self {
            user_id: m.user_id,
            role: m.role,
            joined_at: time::to_seconds(&m.joined_at),
        }
    }
}

/// The customer a user belongs to.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipView {
    #[serde(rename = "customerID")]
    customer_id: CustomerId,
    role: Role,
    joined_at: String,
}

impl From<&Membership> for MembershipView {
    fn from(m: &Membership) -> Self {
        Self {
            customer_id: m.customer_id,
            role: m.role,
            joined_at: time::to_seconds(&m.joined_at),
        }
    }
}

/// One audit entry.
#[derive(Debug, Serialize)]
pub struct AuditView<'a> {
    id: Uuid,
    action: Action,
    at: String,
    actor: &'a Actor,
    #[serde(rename = "requestID")]
    request_id: Option<&'a str>,
    #[serde(rename = "customerID")]
    customer_id: CustomerId,
    #[serde(rename = "userID", skip_serializing_if = "Option::is_none")]
    user_id: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    changes: &'a Changes,
}

impl<'a> From<&'a AuditEntry> for AuditView<'a> {
    fn from(e: &'a AuditEntry) -> Self {
        Self {
            id: e.id,
            action: e.action,
            at: time::to_millis(&e.at),
            actor: &e.origin.actor,
            request_id: e.origin.request_id.as_deref(),
            customer_id: e.customer_id,
            user_id: e.user_id,
            role: e.role,
            changes: &e.changes,
        }
    }
}

/// A page of audit entries.
#[derive(Debug, Serialize)]
pub struct AuditList<'a> {
    /// Entries on this page, newest first.
    pub events: Vec<AuditView<'a>>,
    /// Totals and the next page's cursor.
    #[serde(flatten)]
    pub page: PageInfo,
}
