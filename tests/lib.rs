//! Test support: the local servers (started once per test binary, stopped by PID),
//! a fresh table per test, and a client that calls the handlers as the local
//! server does.

pub mod app;
pub mod jwks;
pub mod net;
pub mod servers;
pub mod sinks;

pub use app::{Reply, TestApp};
pub use servers::Env;
