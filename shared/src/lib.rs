//! The library every billing admin function links: configuration, telemetry,
//! authentication, domain types, the single-table store and the HTTP handlers.

pub mod api;
pub mod auth;
pub mod aws;
pub mod cascade;
pub mod cleanup;
pub mod config;
pub mod deadline;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod monitor;
pub mod payments;
pub mod secrets;
pub mod seed;
pub mod startup;
pub mod store;
pub mod telemetry;
