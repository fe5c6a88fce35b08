//! Stripe object ids, checked wherever one enters (platform events, webhooks,
//! imports, reconciliation, fixtures) and before any becomes part of a Stripe
//! request's path.

use super::Invalid;

/// The longest id accepted, prefix included: Stripe documents ids of up to 255
/// characters.
pub const MAX_LEN: usize = 255;

/// The kinds of Stripe id this service keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripeIdKind {
    /// A Stripe customer: `cus_…`.
    Customer,
    /// A subscription: `sub_…`.
    Subscription,
}

impl StripeIdKind {
    /// The prefix Stripe gives ids of this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Customer => "cus_",
            Self::Subscription => "sub_",
        }
    }

    /// `raw` when it is an id of this kind: the prefix, then 1 to
    /// [`MAX_LEN`] − 4 ASCII letters and digits (Stripe's own alphabet), so
    /// that no id can change a request path or a key it is put in.
    pub fn check(self, raw: &str) -> Result<&str, Invalid> {
        let tail = raw.strip_prefix(self.prefix()).unwrap_or_default();
        if !tail.is_empty()
            && raw.len() <= MAX_LEN
            && tail.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Ok(raw);
        }
        let (code, param, message) = match self {
            Self::Customer => (
                "invalid_stripe_customer_id",
                "stripeCustomerID",
                "stripeCustomerID must be cus_ followed by up to 251 ASCII letters and digits",
            ),
            Self::Subscription => (
                "invalid_stripe_subscription_id",
                "stripeSubscriptionID",
                "stripeSubscriptionID must be sub_ followed by up to 251 ASCII letters and digits",
            ),
        };
        Err(Invalid::new(code, param, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_stripes_alphabet_pass() {
        // GIVEN ids as Stripe and localstripe make them
        for id in [
            "cus_NffrFeUfNV2Hib",
            "cus_1",
            &format!("cus_{}", "a".repeat(251)),
        ] {
            assert_eq!(StripeIdKind::Customer.check(id), Ok(id));
        }
        assert!(
            StripeIdKind::Subscription
                .check("sub_1MowQVLkdIwHu7ix")
                .is_ok()
        );
    }

    #[test]
    fn anything_else_is_refused_with_its_param() {
        for id in [
            "",
            "cus_",
            "cus_abc/../../v1/customers",
            "cus_a b",
            "cus_a?x=1",
            "cus_é",
            "cus_a_b",
            "sub_123",
            "CUS_123",
            &format!("cus_{}", "a".repeat(252)),
        ] {
            let err = StripeIdKind::Customer.check(id).unwrap_err();
            assert_eq!(err.param, "stripeCustomerID", "{id}");
            assert!(id.len() <= 4 || !err.message.contains(id), "echoes {id}");
        }
        let err = StripeIdKind::Subscription.check("cus_123").unwrap_err();
        assert_eq!(err.code, "invalid_stripe_subscription_id");
    }
}
