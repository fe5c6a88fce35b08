//! Memberships: a member item in the customer's partition (listing, by rank) and a
//! membership item keyed by the user (one customer per user), always written
//! together with the customer's count, its listing entries' counts and its
//! members' directory.

use crate::domain::audit::{Action, AuditEntry, Origin};
use crate::domain::{Customer, CustomerId, CustomerState, Member, Membership, Role, UserId, time};

use super::customers::decode_customer;
use super::directory::{Additions, Directory, add_to_directory, slot};
use super::error::StoreError;
use super::handle::Store;
use super::idempotency::Answering;
use super::listing_reader::Place;
use super::observe::observe;
use super::page::Page;
use super::page::PageAt;
use super::retry::{Attempt, optimistic};
use super::table::{
    ADD_ENTRY_MEMBERS, ADD_MEMBERS, CUSTOMER_ACTIVE, CUSTOMER_DELETING, CustomerItem, EXISTS,
    LSI1SK, Listing, MEMBER_IS, MEMBER_PREFIX, MEMBERS_INDEX, MEMBERSHIP_OF, MemberItem,
    MembershipItem, NOT_EXISTS, SET_MEMBERSHIP_ROLE, customer_key, customer_pk, dir, entry_key,
    member_group, member_key, membership_key, n, s,
};
use super::tx::{Tx, TxError, Write};

/// Writes per transaction: DynamoDB's limit.
const MAX_WRITES: usize = 100;

/// Members deleted per transaction by the cascade: two items each plus the
/// customer's count, within DynamoDB's 100 actions.
const DELETES_PER_TRANSACTION: usize = 49;

/// Condition on a membership item being removed with its member item.
const MEMBERSHIP_GONE_OR_OF: &str = "attribute_not_exists(#pk) OR #customer = :customer";

impl Store {
    /// One page of an active customer's members (owner, admins, users, then by
    /// join time) and their total (`memberCount`), strongly consistent: the
    /// customer record with the members' directory, and the members from the
    /// page's slot (at once for page 1 and after a cursor).
    pub async fn list_members(
        &self,
        customer: &CustomerId,
        at: PageAt,
    ) -> Result<Page<Member>, StoreError> {
        let span = store_span!("list_members", customer = %customer, at = ?at);
        observe(span, async {
            let r = Place {
                dir_pk: customer_pk(customer),
                index: Some(MEMBERS_INDEX),
                entries_pk: customer_pk(customer),
                sort_attr: LSI1SK,
                sort_prefix: MEMBER_PREFIX,
                consistent: true,
            };
            let (dir, entries) = match at.reads_from_a_key() {
                true => {
                    let (dir, entries) = tokio::join!(
                        self.read_directory(&r.dir_pk),
                        self.read_entries(&r, None, &at)
                    );
                    (dir?, Some(entries?))
                }
                false => (self.read_directory(&r.dir_pk).await?, None),
            };
            let record = dir
                .iter()
                .find(|i| CustomerItem::is_one(i))
                .cloned()
                .ok_or(StoreError::CustomerNotFound)?;
            let owner = decode_customer(record)?;
            if owner.state != CustomerState::Active {
                return Err(StoreError::CustomerNotFound);
            }
            let entries = match entries {
                Some(e) => e,
                None => {
                    let directory = Directory::from_items(&dir)?;
                    self.read_entries(&r, Some(&directory), &at).await?
                }
            };
            let items = entries
                .items
                .into_iter()
                .map(|i| Ok(serde_dynamo::from_item::<_, MemberItem>(i)?.into_member()?))
                .collect::<Result<_, StoreError>>()?;
            Ok(Page {
                items,
                total: owner.member_count,
                more_after: entries.more_after,
            })
        })
        .await
    }

    /// Adds members to an active customer, as many per atomic transaction as
    /// fit, each with its `member.added` audit entry by `origin`; each user
    /// must not belong to any customer yet.
    pub async fn add_members(
        &self,
        customer: &CustomerId,
        members: &[Member],
        origin: &Origin,
    ) -> Result<(), StoreError> {
        self.add_members_answered(customer, members, origin, None)
            .await
    }

    /// [`Store::add_members`], committing a claimed request's answer in the
    /// transaction of the last members.
    pub async fn add_members_answered(
        &self,
        customer: &CustomerId,
        members: &[Member],
        origin: &Origin,
        answering: Option<&Answering<'_>>,
    ) -> Result<(), StoreError> {
        let span = store_span!("add_members", customer = %customer, members = members.len());
        observe(span, async {
            let mut rest = members;
            let mut listed = true;
            while !rest.is_empty() {
                let (added, now_listed) = optimistic(listed, |listed| async move {
                    let record = self.get_customer(customer).await?;
                    let reserved = usize::from(answering.is_some());
                    let (chunk, add) = fitting(&record, rest, reserved)?;
                    let last = chunk.len() == rest.len();
                    let answer = answering.filter(|_| last);
                    let mut tx = self.change_members(&record, listed, chunk.len() as i64, &add)?;
                    tx = tx.answer(answer, &())?;
                    for m in chunk {
                        let membership = MembershipItem::new(customer, m);
                        tx = tx.put(
                            Write::Membership,
                            serde_dynamo::to_item(membership)?,
                            NOT_EXISTS,
                            &[],
                        )?;
                        let member = MemberItem::new(customer, m);
                        tx = tx.put(
                            Write::Member,
                            serde_dynamo::to_item(member)?,
                            NOT_EXISTS,
                            &[],
                        )?;
                        tx = tx.audit(
                            &AuditEntry::new(Action::MemberAdded, origin, *customer)
                                .member(m.user_id, m.role)
                                .changed("role", None, Some(m.role.as_str())),
                        )?;
                    }
                    match tx.commit().await {
                        Ok(()) => {
                            Answering::committed(answer);
                            Ok(Attempt::Done((chunk.len(), listed)))
                        }
                        Err(TxError::Cancelled(c)) if c.failed(Write::Idempotency) => {
                            Err(StoreError::IdempotencyClaimLost)
                        }
                        Err(TxError::Cancelled(c)) if c.failed(Write::Customer) => {
                            Err(StoreError::CustomerNotFound)
                        }
                        Err(TxError::Cancelled(c))
                            if c.failed(Write::Membership) || c.failed(Write::Member) =>
                        {
                            Err(StoreError::AlreadyMember)
                        }
                        // The customer moved between listings, or is not in them
                        // yet (a table not reindexed): read it again.
                        Err(TxError::Cancelled(c)) if c.failed(Write::Entry) => {
                            Ok(Attempt::Again(self.is_listed(&record).await?))
                        }
                        Err(e) => Err(e.into()),
                    }
                })
                .await?;
                listed = now_listed;
                rest = &rest[added..];
            }
            Ok(())
        })
        .await
    }

    /// Removes a non-owner member from an active customer, with its
    /// `member.removed` audit entry by `origin`.
    pub async fn remove_member(
        &self,
        customer: &CustomerId,
        user: &UserId,
        origin: &Origin,
    ) -> Result<(), StoreError> {
        let span = store_span!("remove_member", customer = %customer, user = %user);
        observe(span, async {
            optimistic(true, |listed| async move {
                let (record, member) = tokio::join!(
                    self.get_customer(customer),
                    self.find_member(customer, user)
                );
                let (record, member) = (record?, member?.ok_or(StoreError::MemberNotFound)?);
                if member.role == Role::Owner {
                    return Err(StoreError::OwnerNotRemovable);
                }
                let add = Additions::of([(member_slot(&member).as_str(), -1)])?;
                let tx = self
                    .change_members(&record, listed, -1, &add)?
                    .delete(
                        Write::Member,
                        member_key(customer, user),
                        MEMBER_IS,
                        &[(":role", s(member.role.as_str()))],
                    )?
                    .delete(
                        Write::Membership,
                        membership_key(user),
                        MEMBERSHIP_OF,
                        &[(":customer", s(customer.to_string()))],
                    )?
                    .audit(
                        &AuditEntry::new(Action::MemberRemoved, origin, *customer)
                            .member(*user, member.role)
                            .changed("role", Some(member.role.as_str()), None),
                    )?;
                match tx.commit().await {
                    Ok(()) => Ok(Attempt::Done(())),
                    Err(TxError::Cancelled(c)) if c.failed(Write::Customer) => {
                        Err(StoreError::CustomerNotFound)
                    }
                    // Removed (or changed) since it was read: look again.
                    Err(TxError::Cancelled(c)) if c.failed(Write::Member) => {
                        Ok(Attempt::Again(listed))
                    }
                    Err(TxError::Cancelled(c)) if c.failed(Write::Entry) => {
                        Ok(Attempt::Again(self.is_listed(&record).await?))
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .await
        })
        .await
    }

    /// Changes a non-owner member's role in an active customer, with its
    /// `member.role_changed` audit entry by `origin`, in one transaction: the
    /// member item (its place in the members listing), the user's membership
    /// and the members directory (one out of the old role's group, one into
    /// the new one). The member count does not change. Returns the member;
    /// asking for the role it has changes nothing.
    pub async fn change_member_role(
        &self,
        customer: &CustomerId,
        user: &UserId,
        role: Role,
        origin: &Origin,
    ) -> Result<Member, StoreError> {
        self.change_member_role_answered(customer, user, role, origin, None)
            .await
    }

    /// [`Store::change_member_role`], committing a claimed request's answer
    /// (of the changed member) in the transaction of the change.
    pub async fn change_member_role_answered(
        &self,
        customer: &CustomerId,
        user: &UserId,
        role: Role,
        origin: &Origin,
        answering: Option<&Answering<'_, Member>>,
    ) -> Result<Member, StoreError> {
        let span = store_span!("change_member_role", customer = %customer, user = %user);
        observe(span, async {
            optimistic((), |()| async move {
                let (record, member) = tokio::join!(
                    self.get_customer(customer),
                    self.find_member(customer, user)
                );
                let (_, member) = (record?, member?.ok_or(StoreError::MemberNotFound)?);
                if member.role == Role::Owner {
                    return Err(StoreError::OwnerRoleChange);
                }
                if member.role == role {
                    return Ok(Attempt::Done(member));
                }
                let changed = Member { role, ..member };
                let add = Additions::of([
                    (member_slot(&member).as_str(), -1),
                    (member_slot(&changed).as_str(), 1),
                ])?;
                let tx = self
                    .tx()
                    .check(
                        Write::Customer,
                        customer_key(customer),
                        CUSTOMER_ACTIVE,
                        &[(":active", s("active"))],
                    )?
                    .put(
                        Write::Member,
                        serde_dynamo::to_item(MemberItem::new(customer, &changed))?,
                        MEMBER_IS,
                        &[(":role", s(member.role.as_str()))],
                    )?
                    .update(
                        Write::Membership,
                        membership_key(user),
                        SET_MEMBERSHIP_ROLE,
                        Some(MEMBERSHIP_OF),
                        &[
                            (":customer", s(customer.to_string())),
                            (":role", s(role.as_str())),
                            (":joined", s(time::to_millis(&changed.joined_at))),
                        ],
                    )?
                    .audit(
                        &AuditEntry::new(Action::MemberRoleChanged, origin, *customer)
                            .member(*user, role)
                            .changed("role", Some(member.role.as_str()), Some(role.as_str())),
                    )?;
                let tx = add_to_directory(tx, &customer_pk(customer), &add)?
                    .answer(answering, &changed)?;
                match tx.commit().await {
                    Ok(()) => {
                        Answering::committed(answering);
                        Ok(Attempt::Done(changed))
                    }
                    Err(TxError::Cancelled(c)) if c.failed(Write::Idempotency) => {
                        Err(StoreError::IdempotencyClaimLost)
                    }
                    Err(TxError::Cancelled(c)) if c.failed(Write::Customer) => {
                        Err(StoreError::CustomerNotFound)
                    }
                    // Removed or changed since it was read: look again.
                    Err(TxError::Cancelled(c)) if c.failed(Write::Member) => Ok(Attempt::Again(())),
                    Err(e) => Err(e.into()),
                }
            })
            .await
        })
        .await
    }

    /// A member of a customer, read strongly consistent.
    async fn find_member(
        &self,
        customer: &CustomerId,
        user: &UserId,
    ) -> Result<Option<Member>, StoreError> {
        match self.get(member_key(customer, user)).await? {
            Some(item) => Ok(Some(
                serde_dynamo::from_item::<_, MemberItem>(item)?.into_member()?,
            )),
            None => Ok(None),
        }
    }

    /// A transaction changing an active customer's member count by `delta`: its
    /// record, its listing entries (when it is `listed`) and its members'
    /// directory (`add`).
    fn change_members(
        &self,
        record: &Customer,
        listed: bool,
        delta: i64,
        add: &Additions,
    ) -> Result<Tx<'_>, StoreError> {
        let mut tx = self.tx().update(
            Write::Customer,
            customer_key(&record.id),
            ADD_MEMBERS,
            Some(CUSTOMER_ACTIVE),
            &[(":delta", n(delta)), (":active", s("active"))],
        )?;
        let listings = match listed {
            true => Listing::of(record),
            false => Vec::new(),
        };
        for listing in listings {
            tx = tx.update(
                Write::Entry,
                entry_key(&listing, &record.created_at, &record.id),
                ADD_ENTRY_MEMBERS,
                Some(EXISTS),
                &[(":delta", n(delta))],
            )?;
        }
        add_to_directory(tx, &customer_pk(&record.id), add)
    }

    /// Deletes every member of a deleting customer, `DELETES_PER_TRANSACTION`
    /// per transaction, keeping `memberCount` exact, then the members'
    /// directory; safe to run twice at once. Returns how many members this
    /// call deleted.
    pub async fn delete_all_members(&self, customer: &CustomerId) -> Result<u64, StoreError> {
        let span = store_span!("delete_all_members", customer = %customer);
        observe(span, async {
            let deleted = self.delete_members(customer).await?;
            self.delete_directory(customer).await?;
            Ok(deleted)
        })
        .await
    }

    async fn delete_members(&self, customer: &CustomerId) -> Result<u64, StoreError> {
        let mut deleted = 0;
        let mut lost_races = 0;
        loop {
            let batch = self
                .query_prefix(
                    customer_pk(customer),
                    MEMBER_PREFIX,
                    DELETES_PER_TRANSACTION as i32,
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
                Write::Customer,
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
                    .delete(Write::Member, member_key(customer, user), EXISTS, &[])?
                    .delete(
                        Write::Membership,
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
                    if users.len() < DELETES_PER_TRANSACTION {
                        return Ok(deleted);
                    }
                }
                // A concurrent cascade deleted some of them first: read again.
                Err(TxError::Cancelled(c)) if !c.failed(Write::Customer) && lost_races < 20 => {
                    lost_races += 1
                }
                Err(TxError::Cancelled(c)) if c.failed(Write::Customer) => {
                    return Err(StoreError::CustomerNotFound);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Deletes the members' directory of a deleting customer (nothing writes it
    /// once the customer is deleting), a transaction per hundred items; safe
    /// to run twice at once.
    async fn delete_directory(&self, customer: &CustomerId) -> Result<(), StoreError> {
        optimistic((), |()| async move {
            let items = self
                .query_prefix_all(customer_pk(customer), dir::EVERY)
                .await?;
            if items.is_empty() {
                return Ok(Attempt::Done(()));
            }
            let mut raced = false;
            for chunk in items.chunks(MAX_WRITES) {
                let mut tx = self.tx();
                for item in chunk {
                    let sk = item.get(super::table::SK).and_then(|v| v.as_s().ok());
                    let sk = sk.ok_or_else(|| StoreError::Corrupt("item without key".into()))?;
                    tx = tx.delete(
                        Write::Directory,
                        super::table::key(customer_pk(customer), sk),
                        EXISTS,
                        &[],
                    )?;
                }
                match tx.commit().await {
                    Ok(()) => {}
                    // A concurrent cascade deleted some first: read again.
                    Err(TxError::Cancelled(c)) if c.failed(Write::Directory) => raced = true,
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(match raced {
                false => Attempt::Done(()),
                true => Attempt::Again(()),
            })
        })
        .await
    }

    /// The customer a user belongs to and their role there, if any, whatever
    /// the customer's state: one strongly consistent read.
    pub async fn membership_of(
        &self,
        user: &UserId,
    ) -> Result<Option<(CustomerId, Role)>, StoreError> {
        observe(store_span!("membership_of", user = %user), async {
            Ok(self
                .membership_item(user)
                .await?
                .map(|m| (m.customer_id, m.role)))
        })
        .await
    }

    async fn membership_item(&self, user: &UserId) -> Result<Option<MembershipItem>, StoreError> {
        match self.get(membership_key(user)).await? {
            Some(item) => Ok(Some(serde_dynamo::from_item(item)?)),
            None => Ok(None),
        }
    }

    /// A user's membership in an active customer: strongly consistent reads
    /// of their membership item, then of the customer's record (a customer
    /// being deleted has no members any more, as for every read), and, for a
    /// membership item written before it held the join time, of their member
    /// item beside it.
    pub async fn find_membership(&self, user: &UserId) -> Result<Option<Membership>, StoreError> {
        observe(store_span!("find_membership", user = %user), async {
            let Some(m) = self.membership_item(user).await? else {
                return Ok(None);
            };
            let (record, joined_at) = match m.joined_at()? {
                Some(at) => (self.find_customer(&m.customer_id).await?, Some(at)),
                None => {
                    let (record, member) = tokio::join!(
                        self.find_customer(&m.customer_id),
                        self.find_member(&m.customer_id, user)
                    );
                    (record?, member?.map(|member| member.joined_at))
                }
            };
            // Removed meanwhile, or its customer is being deleted.
            let (Some(record), Some(joined_at)) = (record, joined_at) else {
                return Ok(None);
            };
            if record.state != CustomerState::Active {
                return Ok(None);
            }
            Ok(Some(Membership {
                customer_id: m.customer_id,
                role: m.role,
                joined_at,
            }))
        })
        .await
    }
}

/// The slot of a member in its customer's members directory.
pub(super) fn member_slot(m: &Member) -> String {
    slot(&member_group(m.role), &time::to_millis(&m.joined_at))
}

/// The longest run of `members` (at least one) that fits one transaction with
/// the customer's writes and `reserved` more, and its directory additions.
fn fitting<'m>(
    record: &Customer,
    members: &'m [Member],
    reserved: usize,
) -> Result<(&'m [Member], Additions), StoreError> {
    // The record, its listing entries, the audit sequence, an answer.
    let fixed = 2 + Listing::of(record).len() + reserved;
    // Each member: its member item, its membership and its audit entry.
    const PER_MEMBER: usize = 3;
    let mut take = 0;
    let mut add = Additions::default();
    while take < members.len() {
        let slots: Vec<String> = members[..=take].iter().map(member_slot).collect();
        let next = Additions::of(slots.iter().map(|s| (s.as_str(), 1)))?;
        if fixed + PER_MEMBER * (take + 1) + next.writes() > MAX_WRITES {
            break;
        }
        add = next;
        take += 1;
    }
    if take == 0 {
        return Err(StoreError::Corrupt(
            "a member does not fit a transaction".into(),
        ));
    }
    Ok((&members[..take], add))
}
