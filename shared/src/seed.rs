//! Fixtures: the file format `billing-dev seed --file` reads, the demo data set,
//! and seeding them through the store's own transactional writes.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use uuid::Uuid;

use crate::domain::audit::Origin;
use crate::domain::{CustomerId, Member, NewCustomer, Role, SubscriptionStatus, TierName, UserId};
use crate::payments::Payments;
use crate::store::{Store, StoreError};

/// A fixtures file: `{"customers": [...]}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixtures {
    /// Customers to create.
    pub customers: Vec<FixtureCustomer>,
}

/// One customer in a fixtures file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FixtureCustomer {
    /// Customer UUID.
    pub id: CustomerId,
    /// Display name.
    pub name: String,
    /// Tier name.
    pub tier_name: TierName,
    /// Tier UUID.
    #[serde(rename = "tierID")]
    pub tier_id: Uuid,
    /// Stripe subscription status.
    pub subscription_status: SubscriptionStatus,
    /// Creation time, RFC 3339.
    pub created_at: DateTime<Utc>,
    /// Owner; the zero UUID for an orphaned customer.
    #[serde(rename = "ownerUserID")]
    pub owner_user_id: UserId,
    /// Members with their roles, the owner among them.
    #[serde(default)]
    pub members: Vec<FixtureMember>,
}

/// One member in a fixtures file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureMember {
    /// The user.
    #[serde(rename = "userID")]
    pub user_id: UserId,
    /// `owner`/`admin`/`user` or legacy 0/1/2.
    pub role: serde_json::Value,
}

/// A fixture that cannot be seeded.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The fixture breaks a rule of the data model.
    #[error("customer {id}: {reason}")]
    Invalid {
        /// The customer.
        id: CustomerId,
        /// What is wrong.
        reason: String,
    },
    /// Stripe refused or failed.
    #[error("customer {id}: {source}")]
    Stripe {
        /// The customer.
        id: CustomerId,
        /// Why.
        #[source]
        source: crate::payments::PaymentsError,
    },
    /// The store refused or failed.
    #[error("customer {id}: {source}")]
    Store {
        /// The customer.
        id: CustomerId,
        /// Why.
        #[source]
        source: StoreError,
    },
}

/// What seeding did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SeedReport {
    /// Customers created.
    pub created: usize,
    /// Customers skipped because they already existed.
    pub existing: usize,
    /// Members added.
    pub members: usize,
}

impl FixtureCustomer {
    /// Checks the fixture and turns it into a new customer and its members.
    pub fn to_domain(&self) -> Result<(NewCustomer, Vec<Member>), SeedError> {
        let invalid = |reason: String| SeedError::Invalid {
            id: self.id,
            reason,
        };
        crate::domain::customer_name(&self.name).map_err(|e| invalid(e.into()))?;
        let mut members = Vec::with_capacity(self.members.len());
        for (i, m) in self.members.iter().enumerate() {
            let role = Role::from_json(&m.role).map_err(|e| invalid(e.message))?;
            if m.user_id.is_nil() {
                return Err(invalid("a member's userID is the zero UUID".into()));
            }
            if members
                .iter()
                .any(|seen: &Member| seen.user_id == m.user_id)
            {
                return Err(invalid(format!("user {} is listed twice", m.user_id)));
            }
            let joined_at = self.created_at + Duration::seconds(i as i64);
            members.push(Member {
                role_id: Uuid::new_v4(),
                user_id: m.user_id,
                role,
                joined_at,
            });
        }
        let owners: Vec<_> = members.iter().filter(|m| m.role == Role::Owner).collect();
        match (self.owner_user_id.is_nil(), owners.as_slice()) {
            (true, []) => {}
            (false, [owner]) if owner.user_id == self.owner_user_id => {}
            _ => {
                return Err(invalid(
                    "exactly one member must be the owner and match ownerUserID \
                     (none when ownerUserID is the zero UUID)"
                        .into(),
                ));
            }
        }
        let customer = NewCustomer {
            id: self.id,
            name: self.name.clone(),
            tier_name: self.tier_name.clone(),
            tier_id: self.tier_id,
            subscription_status: self.subscription_status,
            created_at: self.created_at,
            owner_user_id: self.owner_user_id,
            stripe_customer_id: None,
            stripe_subscription_id: None,
        };
        Ok((customer, members))
    }
}

/// Seeds every fixture: when Stripe is given, creates the Stripe customer and
/// its subscription and puts that in the fixture's status
/// ([`Payments::put_subscription_in`]: Stripe is the truth, so the webhook and
/// the reconciliation find the status seeded), then the customer with those
/// ids, then its members. Customers that already exist are skipped.
pub async fn seed(
    store: &Store,
    payments: Option<&Payments>,
    fixtures: &Fixtures,
) -> Result<SeedReport, SeedError> {
    let mut report = SeedReport::default();
    for fixture in &fixtures.customers {
        let (mut customer, members) = fixture.to_domain()?;
        let id = customer.id;
        let at = |source| SeedError::Store { id, source };
        if store.find_customer(&id).await.map_err(at)?.is_some() {
            report.existing += 1;
            continue;
        }
        if let Some(payments) = payments {
            let stripe = |source| SeedError::Stripe { id, source };
            let created = payments
                .create_customer(
                    &id,
                    &customer.name,
                    &customer.tier_name,
                    customer.tier_id,
                    true,
                )
                .await
                .map_err(stripe)?;
            if let Some(sub) = &created.subscription {
                payments
                    .put_subscription_in(sub, customer.subscription_status)
                    .await
                    .map_err(stripe)?;
            }
            customer.stripe_customer_id = Some(created.customer);
            customer.stripe_subscription_id = created.subscription;
        }
        match store
            .create_customer(&customer, &Origin::system("seed"))
            .await
        {
            Ok(()) => report.created += 1,
            Err(StoreError::CustomerExists) => {
                report.existing += 1;
                continue;
            }
            Err(e) => return Err(at(e)),
        }
        store
            .add_members(&id, &members, &Origin::system("seed"))
            .await
            .map_err(at)?;
        report.members += members.len();
    }
    Ok(report)
}

/// The demo data set: 24 customers over three tiers and every common status, one
/// orphaned, one with 120 members; ids are stable so examples can name them.
pub fn demo() -> Fixtures {
    const NAMES: [&str; 24] = [
        "Acme Corp",
        "Globex",
        "Initech",
        "Umbrella",
        "Hooli",
        "Stark Industries",
        "Wayne Enterprises",
        "Wonka Industries",
        "Cyberdyne",
        "Soylent",
        "Tyrell",
        "Aperture Science",
        "Black Mesa",
        "Vandelay Industries",
        "Dunder Mifflin",
        "Pied Piper",
        "Massive Dynamic",
        "Oscorp",
        "Gringotts",
        "Monsters Inc",
        "Prestige Worldwide",
        "Sterling Cooper",
        "Bluth Company",
        "Nakatomi Trading",
    ];
    const TIERS: [(&str, u128); 3] = [("free", 1), ("pro", 2), ("enterprise", 3)];
    const STATUSES: [SubscriptionStatus; 6] = [
        SubscriptionStatus::Active,
        SubscriptionStatus::Active,
        SubscriptionStatus::PastDue,
        SubscriptionStatus::Trialing,
        SubscriptionStatus::Canceled,
        SubscriptionStatus::Unpaid,
    ];
    let start: DateTime<Utc> = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    let customers = NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let n = i as u128;
            let (tier, tier_n) = TIERS[i % TIERS.len()];
            let orphaned = i == 5;
            let size = if i == 0 { 120 } else { i % 6 };
            let user = |j: u128| {
                UserId::from(Uuid::from_u128(
                    0xa000_0000_0000_4000_8000_0000_0000_0000 | (n << 16) | j,
                ))
            };
            let members = (0..=size as u128)
                .filter(|j| !(orphaned && *j == 0))
                .map(|j| FixtureMember {
                    user_id: user(j),
                    role: serde_json::json!(match j {
                        0 => "owner",
                        1 => "admin",
                        _ => "user",
                    }),
                })
                .collect();
            FixtureCustomer {
                id: CustomerId::from(Uuid::from_u128(
                    0xc000_0000_0000_4000_8000_0000_0000_0000 | n,
                )),
                name: (*name).to_owned(),
                tier_name: TierName::parse(tier)
                    .unwrap_or_else(|_| unreachable!("static tier names are valid")),
                tier_id: Uuid::from_u128(0xe000_0000_0000_4000_8000_0000_0000_0000 | tier_n),
                subscription_status: STATUSES[i % STATUSES.len()],
                created_at: start + Duration::days(i as i64 * 3),
                owner_user_id: if orphaned { UserId::nil() } else { user(0) },
                members,
            }
        })
        .collect();
    Fixtures { customers }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn demo_fixtures_are_all_valid() {
        let demo = demo();
        assert_eq!(demo.customers.len(), 24);
        for c in &demo.customers {
            c.to_domain().unwrap();
        }
        assert_eq!(demo.customers[0].members.len(), 121);
        assert!(demo.customers[5].owner_user_id.is_nil());
    }

    fn fixture(owner: &str, members: serde_json::Value) -> FixtureCustomer {
        serde_json::from_value(json!({
            "id": "a1b2c3d4-5633-4b16-bbf0-5ca22ef8ea2e", "name": "Acme", "tierName": "pro",
            "tierID": "e1f2a3b4-5633-4b16-bbf0-5ca22ef8ea2e", "subscriptionStatus": "active",
            "createdAt": "2026-02-03T09:14:22Z", "ownerUserID": owner, "members": members
        }))
        .unwrap()
    }

    const OWNER: &str = "5f35d2c4-5633-4b16-bbf0-5ca22ef8ea2e";
    const OTHER: &str = "9de7068a-2422-46c1-b718-4a95a91cd559";
    const ZERO: &str = "00000000-0000-0000-0000-000000000000";

    #[test]
    fn owner_rules_are_enforced() {
        // valid: one owner matching ownerUserID; orphan with no owner
        fixture(
            OWNER,
            json!([{"userID": OWNER, "role": "owner"}, {"userID": OTHER, "role": 2}]),
        )
        .to_domain()
        .unwrap();
        fixture(ZERO, json!([{"userID": OTHER, "role": "admin"}]))
            .to_domain()
            .unwrap();
        // invalid: no owner, wrong owner, two owners, orphan with an owner, duplicates
        for (owner, members) in [
            (OWNER, json!([{"userID": OTHER, "role": "user"}])),
            (OWNER, json!([{"userID": OTHER, "role": "owner"}])),
            (
                OWNER,
                json!([{"userID": OWNER, "role": "owner"}, {"userID": OTHER, "role": 0}]),
            ),
            (ZERO, json!([{"userID": OTHER, "role": "owner"}])),
            (
                OWNER,
                json!([{"userID": OWNER, "role": "owner"}, {"userID": OWNER, "role": "user"}]),
            ),
        ] {
            assert!(
                fixture(owner, members.clone()).to_domain().is_err(),
                "{members}"
            );
        }
    }
}
