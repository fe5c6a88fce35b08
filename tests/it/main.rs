//! Integration tests: one binary, servers started once, every trial against a
//! fresh table in DynamoDB Local.

// The handlers' futures (deadlines, spans) nest deeper than the default limit
// allows where a test's helpers sit in a module of their own (as in the bench).
#![recursion_limit = "256"]

mod audit;
mod auth;
mod cascade;
mod cli;
mod contract;
mod cursor_keys;
mod customers;
mod idempotency;
mod jwks;
mod listings;
mod members;
mod ordering;
mod platform;
mod reconcile;
mod roles;
mod shutdown;
mod sync;
mod telemetry;

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use billing_tests::Env;
use libtest_mimic::{Arguments, Trial};

/// Longest a single test may run.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

type TestFn = fn(&'static Env) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Lists async test functions as (name, fn) pairs.
#[macro_export]
macro_rules! trials {
    ($($name:ident),* $(,)?) => {
        vec![$((concat!(module_path!(), "::", stringify!($name)), (|env| Box::pin($name(env))) as $crate::TestFnPtr)),*]
    };
}

/// Pointer type the `trials!` macro produces.
pub type TestFnPtr = TestFn;

static ENV: OnceLock<Env> = OnceLock::new();

fn main() {
    let args = Arguments::from_args();
    // Metrics (EMF lines) would flood the output; tests read theirs through
    // `metrics::Capture`, which takes precedence over this sink.
    billing::telemetry::metrics::set_sink(|_| {});
    // Log lines go nowhere but to the tests that capture theirs
    // (`LogLines::scope`), at the most verbose level anyone can ask for.
    billing::telemetry::init_capturing(billing::telemetry::env_filter(Some("trace"), None));
    let all: Vec<(&'static str, TestFn)> = [
        audit::trials(),
        auth::trials(),
        cascade::trials(),
        cli::trials(),
        contract::trials(),
        cursor_keys::trials(),
        customers::trials(),
        idempotency::trials(),
        jwks::trials(),
        listings::trials(),
        members::trials(),
        ordering::trials(),
        platform::trials(),
        reconcile::trials(),
        roles::trials(),
        shutdown::trials(),
        sync::trials(),
        telemetry::trials(),
    ]
    .concat();
    let listing = args.list;
    let trials = all
        .into_iter()
        .map(|(name, test)| {
            let name = name.trim_start_matches("it::");
            Trial::test(name, move || {
                let env = ENV.get().ok_or("servers not started")?;
                env.runtime
                    .block_on(async {
                        tokio::time::timeout(TEST_TIMEOUT, tokio::spawn(test(env))).await
                    })
                    .map_err(|_| format!("timed out after {TEST_TIMEOUT:?}"))?
                    .map_err(|e| {
                        if e.is_panic() {
                            "panicked (see above)".to_owned()
                        } else {
                            e.to_string()
                        }
                    })?;
                Ok(())
            })
        })
        .collect();
    if !listing && ENV.set(Env::start()).is_err() {
        unreachable!("ENV is set once");
    }
    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(env) = ENV.get() {
        env.stop();
    }
    conclusion.exit();
}
