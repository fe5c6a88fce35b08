//! The audit trail's vocabulary: who acted ([`Actor`]), on behalf of which
//! request ([`Origin`]), what they did ([`Action`]) and what changed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Customer, CustomerId, Role, Timestamp, UserId};

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// A caller with a bearer token: its subject.
    User {
        /// The token's `sub`.
        subject: String,
    },
    /// A caller with an API key: the key and the user it was issued to.
    ApiKey {
        /// The key id (`ak_...`), never the secret.
        #[serde(rename = "keyID")]
        key_id: String,
        /// The user the key acts as.
        #[serde(rename = "userID")]
        user_id: String,
    },
    /// A platform event (`user.deleted`, `customer.created`, ...).
    Platform {
        /// The EventBridge event id.
        #[serde(rename = "eventID")]
        event_id: String,
    },
    /// A Stripe event (webhook).
    Stripe {
        /// The Stripe event id.
        #[serde(rename = "eventID")]
        event_id: String,
    },
    /// A process or operator tool of this service (`reconcile`, `seed`,
    /// `billing-dev import`, the stream consumer).
    System {
        /// Which one.
        name: String,
    },
}

/// Who acted and for which request: what every audited write is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Who.
    pub actor: Actor,
    /// The request or event that carried it (Lambda request id, event id).
    pub request_id: Option<String>,
}

impl Origin {
    /// An origin with no request id.
    pub fn new(actor: Actor) -> Self {
        Self {
            actor,
            request_id: None,
        }
    }

    /// This origin, for request `id`.
    #[must_use]
    pub fn for_request(self, id: impl Into<String>) -> Self {
        Self {
            request_id: Some(id.into()),
            ..self
        }
    }

    /// A process of this service, or an operator tool, named `name`.
    pub fn system(name: &str) -> Self {
        Self::new(Actor::System {
            name: name.to_owned(),
        })
    }
}

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// A customer was created (by a platform event).
    #[serde(rename = "customer.created")]
    CustomerCreated,
    /// A customer's own fields changed (platform or Stripe events, reconcile).
    #[serde(rename = "customer.updated")]
    CustomerUpdated,
    /// A customer was put into deletion (its cascade then removes everything).
    #[serde(rename = "customer.deleted")]
    CustomerDeleted,
    /// A member was added.
    #[serde(rename = "member.added")]
    MemberAdded,
    /// A member was removed.
    #[serde(rename = "member.removed")]
    MemberRemoved,
    /// A member's role changed.
    #[serde(rename = "member.role_changed")]
    MemberRoleChanged,
}

impl Action {
    /// The name, as in entries and in the events published for members.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CustomerCreated => "customer.created",
            Self::CustomerUpdated => "customer.updated",
            Self::CustomerDeleted => "customer.deleted",
            Self::MemberAdded => "member.added",
            Self::MemberRemoved => "member.removed",
            Self::MemberRoleChanged => "member.role_changed",
        }
    }

    /// Whether it is published as a membership event.
    pub fn is_membership(self) -> bool {
        matches!(
            self,
            Self::MemberAdded | Self::MemberRemoved | Self::MemberRoleChanged
        )
    }
}

/// One field's value before and after (`None`: it did not exist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FromTo {
    /// Before.
    pub from: Option<String>,
    /// After.
    pub to: Option<String>,
}

/// What changed, by field.
pub type Changes = BTreeMap<String, FromTo>;

/// One recorded action on a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Unique and stable: the `eventId` of the membership event it publishes.
    pub id: uuid::Uuid,
    /// What was done.
    pub action: Action,
    /// When.
    pub at: Timestamp,
    /// Who and for which request.
    pub origin: Origin,
    /// The customer acted on.
    pub customer_id: CustomerId,
    /// The member acted on, for membership actions.
    pub user_id: Option<UserId>,
    /// The member's role after the action (before it, for a removal).
    pub role: Option<Role>,
    /// What changed.
    pub changes: Changes,
}

impl AuditEntry {
    /// A new entry, now, with a fresh id.
    pub fn new(action: Action, origin: &Origin, customer_id: CustomerId) -> Self {
        Self {
            id: uuid::Uuid::new_v4(),
            action,
            at: super::now(),
            origin: origin.clone(),
            customer_id,
            user_id: None,
            role: None,
            changes: Changes::new(),
        }
    }

    /// The entry of a membership action on `user` with `role`.
    #[must_use]
    pub fn member(mut self, user: UserId, role: Role) -> Self {
        self.user_id = Some(user);
        self.role = Some(role);
        self
    }

    /// The `customer.updated` entry of a change from `old` to `new`: each
    /// field a person or a listing sees that differs; `None` when none does.
    pub fn customer_updated(origin: &Origin, old: &Customer, new: &Customer) -> Option<Self> {
        let mut entry = Self::new(Action::CustomerUpdated, origin, old.id);
        let at = |t: &Option<Timestamp>| t.as_ref().map(super::time::to_seconds);
        let fields = [
            ("name", Some(old.name.clone()), Some(new.name.clone())),
            (
                "tierName",
                Some(old.tier_name.as_str().to_owned()),
                Some(new.tier_name.as_str().to_owned()),
            ),
            (
                "tierID",
                Some(old.tier_id.to_string()),
                Some(new.tier_id.to_string()),
            ),
            (
                "subscriptionStatus",
                Some(old.subscription_status.as_str().to_owned()),
                Some(new.subscription_status.as_str().to_owned()),
            ),
            (
                "stripeCustomerID",
                old.stripe_customer_id.clone(),
                new.stripe_customer_id.clone(),
            ),
            (
                "stripeSubscriptionID",
                old.stripe_subscription_id.clone(),
                new.stripe_subscription_id.clone(),
            ),
            (
                "billingGoneAt",
                at(&old.billing_gone_at),
                at(&new.billing_gone_at),
            ),
        ];
        for (field, from, to) in fields {
            if from != to {
                entry = entry.changed(field, from.as_deref(), to.as_deref());
            }
        }
        (!entry.changes.is_empty()).then_some(entry)
    }

    /// This entry with `field` changed from `from` to `to`.
    #[must_use]
    pub fn changed(mut self, field: &str, from: Option<&str>, to: Option<&str>) -> Self {
        self.changes.insert(
            field.to_owned(),
            FromTo {
                from: from.map(str::to_owned),
                to: to.map(str::to_owned),
            },
        );
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SubscriptionStatus;

    fn customer() -> Customer {
        Customer {
            stripe_customer_id: Some("cus_1".into()),
            ..Customer::sample()
        }
    }

    #[test]
    fn a_customer_update_records_exactly_the_fields_that_changed() {
        let origin = Origin::system("test");
        let old = customer();
        assert_eq!(AuditEntry::customer_updated(&origin, &old, &old), None);
        let new = Customer {
            subscription_status: SubscriptionStatus::PastDue,
            stripe_customer_id: None,
            billing_version: Some("v".into()),
            ..old.clone()
        };
        let entry = AuditEntry::customer_updated(&origin, &old, &new).unwrap();
        assert_eq!(entry.action, Action::CustomerUpdated);
        assert_eq!(
            serde_json::to_value(&entry.changes).unwrap(),
            serde_json::json!({
                "subscriptionStatus": {"from": "active", "to": "past_due"},
                "stripeCustomerID": {"from": "cus_1", "to": null},
            })
        );
    }

    #[test]
    fn actors_serialize_with_their_type() {
        let cases = [
            (
                Actor::User {
                    subject: "u".into(),
                },
                serde_json::json!({"type": "user", "subject": "u"}),
            ),
            (
                Actor::ApiKey {
                    key_id: "ak_1".into(),
                    user_id: "u".into(),
                },
                serde_json::json!({"type": "api_key", "keyID": "ak_1", "userID": "u"}),
            ),
            (
                Actor::Platform {
                    event_id: "e".into(),
                },
                serde_json::json!({"type": "platform", "eventID": "e"}),
            ),
        ];
        for (actor, want) in cases {
            assert_eq!(serde_json::to_value(&actor).unwrap(), want);
        }
    }
}
