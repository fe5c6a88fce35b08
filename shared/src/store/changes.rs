//! Changes to an active customer's own fields (name, tier, billing state) from
//! the platform's and Stripe's events, and customers created with their owner:
//! each one transaction with the customer's listing entries and counts.

use uuid::Uuid;

use crate::domain::audit::{Action, Actor, AuditEntry, Origin};
use crate::domain::{
    Customer, CustomerId, CustomerState, Member, NewCustomer, SubscriptionStatus, TierName,
    TierSource, Timestamp,
};

use super::directory::{Additions, add_to_directory};
use super::error::StoreError;
use super::handle::Store;
use super::members::member_slot;
use super::observe::observe;
use super::retry::{Attempt, optimistic};
use super::table::{
    CUSTOMER_AS_READ, CustomerItem, EXISTS, EntryItem, Listing, MemberItem, MembershipItem,
    NOT_EXISTS, NOT_TOMBSTONED, STRIPE_FREE_OR_OF, applied_event_item, applied_event_key,
    customer_pk, customer_tombstone_key, entry_key, n, provenance_as_read, s, stripe_customer_item,
    stripe_customer_key, stripe_customer_of, tombstone_deleted_at, tombstone_values,
    user_tombstone_key,
};
use super::tally::count;
use super::tx::{Tx, TxError, Write};

/// How long an applied event's id is kept to recognise a redelivery: longer
/// than Stripe retries a webhook (3 days) and EventBridge an event (1 day).
const EVENT_MEMORY_DAYS: i64 = 30;

/// A change to an active customer's fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerChange {
    /// New display name.
    pub name: Option<String>,
    /// New tier (name and UUID).
    pub tier: Option<(TierName, Uuid)>,
    /// New subscription status.
    pub status: Option<SubscriptionStatus>,
    /// New Stripe customer (`Some(None)` removes it).
    pub stripe_customer_id: Option<Option<String>>,
    /// New Stripe subscription (`Some(None)` removes it).
    pub stripe_subscription_id: Option<Option<String>>,
    /// Stripe reported the customer deleted at this time.
    pub billing_gone_at: Option<Timestamp>,
    /// The platform's revision this change comes from (its event's
    /// `version`): applied only above the customer's `platformVersion`
    /// ([`CustomerChange::is_stale_for`]), which it then becomes.
    pub platform_version: Option<u64>,
    /// Who owns the tier from now on ([`TierSource`]): the platform's changes
    /// set `Platform` with the tier they apply; Stripe's set
    /// `TierSource::after_stripe(its current subscription names a tier)`.
    pub tier_source: Option<TierSource>,
}

impl CustomerChange {
    /// Stripe no longer has the customer (deleted at `at`): its Stripe ids go,
    /// its status becomes `canceled`, its billing is marked gone, and Stripe
    /// names its tier no more (the platform owns it again).
    pub fn billing_gone(at: Timestamp) -> Self {
        Self {
            status: Some(SubscriptionStatus::Canceled),
            stripe_customer_id: Some(None),
            stripe_subscription_id: Some(None),
            billing_gone_at: Some(at),
            tier_source: Some(TierSource::after_stripe(false)),
            ..Self::default()
        }
    }

    /// The customer with this change applied.
    pub fn applied_to(&self, c: &Customer) -> Customer {
        let mut new = c.clone();
        if let Some(name) = &self.name {
            new.name = name.clone();
        }
        if let Some((tier, tier_id)) = &self.tier {
            new.tier_name = tier.clone();
            new.tier_id = *tier_id;
        }
        if let Some(status) = self.status {
            new.subscription_status = status;
        }
        if let Some(id) = &self.stripe_customer_id {
            new.stripe_customer_id = id.clone();
        }
        if let Some(id) = &self.stripe_subscription_id {
            new.stripe_subscription_id = id.clone();
        }
        if let Some(at) = self.billing_gone_at {
            new.billing_gone_at = Some(at);
        }
        if let Some(v) = self.platform_version {
            new.platform_version = Some(v);
        }
        if let Some(source) = self.tier_source {
            new.tier_source = Some(source);
        }
        new
    }

    /// Whether this change comes from a platform revision at or below the one
    /// `c` has applied already: then it changes nothing.
    pub fn is_stale_for(&self, c: &Customer) -> bool {
        matches!(
            (self.platform_version, c.platform_version),
            (Some(v), Some(seen)) if v <= seen
        )
    }
}

/// The event a change comes from: applied once (by `source` and `id`), and
/// never after a newer one about the same customer (by `version`, when given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventStamp {
    /// Where the event comes from: `stripe` or `platform`.
    pub source: &'static str,
    /// The event's id at its source.
    pub id: String,
    /// Where the event sorts among the customer's billing events (see
    /// `sync::stripe_events::version`); the change is stale below the
    /// customer's `billingVersion`.
    pub version: Option<String>,
}

impl EventStamp {
    /// Who the audit trail says made the change: Stripe or the platform, by
    /// the event's id (also its request id).
    pub fn origin(&self) -> Origin {
        let event_id = self.id.clone();
        Origin::new(match self.source {
            "stripe" => Actor::Stripe { event_id },
            _ => Actor::Platform { event_id },
        })
        .for_request(&self.id)
    }
}

/// What a change came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The record changed (with its listings and counts).
    Changed,
    /// The change asked for nothing new.
    Unchanged,
    /// The event was applied before.
    Duplicate,
    /// A newer event about the customer was applied before.
    Stale,
    /// No active customer has that id.
    NotFound,
}

impl Applied {
    /// The outcome in one word (logs and metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Changed => "applied",
            Self::Unchanged => "unchanged",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
            Self::NotFound => "unknown_customer",
        }
    }
}

impl Store {
    /// The customer a Stripe customer (`cus_...`) belongs to: one consistent read.
    pub async fn customer_of_stripe(
        &self,
        stripe_id: &str,
    ) -> Result<Option<CustomerId>, StoreError> {
        observe(store_span!("customer_of_stripe"), async {
            Ok(self
                .get(stripe_customer_key(stripe_id))
                .await?
                .as_ref()
                .and_then(stripe_customer_of))
        })
        .await
    }

    /// Whether the event was applied before (within the days its id is kept):
    /// one consistent read.
    pub async fn event_applied(&self, event: &EventStamp) -> Result<bool, StoreError> {
        observe(store_span!("event_applied"), async {
            Ok(self
                .get(applied_event_key(event.source, &event.id))
                .await?
                .is_some())
        })
        .await
    }

    /// Changes an active customer as `decide` says from its current record
    /// (`None`: nothing to change), in one transaction with its listing
    /// entries, the counts of the listings it leaves and joins, the lookup of
    /// its Stripe customer, the `customer.updated` audit entry by `origin`
    /// (when a field it records changed) and, for an event, the event's id.
    /// Retried from a fresh read when the record changes meanwhile.
    pub async fn change_customer<F>(
        &self,
        id: &CustomerId,
        event: Option<&EventStamp>,
        origin: &Origin,
        decide: F,
    ) -> Result<Applied, StoreError>
    where
        F: Fn(&Customer) -> Option<CustomerChange> + Send + Sync,
    {
        let span = store_span!("change_customer", customer = %id);
        observe(span, async {
            let decide = &decide;
            optimistic(true, |listed| async move {
                let Some(old) = self.find_customer(id).await? else {
                    return Ok(Attempt::Done(Applied::NotFound));
                };
                if old.state != CustomerState::Active {
                    return Ok(Attempt::Done(Applied::NotFound));
                }
                let version = event.and_then(|e| e.version.as_deref());
                if let (Some(v), Some(seen)) = (version, old.billing_version.as_deref())
                    && seen > v
                {
                    return Ok(Attempt::Done(Applied::Stale));
                }
                let Some(change) = decide(&old) else {
                    return Ok(Attempt::Done(Applied::Unchanged));
                };
                if change.is_stale_for(&old) {
                    return self.stale_or_duplicate(event).await.map(Attempt::Done);
                }
                let mut new = change.applied_to(&old);
                if let Some(v) = version {
                    new.billing_version = Some(v.to_owned());
                }
                if new == old && event.is_none() {
                    return Ok(Attempt::Done(Applied::Unchanged));
                }
                let mut tx = self.replace_customer(&old, &new, listed, version)?;
                if let Some(entry) = AuditEntry::customer_updated(origin, &old, &new) {
                    tx = tx.audit(&entry)?;
                }
                let tx = match event {
                    Some(e) => tx.put(Write::Event, event_item(e), NOT_EXISTS, &[])?,
                    None => tx,
                };
                match tx.commit().await {
                    Ok(()) => Ok(Attempt::Done(Applied::Changed)),
                    Err(TxError::Cancelled(c)) if c.failed(Write::Event) => {
                        Ok(Attempt::Done(Applied::Duplicate))
                    }
                    // Changed under us (a member, another event): read it again.
                    Err(TxError::Cancelled(c)) if c.failed(Write::Customer) => {
                        Ok(Attempt::Again(listed))
                    }
                    Err(TxError::Cancelled(c)) if c.failed(Write::Lookup) => {
                        Err(StoreError::StripeCustomerClaimed)
                    }
                    Err(TxError::Cancelled(c)) if c.failed(Write::Entry) => {
                        Ok(Attempt::Again(self.is_listed(&old).await?))
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .await
        })
        .await
    }

    /// What a stale change from `event` comes to: [`Applied::Duplicate`] when
    /// that very event was applied before (one read of its id), else
    /// [`Applied::Stale`].
    async fn stale_or_duplicate(&self, event: Option<&EventStamp>) -> Result<Applied, StoreError> {
        let Some(e) = event else {
            return Ok(Applied::Stale);
        };
        match self.event_applied(e).await? {
            true => Ok(Applied::Duplicate),
            false => Ok(Applied::Stale),
        }
    }

    /// A transaction replacing the record `old` (as read) with `new`: the
    /// entries of the listings it stays in are rewritten when what they show
    /// changed, those it leaves are deleted and counted out, those it joins are
    /// put and counted in; the Stripe lookup follows its Stripe customer.
    fn replace_customer(
        &self,
        old: &Customer,
        new: &Customer,
        listed: bool,
        version: Option<&str>,
    ) -> Result<Tx<'_>, StoreError> {
        let mut condition = CUSTOMER_AS_READ.to_owned();
        if version.is_some() {
            condition.push_str(" AND (attribute_not_exists(#version) OR #version <= :version)");
        }
        let mut values = vec![
            (":active", s("active")),
            (":members", n(old.member_count as i64)),
            (":name", s(old.name.clone())),
            (":tier", s(old.tier_name.as_str())),
            (":status", s(old.subscription_status.as_str())),
            (":version", s(version.unwrap_or_default())),
        ];
        let (provenance, read) = provenance_as_read(old);
        condition.push_str(&format!(" AND {provenance}"));
        values.extend(read);
        let record = serde_dynamo::to_item(CustomerItem::of(new))?;
        let mut tx = self
            .tx()
            .put(Write::Customer, record, &condition, &values)?;
        if listed {
            let before = Listing::of(old);
            let after = Listing::of(new);
            let shown_changed = (&old.name, &old.tier_id) != (&new.name, &new.tier_id)
                || old.subscription_status != new.subscription_status
                || old.tier_name != new.tier_name;
            for listing in &before {
                if !after.contains(listing) {
                    let entry = entry_key(listing, &old.created_at, &old.id);
                    tx = tx.delete(Write::Entry, entry, EXISTS, &[])?;
                    tx = count(tx, listing, old, -1)?;
                } else if shown_changed {
                    let entry = serde_dynamo::to_item(EntryItem::new(listing, new))?;
                    tx = tx.put(Write::Entry, entry, EXISTS, &[])?;
                }
            }
            for listing in after.iter().filter(|l| !before.contains(l)) {
                let entry = serde_dynamo::to_item(EntryItem::new(listing, new))?;
                tx = tx.put(Write::Entry, entry, NOT_EXISTS, &[])?;
                tx = count(tx, listing, new, 1)?;
            }
        }
        if old.stripe_customer_id != new.stripe_customer_id {
            let ours = [(":customer", s(old.id.to_string()))];
            if let Some(gone) = &old.stripe_customer_id {
                let key = stripe_customer_key(gone);
                tx = tx.delete(Write::OldLookup, key, STRIPE_FREE_OR_OF, &ours)?;
            }
            if let Some(stripe_id) = &new.stripe_customer_id {
                let item = stripe_customer_item(stripe_id, &new.id);
                tx = tx.put(Write::Lookup, item, STRIPE_FREE_OR_OF, &ours)?;
            }
        }
        Ok(tx)
    }

    /// Creates an active customer, with its owner's membership when it has an
    /// owner, in one transaction: the record, its entries and counts, the
    /// owner's member and membership items and its members' directory, and the
    /// lookup of its Stripe customer, the id of the event it comes from, and
    /// the audit entries by `origin` (`customer.created`, and `member.added`
    /// for the owner). `CustomerExists` when the id is taken, `AlreadyMember`
    /// when the owner belongs to a customer already; [`Applied::Duplicate`]
    /// when the event was applied before.
    pub async fn create_customer_with_owner(
        &self,
        customer: &NewCustomer,
        owner: Option<&Member>,
        event: Option<&EventStamp>,
        origin: &Origin,
    ) -> Result<Applied, StoreError> {
        let record = Customer::from(customer);
        self.create(&record, owner, event, origin, false).await
    }

    /// [`Store::create_customer_with_owner`] for the platform's
    /// `customer.created`: the record keeps what `record` says of its
    /// provenance (`platformVersion`, `tierSource`), and the transaction also
    /// checks (`ConditionCheck`) that neither the customer's id nor its owner
    /// has a live tombstone: [`StoreError::CustomerDeleted`] or
    /// [`StoreError::OwnerDeleted`] when one has, and nothing is written.
    pub async fn create_customer_from_event(
        &self,
        record: &Customer,
        owner: &Member,
        event: &EventStamp,
        origin: &Origin,
    ) -> Result<Applied, StoreError> {
        self.create(record, Some(owner), Some(event), origin, true)
            .await
    }

    /// Creates `record` (active, no members yet) as the two above say;
    /// `unless_tombstoned`: checks the tombstones of its id and its owner.
    async fn create(
        &self,
        customer: &Customer,
        owner: Option<&Member>,
        event: Option<&EventStamp>,
        origin: &Origin,
        unless_tombstoned: bool,
    ) -> Result<Applied, StoreError> {
        let span = store_span!("create_customer", customer = %customer.id);
        observe(span, async {
            let mut listed = customer.clone();
            listed.member_count = u64::from(owner.is_some());
            let item = serde_dynamo::to_item(CustomerItem::of(&listed))?;
            let mut tx = self
                .tx()
                .put(Write::Customer, item, NOT_EXISTS, &[])?
                .audit(
                    &AuditEntry::new(Action::CustomerCreated, origin, customer.id).changed(
                        "state",
                        None,
                        Some("active"),
                    ),
                )?;
            for listing in Listing::of(customer) {
                let entry = serde_dynamo::to_item(EntryItem::new(&listing, &listed))?;
                tx = tx.put(Write::Entry, entry, NOT_EXISTS, &[])?;
                tx = count(tx, &listing, &listed, 1)?;
            }
            if let Some(m) = owner {
                let membership = MembershipItem::new(&customer.id, m);
                let membership = serde_dynamo::to_item(membership)?;
                tx = tx.put(Write::Membership, membership, NOT_EXISTS, &[])?;
                let member = serde_dynamo::to_item(MemberItem::new(&customer.id, m))?;
                tx = tx.put(Write::Member, member, NOT_EXISTS, &[])?;
                let add = Additions::of([(member_slot(m).as_str(), 1)])?;
                tx = add_to_directory(tx, &customer_pk(&customer.id), &add)?.audit(
                    &AuditEntry::new(Action::MemberAdded, origin, customer.id)
                        .member(m.user_id, m.role)
                        .changed("role", None, Some(m.role.as_str())),
                )?;
            }
            if let Some(stripe_id) = &customer.stripe_customer_id {
                let item = stripe_customer_item(stripe_id, &customer.id);
                tx = tx.put(Write::Lookup, item, NOT_EXISTS, &[])?;
            }
            if let Some(e) = event {
                tx = tx.put(Write::Event, event_item(e), NOT_EXISTS, &[])?;
            }
            if unless_tombstoned {
                let values = tombstone_values(&crate::domain::now());
                let id = customer_tombstone_key(&customer.id);
                tx = tx.check(Write::CustomerTombstone, id, NOT_TOMBSTONED, &values)?;
                if let Some(m) = owner {
                    let user = user_tombstone_key(&m.user_id);
                    tx = tx.check(Write::OwnerTombstone, user, NOT_TOMBSTONED, &values)?;
                }
            }
            match tx.commit().await {
                Ok(()) => Ok(Applied::Changed),
                Err(TxError::Cancelled(c)) if c.failed(Write::Event) => Ok(Applied::Duplicate),
                Err(TxError::Cancelled(c)) if c.failed(Write::CustomerTombstone) => Err(
                    StoreError::CustomerDeleted(deleted_at(c.old(Write::CustomerTombstone))),
                ),
                Err(TxError::Cancelled(c)) if c.failed(Write::OwnerTombstone) => Err(
                    StoreError::OwnerDeleted(deleted_at(c.old(Write::OwnerTombstone))),
                ),
                Err(TxError::Cancelled(c))
                    if c.failed(Write::Customer) || c.failed(Write::Entry) =>
                {
                    Err(StoreError::CustomerExists)
                }
                Err(TxError::Cancelled(c))
                    if c.failed(Write::Membership) || c.failed(Write::Member) =>
                {
                    Err(StoreError::AlreadyMember)
                }
                Err(TxError::Cancelled(c)) if c.failed(Write::Lookup) => {
                    Err(StoreError::StripeCustomerClaimed)
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }
}

/// When a tombstone a creation ran into says its id was deleted.
fn deleted_at(tombstone: Option<&super::table::Item>) -> String {
    tombstone
        .and_then(tombstone_deleted_at)
        .unwrap_or("an unknown time")
        .to_owned()
}

/// The item remembering that `e` was applied, until [`EVENT_MEMORY_DAYS`] from now.
fn event_item(e: &EventStamp) -> super::table::Item {
    let expires = crate::domain::now().timestamp() + EVENT_MEMORY_DAYS * 86_400;
    applied_event_item(e.source, &e.id, expires)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::now;

    fn customer(platform_version: Option<u64>) -> Customer {
        Customer {
            platform_version,
            ..Customer::sample()
        }
    }

    fn at(version: Option<u64>) -> CustomerChange {
        CustomerChange {
            name: Some("New".into()),
            platform_version: version,
            ..CustomerChange::default()
        }
    }

    #[test]
    fn a_revision_at_or_below_the_applied_one_is_stale() {
        // GIVEN a customer at revision 5
        let c = customer(Some(5));
        // THEN 4 and 5 are stale, 6 is not, and a change without one never is
        assert!(at(Some(4)).is_stale_for(&c));
        assert!(at(Some(5)).is_stale_for(&c));
        assert!(!at(Some(6)).is_stale_for(&c));
        assert!(!at(None).is_stale_for(&c));
        // AND any revision applies to a customer that has none yet
        assert!(!at(Some(1)).is_stale_for(&customer(None)));
    }

    #[test]
    fn a_change_carries_its_revision_and_tier_owner_onto_the_record() {
        // GIVEN a customer at revision 5
        let c = customer(Some(5));
        // WHEN revision 6 moves the tier, owned by the platform
        let change = CustomerChange {
            tier: Some((TierName::parse("enterprise").unwrap(), Uuid::nil())),
            tier_source: Some(TierSource::Platform),
            ..at(Some(6))
        };
        let new = change.applied_to(&c);
        // THEN the record says so; a change without either leaves them
        assert_eq!(
            (new.platform_version, new.tier_source, new.name.as_str()),
            (Some(6), Some(TierSource::Platform), "New")
        );
        let kept = at(None).applied_to(&new);
        assert_eq!(
            (kept.platform_version, kept.tier_source),
            (Some(6), Some(TierSource::Platform))
        );
    }

    #[test]
    fn billing_gone_gives_the_tier_back_to_the_platform() {
        // GIVEN a customer whose tier Stripe owns
        let c = Customer {
            tier_source: Some(TierSource::Stripe),
            ..customer(None)
        };
        // WHEN Stripe deletes its customer
        let new = CustomerChange::billing_gone(now()).applied_to(&c);
        // THEN the platform owns the tier again
        assert_eq!(new.tier_source, Some(TierSource::Platform));
    }
}
