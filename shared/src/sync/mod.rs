//! Feeds that keep customer records true: Stripe's webhooks
//! ([`webhook`]), the platform's customer events ([`platform`]), and, with
//! the `stripe` feature, the reconciliation with Stripe ([`reconcile`]).

pub mod platform;
#[cfg(feature = "stripe")]
pub mod reconcile;
pub mod signature;
pub mod stripe_events;
pub mod webhook;
