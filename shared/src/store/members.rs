//! Memberships: a member item in the customer's partition (listing, by rank) and a
//! membership item keyed by the user (one customer per user), always written together.

use crate::domain::{CustomerId, CustomerState, Member, PageRequest, Role, UserId};

use super::customers::{decode_customer, unexpected};
use super::table::{
    ADD_MEMBERS, CUSTOMER_ACTIVE, CUSTOMER_DELETING, CustomerItem, EXISTS, MEMBER_PREFIX,
    MEMBER_REMOVABLE, MEMBERS_INDEX, MemberItem, MembershipItem, customer_key, customer_pk,
    member_key, membership_key, n, s,
};
use super::tx::TxError;
use super::{Page, Store, StoreError, Window, observe};

/// Members written per transaction: two items each plus the customer's count, within
/// DynamoDB's 100 actions.
pub const MEMBERS_PER_TRANSACTION: usize = 49;

/// Condition on a membership item being removed with its member item.
const MEMBERSHIP_GONE_OR_OF: &str = "attribute_not_exists(#pk) OR #customer = :customer";

impl Store {
    /// One page of an active customer's members (owner, admins, users, then by join
    /// time) and their total: one strongly consistent query for page 1.
    pub async fn list_members(
        &self,
        customer: &CustomerId,
        page: PageRequest,
    ) -> Result<Page<Member>, StoreError> {
        let span =
            store_span!("list_members", customer = %customer, page = page.page, limit = page.limit);
        observe(span, async {
            let window = Window {
                index: MEMBERS_INDEX,
                partition_attr: super::table::PK,
                partition: customer_pk(customer),
                consistent: true,
                skip: page.offset(),
                take: page.limit,
            };
            let (header, items) = self
                .read_window(window, |i| {
                    CustomerItem::is_one(i).then(|| {
                        serde_dynamo::from_item::<_, CustomerItem>(i.clone())
                            .ok()
                            .and_then(|c| c.into_customer().ok())
                            .map_or(0, |c| c.member_count)
                    })
                })
                .await?;
            let header = header.ok_or(StoreError::CustomerNotFound)?;
            let owner = decode_customer(header)?;
            if owner.state != CustomerState::Active {
                return Err(StoreError::CustomerNotFound);
            }
            let items = items
                .into_iter()
                .map(|i| Ok(serde_dynamo::from_item::<_, MemberItem>(i)?.into_member()?))
                .collect::<Result<_, StoreError>>()?;
            Ok(Page {
                items,
                total: owner.member_count,
            })
        })
        .await
    }

    /// Adds members to an active customer, `MEMBERS_PER_TRANSACTION` per atomic
    /// transaction; each user must not belong to any customer yet.
    pub async fn add_members(
        &self,
        customer: &CustomerId,
        members: &[Member],
    ) -> Result<(), StoreError> {
        let span = store_span!("add_members", customer = %customer, members = members.len());
        observe(span, async {
            for chunk in members.chunks(MEMBERS_PER_TRANSACTION) {
                let mut tx = self.tx().update(
                    "customer",
                    customer_key(customer),
                    ADD_MEMBERS,
                    Some(CUSTOMER_ACTIVE),
                    &[(":delta", n(chunk.len() as i64)), (":active", s("active"))],
                )?;
                for m in chunk {
                    let membership = MembershipItem::new(customer, &m.user_id, m.role);
                    tx = tx.put(
                        "membership",
                        serde_dynamo::to_item(membership)?,
                        super::table::NOT_EXISTS,
                        &[],
                    )?;
                    let member = MemberItem::new(customer, m);
                    tx = tx.put(
                        "member",
                        serde_dynamo::to_item(member)?,
                        super::table::NOT_EXISTS,
                        &[],
                    )?;
                }
                match tx.commit().await {
                    Ok(()) => {}
                    Err(TxError::Cancelled(c)) if c.failed("customer") => {
                        return Err(StoreError::CustomerNotFound);
                    }
                    Err(TxError::Cancelled(c)) if c.failed("membership") || c.failed("member") => {
                        return Err(StoreError::AlreadyMember);
                    }
                    Err(TxError::Cancelled(c)) => return Err(unexpected(&c)),
                    Err(TxError::Store(e)) => return Err(e),
                }
            }
            Ok(())
        })
        .await
    }

    /// Removes a non-owner member from an active customer.
    pub async fn remove_member(
        &self,
        customer: &CustomerId,
        user: &UserId,
    ) -> Result<(), StoreError> {
        let span = store_span!("remove_member", customer = %customer, user = %user);
        observe(span, async {
            let tx = self
                .tx()
                .update(
                    "customer",
                    customer_key(customer),
                    ADD_MEMBERS,
                    Some(CUSTOMER_ACTIVE),
                    &[(":delta", n(-1)), (":active", s("active"))],
                )?
                .delete(
                    "member",
                    member_key(customer, user),
                    MEMBER_REMOVABLE,
                    &[(":owner", s(Role::Owner.as_str()))],
                )?
                .delete(
                    "membership",
                    membership_key(user),
                    super::table::MEMBERSHIP_OF,
                    &[(":customer", s(customer.to_string()))],
                )?;
            match tx.commit().await {
                Ok(()) => Ok(()),
                Err(TxError::Cancelled(c)) if c.failed("customer") => {
                    Err(StoreError::CustomerNotFound)
                }
                // The member is there, so its condition failed on the owner's role.
                Err(TxError::Cancelled(c)) if c.old("member").is_some() => {
                    Err(StoreError::OwnerNotRemovable)
                }
                Err(TxError::Cancelled(c)) if c.failed("member") => Err(StoreError::MemberNotFound),
                Err(TxError::Cancelled(c)) => Err(unexpected(&c)),
                Err(TxError::Store(e)) => Err(e),
            }
        })
        .await
    }

    /// Deletes every member of a deleting customer, `MEMBERS_PER_TRANSACTION` per
    /// transaction, keeping `memberCount` exact; safe to run twice at once.
    /// Returns how many members this call deleted.
    pub async fn delete_all_members(&self, customer: &CustomerId) -> Result<u64, StoreError> {
        let span = store_span!("delete_all_members", customer = %customer);
        observe(span, async {
            let mut deleted = 0;
            let mut lost_races = 0;
            loop {
                let batch = self
                    .query_prefix(
                        customer_pk(customer),
                        MEMBER_PREFIX,
                        MEMBERS_PER_TRANSACTION as i32,
                    )
                    .await?;
                if batch.is_empty() {
                    return Ok(deleted);
                }
                let users = batch
                    .into_iter()
                    .map(|i| Ok(serde_dynamo::from_item::<_, MemberItem>(i)?.user_id()))
                    .collect::<Result<Vec<_>, StoreError>>()?;
                let mut tx = self.tx().update(
                    "customer",
                    customer_key(customer),
                    ADD_MEMBERS,
                    Some(CUSTOMER_DELETING),
                    &[
                        (":delta", n(-(users.len() as i64))),
                        (":deleting", s("deleting")),
                    ],
                )?;
                for user in &users {
                    tx = tx
                        .delete("member", member_key(customer, user), EXISTS, &[])?
                        .delete(
                            "membership",
                            membership_key(user),
                            MEMBERSHIP_GONE_OR_OF,
                            &[(":customer", s(customer.to_string()))],
                        )?;
                }
                match tx.commit().await {
                    Ok(()) => {
                        deleted += users.len() as u64;
                        // A consistent read short of its limit saw every member, and a
                        // deleting customer gains none: no need to query again.
                        if users.len() < MEMBERS_PER_TRANSACTION {
                            return Ok(deleted);
                        }
                    }
                    // A concurrent cascade deleted some of them first: read again.
                    Err(TxError::Cancelled(c)) if !c.failed("customer") && lost_races < 20 => {
                        lost_races += 1
                    }
                    Err(TxError::Cancelled(c)) if c.failed("customer") => {
                        return Err(StoreError::CustomerNotFound);
                    }
                    Err(TxError::Cancelled(c)) => return Err(unexpected(&c)),
                    Err(TxError::Store(e)) => return Err(e),
                }
            }
        })
        .await
    }

    /// The customer a user belongs to and their role there, if any.
    pub async fn membership_of(
        &self,
        user: &UserId,
    ) -> Result<Option<(CustomerId, Role)>, StoreError> {
        observe(store_span!("membership_of", user = %user), async {
            match self.get(membership_key(user)).await? {
                Some(item) => {
                    let m: MembershipItem = serde_dynamo::from_item(item)?;
                    Ok(Some((m.customer_id, m.role)))
                }
                None => Ok(None),
            }
        })
        .await
    }
}
