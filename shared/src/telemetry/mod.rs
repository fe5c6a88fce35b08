//! Structured logs and metrics.
//!
//! Logs are JSON lines on stdout. The level comes from `RUST_LOG` when it is set,
//! else from `AWS_LAMBDA_LOG_LEVEL` (what Lambda sets from the function's
//! `ApplicationLogLevel`), else `info`. Every line carries the spans it was written
//! in (`spans`), so a line written inside a store operation still carries the
//! request's ids. The crates that log raw events, headers and bodies at debug and
//! trace (the Lambda runtime, the AWS SDK, hyper, h2, rustls) are capped at `info`
//! whatever the filter says.
//!
//! Metrics are CloudWatch Embedded Metric Format documents, one per line on stdout
//! ([`metrics`]), never through the log filter.

pub mod metrics;
pub mod request;

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// Crates capped at `info`: at debug and trace they log raw Lambda events,
/// HTTP headers (credentials), SigV4 canonical requests and request and response
/// bodies (personal data). Targets match by prefix: `aws_` covers every AWS SDK
/// crate (`aws_smithy_*`, `aws_sigv4`, `aws_runtime`, `aws_config`,
/// `aws_sdk_*`, ...), `hyper` covers `hyper_util` and `hyper_rustls`.
pub const CAPPED_CRATES: [&str; 8] = [
    "lambda_runtime",
    "lambda_http",
    "aws_smithy_runtime",
    "aws_smithy_http",
    "aws_",
    "hyper",
    "h2",
    "rustls",
];

/// The level of `AWS_LAMBDA_LOG_LEVEL` (`TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`,
/// `FATAL`, any case) as a filter directive; `None` for anything else.
pub fn lambda_level(value: &str) -> Option<&'static str> {
    match value.trim().to_ascii_uppercase().as_str() {
        "TRACE" => Some("trace"),
        "DEBUG" => Some("debug"),
        "INFO" => Some("info"),
        "WARN" | "WARNING" => Some("warn"),
        "ERROR" | "FATAL" => Some("error"),
        _ => None,
    }
}

/// The filter directives: `rust_log` when set (non-empty), else the mapped
/// `lambda_log_level`, else `info`.
///
/// The capped crates are not capped here: appended `<crate>=info` directives
/// would *raise* them to info under `RUST_LOG=warn` (a later directive for a
/// target replaces the user's), and would still lose to a more specific user
/// target (`hyper::proto=trace`) or a span directive (`[request]=trace`), both of
/// which `EnvFilter` prefers. [`subscriber`] caps them with a separate filter
/// layer instead, which can only turn events off.
pub fn directives(rust_log: Option<&str>, lambda_log_level: Option<&str>) -> String {
    rust_log
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| lambda_log_level.and_then(lambda_level).map(str::to_owned))
        .unwrap_or_else(|| "info".to_owned())
}

/// The filter of [`directives`] (invalid user directives are skipped, with a
/// warning on stderr).
pub fn env_filter(rust_log: Option<&str>, lambda_log_level: Option<&str>) -> EnvFilter {
    EnvFilter::builder().parse_lossy(directives(rust_log, lambda_log_level))
}

/// The hard cap: every target at any level but the capped crates at `info`.
/// A separate layer, so no user directive (however specific, span directives
/// included) can turn their debug or trace output back on.
fn cap() -> Targets {
    CAPPED_CRATES
        .iter()
        .fold(Targets::new().with_default(Level::TRACE), |t, c| {
            t.with_target(*c, Level::INFO)
        })
}

/// The JSON subscriber with `filter` and the crate cap, writing to `writer`.
pub fn subscriber<W>(
    filter: EnvFilter,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(true)
        .with_target(false)
        .with_ansi(false)
        .with_writer(writer)
        .finish()
        .with(cap())
}

/// Installs the global JSON subscriber on stdout; a second call is a no-op.
pub fn init() {
    let rust_log = std::env::var("RUST_LOG").ok();
    let lambda = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
    let filter = env_filter(rust_log.as_deref(), lambda.as_deref());
    let _ = tracing::subscriber::set_global_default(subscriber(filter, std::io::stdout));
    tracing::debug!(features = crate::LINKED_FEATURES, "telemetry ready");
}

/// Installs, as the process's global subscriber, one that writes only the lines
/// of futures run in [`LogLines::scope`], to that [`LogLines`], through `filter`
/// and the crate cap; every other event is disabled. For test binaries, whose
/// tests run concurrently on a multi-thread runtime: a scoped subscriber per test
/// would race with the callsite interest cache (a callsite first hit on another
/// thread while a single scoped subscriber exists is cached as disabled).
/// Returns whether it was installed (only the first subscriber of a process is).
pub fn init_capturing(filter: EnvFilter) -> bool {
    // Dynamic (checked per event, never cached per callsite): whether the event
    // is written inside a scope depends on the task, not on the callsite.
    let in_scope =
        tracing_subscriber::filter::dynamic_filter_fn(|_, _| CAPTURE.try_with(|_| ()).is_ok());
    let subscriber = subscriber(filter, ScopedWriter).with(in_scope);
    tracing::subscriber::set_global_default(subscriber).is_ok()
}

tokio::task_local! {
    static CAPTURE: LogLines;
}

/// Writes to the [`LogLines`] of the current [`LogLines::scope`], if any.
struct ScopedWriter;

impl Write for ScopedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = CAPTURE.try_with(|lines| lines.clone().write(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for ScopedWriter {
    type Writer = ScopedWriter;

    fn make_writer(&'w self) -> Self::Writer {
        ScopedWriter
    }
}

/// Log lines written to memory (tests): a [`MakeWriter`] for [`subscriber`], or
/// the lines of a [`LogLines::scope`] under [`init_capturing`].
#[derive(Debug, Clone, Default)]
pub struct LogLines(Arc<Mutex<Vec<u8>>>);

impl LogLines {
    /// Runs `work` with every log line it writes (in its own task) captured
    /// here, when the process's subscriber is [`init_capturing`]'s.
    pub async fn scope<F: Future>(&self, work: F) -> F::Output {
        CAPTURE.scope(self.clone(), work).await
    }

    /// A dispatcher writing JSON lines here through `filter` and the crate cap,
    /// e.g. for `tracing::instrument::WithSubscriber::with_subscriber`.
    pub fn dispatch(&self, filter: EnvFilter) -> tracing::Dispatch {
        tracing::Dispatch::new(subscriber(filter, self.clone()))
    }

    /// Every line written so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Write for LogLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for LogLines {
    type Writer = LogLines;

    fn make_writer(&'w self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_then_the_lambda_level_then_info() {
        let cases = [
            (Some("debug"), Some("ERROR"), "debug"),
            (Some("billing=trace,warn"), None, "billing=trace,warn"),
            (Some("  "), Some("DEBUG"), "debug"),
            (None, Some("DEBUG"), "debug"),
            (None, Some("trace"), "trace"),
            (None, Some("WARN"), "warn"),
            (None, Some("FATAL"), "error"),
            (None, Some("loud"), "info"),
            (None, None, "info"),
        ];
        for (rust_log, lambda, user) in cases {
            assert_eq!(
                directives(rust_log, lambda),
                user,
                "{rust_log:?} {lambda:?}"
            );
        }
    }

    /// Which levels reach the writer for `target`, with `filter`.
    fn levels(rust_log: &str, target_events: impl Fn()) -> Vec<String> {
        let logs = LogLines::default();
        tracing::dispatcher::with_default(&logs.dispatch(env_filter(Some(rust_log), None)), || {
            target_events()
        });
        logs.lines()
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
                format!(
                    "{}:{}",
                    v["fields"]["message"].as_str().unwrap_or_default(),
                    v["level"].as_str().unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn noisy_crates_never_log_below_info() {
        let emit = || {
            tracing::trace!(target: "hyper::proto::h1", "hyper");
            tracing::debug!(target: "hyper_util::client", "hyper_util");
            tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", "smithy");
            tracing::trace!(target: "aws_sigv4::http_request::sign", "sigv4");
            tracing::trace!(target: "aws_runtime::env_config", "aws_runtime");
            tracing::debug!(target: "aws_config::profile", "aws_config");
            tracing::trace!(target: "lambda_runtime::runtime", "runtime");
            tracing::debug!(target: "lambda_http::request", "lambda_http");
            tracing::debug!(target: "rustls::client", "rustls");
            tracing::debug!(target: "h2::codec", "h2");
            tracing::info!(target: "hyper::proto::h1", "hyper-info");
            tracing::debug!(target: "billing::store", "ours");
        };
        for rust_log in [
            "trace",
            "debug",
            "trace,hyper=trace,aws_smithy_runtime=trace",
            "hyper::proto=trace,hyper_util=trace,aws_smithy_runtime::client=trace,lambda_runtime::runtime=trace,trace",
            "[request]=trace,trace",
        ] {
            assert_eq!(
                levels(rust_log, emit),
                ["hyper-info:INFO", "ours:DEBUG"],
                "RUST_LOG={rust_log}"
            );
        }
        // the default level keeps debug off everywhere
        assert_eq!(levels("info", emit), ["hyper-info:INFO"]);
        // and the cap never raises a crate above the user's level
        assert!(levels("warn", emit).is_empty());
        assert!(levels("error", emit).is_empty());
    }

    #[test]
    fn lines_carry_every_enclosing_span() {
        let logs = LogLines::default();
        tracing::dispatcher::with_default(&logs.dispatch(env_filter(Some("debug"), None)), || {
            let request = tracing::info_span!("request", request_id = "r-1", trace_id = "t-1");
            let _r = request.enter();
            let store = tracing::debug_span!("store", operation = "get_customer");
            let _s = store.enter();
            tracing::debug!("inside");
        });
        let lines = logs.lines();
        assert_eq!(lines.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["span"]["operation"], "get_customer");
        assert_eq!(v["spans"][0]["request_id"], "r-1");
        assert_eq!(v["spans"][0]["trace_id"], "t-1");
    }
}
