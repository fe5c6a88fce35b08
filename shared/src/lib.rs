//! The library every billing admin function links: configuration, telemetry,
//! authentication, domain types, the single-table store and the HTTP handlers.
//!
//! Features, so that each function links only what it calls: `stripe` (the
//! Stripe side of the deletion cascade, `payments`) and `events` (publishing
//! `customer.deleted` to EventBridge, see [`events::Publisher`]). Without them
//! the same API compiles: the cascade has no Stripe client ([`cascade::Payments`]
//! has no value) and events go to the log. Two more are for development only and
//! no function links them: `seed` (the demo data and fixtures, `seed`, and the
//! Stripe objects behind them) and `testing` (capturing and checking metrics,
//! `telemetry::metrics::capture`).

pub mod api;
pub mod auth;
pub mod aws;
pub mod cascade;
pub mod cleanup;
pub mod config;
pub mod deadline;
pub mod domain;
pub mod events;
pub mod http;
pub mod iam;
pub mod monitor;
pub mod payments;
pub mod runtime;
pub mod secrets;
pub mod secure_url;
#[cfg(feature = "seed")]
pub mod seed;
pub mod sender;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tls;

/// The optional features this build links, as a marker that also stays readable
/// in a stripped binary (`billing-features[stripe,events]`): each function logs
/// it at start (debug), and `infra/check_features.py` reads it from every
/// `bootstrap` to check that a function links exactly the features its
/// `functions/<name>/Cargo.toml` declares.
#[cfg(all(feature = "stripe", feature = "events"))]
pub const LINKED_FEATURES: &str = "billing-features[stripe,events]";
/// The optional features this build links (see the `stripe` and `events` build).
#[cfg(all(feature = "stripe", not(feature = "events")))]
pub const LINKED_FEATURES: &str = "billing-features[stripe]";
/// The optional features this build links (see the `stripe` and `events` build).
#[cfg(all(not(feature = "stripe"), feature = "events"))]
pub const LINKED_FEATURES: &str = "billing-features[events]";
/// The optional features this build links (see the `stripe` and `events` build).
#[cfg(not(any(feature = "stripe", feature = "events")))]
pub const LINKED_FEATURES: &str = "billing-features[]";
