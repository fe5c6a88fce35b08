//! `POST /api/billing/v1/webhooks/stripe`: Stripe's events, verified, and
//! answered by applying Stripe's current state of the customer's billing.
//!
//! Outside the admin auth: the `Stripe-Signature` header is the credential.
//! A missing, malformed, stale or wrong signature, a body that is not an
//! event, or an event naming an id outside Stripe's alphabet, is 400 in the
//! error convention and changes nothing.
//!
//! **Convergence.** Stripe does not deliver events in order, and an event's
//! snapshot may be older than what Stripe holds. So an event is a prompt, not
//! a value: on a subscription event the handler lists the Stripe customer's
//! subscriptions (one call) and applies the current one
//! ([`stripe_events::current`]): its status, tier and ids; a Stripe customer
//! Stripe no longer knows (or `customer.deleted`, which is final) leaves the
//! customer without billing. The write carries the read's time as its version
//! and is conditional on the stored version being no newer, in the same
//! transaction as the record, its listings and the event's id. Of two
//! handlers, the one whose read started later saw at least as much of Stripe,
//! and it wins whatever order they commit in. Stripe sends an event after every
//! change, and that event's read starts after the change: the last change is
//! read by some handler, and only a read that started even later (seeing the
//! same) can be stored after it. So, for any delivery order, duplicates and
//! same-second events included, the record ends equal to Stripe.
//!
//! **Answers.** 200 once applied, applied before (`duplicate`), no newer than
//! what the customer shows (`stale`), changing nothing (`unchanged`), about a
//! Stripe customer that no customer of ours has or names (`unknown_customer`),
//! or refused for its origin (`connect_account`: sent for a connected account;
//! `livemode_mismatch`: live event for a test key or the reverse), all counted.
//! An event whose `metadata.customerID` names a customer this service does not
//! have yet (Stripe spoke before the platform) is 409 `customer_not_yet_created`,
//! so that Stripe delivers it again (Stripe retries for up to three days with
//! exponential backoff); by then the platform's `customer.created` has usually
//! come, itself reading Stripe's state. 5xx when Stripe or the table failed.
//!
//! **Links.** A customer is linked to a Stripe customer by the platform's
//! `stripeCustomerID`, by an import or reconciliation, or here: an event whose
//! Stripe customer is not linked may link itself through its
//! `metadata.customerID` only to a customer that has no Stripe customer yet,
//! and only while Stripe confirms that Stripe customer exists.

#[cfg(feature = "stripe")]
mod endpoint;

#[cfg(feature = "stripe")]
pub use endpoint::{ApplyError, Outcome, Webhooks};

/// The route's path ([`crate::api::WEBHOOK`]).
pub const PATH: &str = crate::api::WEBHOOK.path;
/// The function (and `Function` metric dimension) serving it.
pub const FUNCTION: &str = crate::api::WEBHOOK.function;
/// Largest body accepted: Stripe's events are a few KiB.
pub const MAX_BODY: usize = 256 * 1024;
/// `source` of Stripe's events in the applied-event ids and the metrics.
pub const SOURCE: &str = "stripe";
