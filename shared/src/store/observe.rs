//! How a store operation ends: its span's outcome and a debug line.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use tracing::Instrument;

use super::error::{ErrorKind, StoreError};

/// Runs a store operation in `span`, then records and logs (debug) how it ended.
///
/// Boxed: the callers' futures (handlers, the cascade, the stream consumer) then
/// hold a pointer rather than every nested operation's state, which keeps their
/// types shallow enough for the compiler's default recursion limit.
pub(super) fn observe<'a, T: Send + 'a>(
    span: tracing::Span,
    work: impl Future<Output = Result<T, StoreError>> + Send + 'a,
) -> Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>> {
    Box::pin(async move {
        let started = Instant::now();
        let result = work.instrument(span.clone()).await;
        let outcome = outcome(&result);
        span.record("outcome", outcome);
        span.in_scope(|| {
            tracing::debug!(
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                "store operation {outcome}"
            );
        });
        result
    })
}

/// How an operation ended, in one word.
fn outcome<T>(result: &Result<T, StoreError>) -> &'static str {
    match result.as_ref().map_err(StoreError::kind) {
        Ok(_) => "ok",
        Err(ErrorKind::NotFound) => "not_found",
        Err(ErrorKind::Conflict) => "conflict",
        Err(ErrorKind::Contention) => "contention",
        Err(ErrorKind::Failure) => "error",
    }
}
