use serde::{Deserialize, Serialize};

use super::Invalid;

/// A Stripe subscription status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// In good standing.
    Active,
    /// Latest payment failed; retrying.
    PastDue,
    /// Ended.
    Canceled,
    /// Payment retries exhausted.
    Unpaid,
    /// In a trial period.
    Trialing,
    /// Paused by the customer.
    Paused,
    /// First payment not yet made.
    Incomplete,
    /// First payment never made.
    IncompleteExpired,
}

impl SubscriptionStatus {
    /// Every status, in Stripe's documentation order.
    pub const ALL: [Self; 8] = [
        Self::Active,
        Self::PastDue,
        Self::Canceled,
        Self::Unpaid,
        Self::Trialing,
        Self::Paused,
        Self::Incomplete,
        Self::IncompleteExpired,
    ];

    /// The Stripe spelling, e.g. `past_due`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Canceled => "canceled",
            Self::Unpaid => "unpaid",
            Self::Trialing => "trialing",
            Self::Paused => "paused",
            Self::Incomplete => "incomplete",
            Self::IncompleteExpired => "incomplete_expired",
        }
    }

    /// Parses the `status` query parameter.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                Invalid::new(
                    "invalid_status",
                    "status",
                    "status must be a Stripe subscription status: active, past_due, canceled, \
                 unpaid, trialing, paused, incomplete or incomplete_expired",
                )
            })
    }

    /// Whether Stripe holds a live subscription object in this status.
    pub fn has_subscription(self) -> bool {
        !matches!(self, Self::Canceled | Self::IncompleteExpired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_status() {
        for status in SubscriptionStatus::ALL {
            assert_eq!(SubscriptionStatus::parse(status.as_str()), Ok(status));
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, serde_json::json!(status.as_str()));
        }
    }

    #[test]
    fn rejects_unknown_and_wrong_case() {
        for raw in ["", "Active", "pastdue", "deleted", "active "] {
            assert_eq!(
                SubscriptionStatus::parse(raw).unwrap_err().code,
                "invalid_status"
            );
        }
    }
}
