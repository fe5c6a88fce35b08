//! Test support: the local servers (started once per test binary, stopped by PID),
//! a fresh table per test, and a client that calls the handlers as the local
//! server does.

pub mod app;
pub mod counter;
pub mod jwks;
pub mod net;
pub mod proxy;
pub mod servers;
pub mod sinks;

pub use app::{Reply, TestApp};
pub use servers::Env;

/// The origin of what a test does directly through the store, the cascade or
/// the cleanup handlers (its audit entries' actor).
pub fn by_test() -> billing::domain::audit::Origin {
    billing::domain::audit::Origin::system("test")
}
