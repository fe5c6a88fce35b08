use std::fmt;

use serde::{Deserialize, Serialize};

use super::Invalid;

/// A subscription tier name: 1 to 64 letters, digits, spaces, `.`, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TierName(String);

impl TierName {
    /// Longest accepted name, in characters.
    pub const MAX_LEN: usize = 64;

    /// Parses a tier name from a query parameter or a fixture.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let allowed = |c: char| c.is_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-');
        let len = raw.chars().count();
        if (1..=Self::MAX_LEN).contains(&len) && raw.chars().all(allowed) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid::new(
                "invalid_tier_name",
                "tierName",
                "tierName must be 1 to 64 letters, digits, spaces, '.', '_' or '-'",
            ))
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TierName {
    type Error = Invalid;

    fn try_from(raw: String) -> Result<Self, Invalid> {
        Self::parse(&raw)
    }
}

impl From<TierName> for String {
    fn from(name: TierName) -> Self {
        name.0
    }
}

impl fmt::Display for TierName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who owns a customer's tier when the platform and Stripe both name one.
///
/// Stripe's price metadata owns it whenever the customer's current Stripe
/// subscription names a tier (`Stripe`): the platform's tier is then ignored.
/// Otherwise (`Platform`, or no marker on a record written before it was
/// kept) the platform's `customer.created` / `customer.updated` set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TierSource {
    /// The current Stripe subscription's price metadata names the tier.
    Stripe,
    /// The platform set the tier, or Stripe names none.
    Platform,
}

impl TierSource {
    /// As stored (`tierSource`): `stripe` or `platform`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stripe => "stripe",
            Self::Platform => "platform",
        }
    }

    /// The owner once Stripe's current subscription is known: Stripe when its
    /// price metadata names a tier, else the platform.
    pub fn after_stripe(names_tier: bool) -> Self {
        if names_tier {
            Self::Stripe
        } else {
            Self::Platform
        }
    }

    /// Whether the platform's tier may replace the tier of a customer whose
    /// tier is owned by `owner` (`None`: unknown, a record older than the marker).
    pub fn platform_may_set(owner: Option<Self>) -> bool {
        owner != Some(Self::Stripe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for raw in ["pro", "Enterprise Plus", "team_v2", "basic-2026.1", "é"] {
            assert_eq!(TierName::parse(raw).unwrap().as_str(), raw);
        }
    }

    #[test]
    fn rejects_empty_long_and_key_separators() {
        let long = "a".repeat(65);
        for raw in ["", "pro#1", "a/b", "tab\there", "new\nline", long.as_str()] {
            assert_eq!(
                TierName::parse(raw).unwrap_err().code,
                "invalid_tier_name",
                "{raw:?}"
            );
        }
    }

    #[test]
    fn stripe_owns_the_tier_only_while_its_subscription_names_one() {
        // GIVEN what Stripe's current subscription says
        // THEN Stripe owns the tier when it names one, else the platform does
        assert_eq!(TierSource::after_stripe(true), TierSource::Stripe);
        assert_eq!(TierSource::after_stripe(false), TierSource::Platform);
        // AND the platform may set a tier Stripe does not own (or nobody marked)
        assert!(!TierSource::platform_may_set(Some(TierSource::Stripe)));
        assert!(TierSource::platform_may_set(Some(TierSource::Platform)));
        assert!(TierSource::platform_may_set(None));
        // AND the stored spelling is serde's
        for source in [TierSource::Stripe, TierSource::Platform] {
            assert_eq!(
                serde_json::to_value(source).unwrap(),
                serde_json::json!(source.as_str())
            );
        }
    }
}
