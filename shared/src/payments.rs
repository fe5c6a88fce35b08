//! The Stripe side of a customer, through `async-stripe`: every call of the
//! deletion cascade bounded by the cascade's deadline, retries only where Stripe
//! says they are safe, an already-missing object counts as done. Stripe is reached
//! over HTTPS only (plain HTTP is accepted for a fake Stripe on loopback).
//!
//! Its parts: what closing a customer's billing did ([`Closed`], in every
//! build), and with the `stripe` feature the client and the cascade's call
//! (`client`), Stripe's lists (`listing`: the reconciliation, imports) and,
//! with the `seed` feature that no function links, the Stripe objects of seeded
//! customers (`seeding`, `fixtures`).

#[cfg(feature = "stripe")]
mod client;
mod closed;
#[cfg(feature = "seed")]
mod fixtures;
#[cfg(feature = "stripe")]
mod listing;
#[cfg(feature = "seed")]
mod seeding;

#[cfg(feature = "stripe")]
pub use client::{ATTEMPT_TIMEOUT, ATTEMPTS, Attempts, MIN_ATTEMPT, Payments, PaymentsError};
pub use closed::Closed;
#[cfg(feature = "stripe")]
pub use listing::{LIST_PAGE, ListPage, StripeCustomer};
#[cfg(feature = "seed")]
pub use seeding::Created;
