//! What closing a customer's billing did: the outcome of the cascade's Stripe
//! step, in every build (without the `stripe` feature nothing closes billing,
//! yet the cascade's report names it).

/// What closing a customer's billing did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Closed {
    /// Whether this call deleted the Stripe customer (false: it was already gone).
    pub customer_deleted: bool,
    /// Stripe requests made (one per call, however many attempts it took).
    pub calls: usize,
}
