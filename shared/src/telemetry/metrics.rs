//! Metrics in CloudWatch Embedded Metric Format (EMF), namespace `BillingAdmin`.
//!
//! Every metric carries the `Stack` dimension first: the CloudFormation stack
//! that runs the function (`STACK_NAME`, which the template sets from
//! `AWS::StackName`; `local` outside AWS), so two stacks in one account never
//! share a metric, and each alarm selects its own stack's.
//!
//! Each emission is one JSON document on one line of stdout, from which CloudWatch
//! Logs extracts the metrics (Lambda needs no agent and no API call). Metrics never
//! go through `tracing`, so no log filter can drop them.
//!
//! | metric | unit | dimensions (after `Stack`) | emitted by |
//! |---|---|---|---|
//! | `Requests` | Count | `Function`, `StatusClass` (`2xx`/`4xx`/`5xx`) | every HTTP request ([`request`]) |
//! | `Latency` | Milliseconds | `Function` | every HTTP request ([`request`]) |
//! | `ColdStart` | Count | `Function` | each process start of a function ([`set_function`]) |
//! | `AuthFailures` | Count | `Function`, `Reason` | a request that fails authentication or the role check ([`auth_failure`]) |
//! | `TransactionConflicts` | Count | `Function` | `TransactWriteItems` attempts cancelled by a conflict ([`transaction_conflicts`]) |
//! | `TransactionRetries` | Count | `Function` | attempts re-sent after a conflict ([`transaction_conflicts`]) |
//! | `DeletingCustomers` | Count | none | the `deletion-monitor` function ([`deletion_backlog`]) |
//! | `OldestDeletionAgeSeconds` | Seconds | none | the `deletion-monitor` function ([`deletion_backlog`]) |
//! | `CascadeSteps` | Count | `Step`, `Outcome` | each deletion cascade step ([`cascade_step`]) |
//! | `CascadeStepDuration` | Milliseconds | `Step`, `Outcome` | each deletion cascade step ([`cascade_step`]) |
//! | `StripeCalls` | Count | `Operation` | each Stripe call ([`stripe_call`]) |
//! | `StripeErrors` | Count | `Operation` | each Stripe call, 1 when it failed ([`stripe_call`]) |
//! | `SyncEvents` | Count | `Source`, `Outcome` | each Stripe or platform event ([`sync_event`]) |
//! | `ReconcileChecked`, `ReconcileDrifted`, `ReconcileRepaired` | Count | none | each reconciliation ([`reconciled`]) |
//!
//! `Function` is the function's package name (`list-customers`, `delete-customer`,
//! `cleanup-stream`, ...): the request's endpoint inside [`in_function`], else the
//! name given to [`set_function`] at start, else `AWS_LAMBDA_FUNCTION_NAME`.
//!
//! Lines go to stdout, or to the sink given to [`set_sink`] (once per process);
//! inside `Capture::scope` they go to that capture instead (tests).
//!
//! Lambda's log-level filtering (JSON log format, `ApplicationLogLevel`) drops
//! application lines below its level, and counts a line without a `level` or a
//! valid `timestamp` as INFO: every document therefore carries `timestamp` (RFC
//! 3339, the instant of `_aws.Timestamp`) and a `level` that passes the function's
//! filter (`AWS_LAMBDA_LOG_LEVEL`: INFO, or WARN, ERROR, FATAL when set so).
//!
//! This module holds the emitters; the catalogue ([`catalogue`]), the document
//! ([`emf`]), where lines go ([`sink`]) and, for tests, their capture and
//! checking (`capture`, with the `testing` feature) are its parts, and their
//! names are re-exported here.

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[cfg(any(test, feature = "testing"))]
pub mod capture;
pub mod catalogue;
pub mod emf;
pub mod sink;

#[cfg(any(test, feature = "testing"))]
pub use capture::{Capture, check_document};
pub use catalogue::{Dimension, Metric, NAMESPACE, Unit};
pub use emf::{Document, LOCAL_STACK, level, level_for, stack, stack_of};
pub use sink::set_sink;

use emf::UNKNOWN;

tokio::task_local! {
    static FUNCTION: &'static str;
}

// ---- the function name ----------------------------------------------------

static PROCESS_FUNCTION: OnceLock<String> = OnceLock::new();

/// Names the function this process runs (its package name, e.g. `cleanup-stream`)
/// and counts its start as a `ColdStart`; only the first call takes effect. Call
/// it at start, before the first metric.
pub fn set_function(name: &str) {
    if PROCESS_FUNCTION.set(name.to_owned()).is_ok() {
        cold_start(name);
    }
}

/// One process start of `function`: `ColdStart` (1).
pub fn cold_start(function: &str) {
    Document::new()
        .dimension(Dimension::Function, function)
        .value(Metric::ColdStart, 1.0)
        .emit();
}
/// Runs `work` as `function`: metrics it emits without naming a function (the
/// store's transaction metrics) carry this one. The local server serves every
/// endpoint in one process, so each request names its own.
pub async fn in_function<F: Future>(function: &'static str, work: F) -> F::Output {
    FUNCTION.scope(function, work).await
}

/// The function metrics are attributed to now.
pub fn function() -> &'static str {
    FUNCTION.try_with(|f| *f).unwrap_or_else(|_| {
        PROCESS_FUNCTION.get_or_init(|| {
            std::env::var("AWS_LAMBDA_FUNCTION_NAME")
                .ok()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| UNKNOWN.to_owned())
        })
    })
}

// ---- the emissions --------------------------------------------------------

/// `2xx`, `4xx` or `5xx` (`1xx`/`3xx` as such; the API answers none).
pub fn status_class(status: u16) -> String {
    format!("{}xx", status / 100)
}

/// What ties a request's metrics to its logs and traces.
#[derive(Debug, Clone, Default)]
pub struct RequestIds {
    /// The Lambda request id (or the local server's id).
    pub request_id: String,
    /// API Gateway's request id, when there is one.
    pub api_request_id: Option<String>,
    /// The X-Ray trace id, when there is one.
    pub trace_id: Option<String>,
}

/// One HTTP request: `Requests` (1, by function and status class) and `Latency`.
pub fn request(function: &str, status: u16, latency: Duration, ids: &RequestIds) {
    let mut doc = Document::new()
        .dimension(Dimension::Function, function)
        .dimension(Dimension::StatusClass, status_class(status))
        .value(Metric::Requests, 1.0)
        .value(Metric::Latency, millis(latency))
        .property("requestId", ids.request_id.clone())
        .property("status", status.to_string())
        .property("coldStart", first_request().to_string());
    if let Some(id) = &ids.api_request_id {
        doc = doc.property("apiRequestId", id.clone());
    }
    if let Some(id) = &ids.trace_id {
        doc = doc.property("traceId", id.clone());
    }
    doc.emit();
}

/// Whether this is the process's first request (its cold start's), once.
fn first_request() -> bool {
    static SERVED: AtomicBool = AtomicBool::new(false);
    !SERVED.swap(true, Ordering::Relaxed)
}

/// One failed authentication or role check, with its stable reason.
pub fn auth_failure(function: &str, reason: &str) {
    Document::new()
        .dimension(Dimension::Function, function)
        .dimension(Dimension::Reason, reason)
        .value(Metric::AuthFailures, 1.0)
        .emit();
}

/// One transaction's conflicts: the attempts cancelled by a conflict and the
/// retries that followed (fewer by one when it gave up). Nothing when it had none.
pub fn transaction_conflicts(conflicts: u32, retries: u32) {
    if conflicts == 0 {
        return;
    }
    Document::new()
        .dimension(Dimension::Function, function())
        .value(Metric::TransactionConflicts, f64::from(conflicts))
        .value(Metric::TransactionRetries, f64::from(retries))
        .emit();
}

/// The deletion backlog: how many customers are deleting, and for how long the
/// oldest has been (0 when none).
pub fn deletion_backlog(count: u64, oldest_age: Duration) {
    Document::new()
        .value(Metric::DeletingCustomers, count as f64)
        .value(Metric::OldestDeletionAgeSeconds, seconds(oldest_age))
        .emit();
}

/// How far the fold of listing counts lags: the age of the oldest change one
/// compaction of a listing's directory moved into its months.
pub fn fold_lag(age: Duration) {
    Document::new()
        .value(Metric::FoldLagSeconds, seconds(age))
        .emit();
}

/// One deletion cascade step: `CascadeSteps` (1) and `CascadeStepDuration`, by
/// step and outcome (their dimension values: `cascade::Step::name`,
/// `cascade::StepOutcome::as_str`).
pub fn cascade_step(step: &str, outcome: &str, duration: Duration) {
    Document::new()
        .dimension(Dimension::Step, step)
        .dimension(Dimension::Outcome, outcome)
        .value(Metric::CascadeSteps, 1.0)
        .value(Metric::CascadeStepDuration, millis(duration))
        .emit();
}

/// One Stripe call (its attempts included): `StripeCalls` (1) and `StripeErrors`
/// (1 when it failed, else 0), by operation (`delete customer` is written
/// `delete_customer`). An object Stripe answers is gone counts as a success.
pub fn stripe_call(operation: &str, ok: bool) {
    let operation = operation.trim().replace([' ', '-'], "_");
    Document::new()
        .dimension(Dimension::Operation, operation)
        .value(Metric::StripeCalls, 1.0)
        .value(Metric::StripeErrors, if ok { 0.0 } else { 1.0 })
        .emit();
}

/// One event from `source` (`stripe`, `platform`) handled with `outcome`
/// (`applied`, `duplicate`, `stale`, `unknown_customer`, `ignored`, `rejected`, ...).
pub fn sync_event(source: &str, outcome: &str) {
    Document::new()
        .dimension(Dimension::Source, source)
        .dimension(Dimension::Outcome, outcome)
        .value(Metric::SyncEvents, 1.0)
        .emit();
}

/// What a reconciliation found: customers compared, drifted and repaired.
pub fn reconciled(checked: u64, drifted: u64, repaired: u64) {
    Document::new()
        .value(Metric::ReconcileChecked, checked as f64)
        .value(Metric::ReconcileDrifted, drifted as f64)
        .value(Metric::ReconcileRepaired, repaired as f64)
        .emit();
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

fn seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::telemetry::metrics::capture::{captured, check_document, directives, one, strings};

    #[test]
    fn a_request_is_two_directives_with_their_own_dimensions() {
        let ids = RequestIds {
            request_id: "lambda-1".into(),
            api_request_id: Some("api-1".into()),
            trace_id: Some("1-abc-def".into()),
        };
        let doc = one(|| request("list-customers", 404, Duration::from_micros(12_345), &ids));
        assert_eq!(
            directives(&doc),
            [
                (
                    strings(&["Stack", "Function", "StatusClass"]),
                    strings(&["Requests"])
                ),
                (strings(&["Stack", "Function"]), strings(&["Latency"])),
            ]
        );
        assert_eq!(doc["Function"], "list-customers");
        assert_eq!(doc["StatusClass"], "4xx");
        assert_eq!(doc["Requests"], 1.0);
        assert_eq!(doc["Latency"], 12.345);
        assert_eq!(doc["requestId"], "lambda-1");
        assert_eq!(doc["apiRequestId"], "api-1");
        assert_eq!(doc["traceId"], "1-abc-def");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][1]["Metrics"][0]["Unit"],
            "Milliseconds"
        );
        for (status, class) in [(200, "2xx"), (204, "2xx"), (401, "4xx"), (503, "5xx")] {
            assert_eq!(status_class(status), class);
        }
    }

    #[test]
    fn auth_failures_carry_their_reason() {
        let doc = one(|| auth_failure("get-customer", "invalid_api_key"));
        assert_eq!(
            directives(&doc),
            [(
                strings(&["Stack", "Function", "Reason"]),
                strings(&["AuthFailures"])
            )]
        );
        assert_eq!(doc["Reason"], "invalid_api_key");
        assert_eq!(doc["AuthFailures"], 1.0);
    }

    #[test]
    fn transaction_conflicts_name_the_function_and_skip_clean_transactions() {
        assert!(captured(|| transaction_conflicts(0, 0)).is_empty());
        let capture = Capture::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(capture.scope(in_function("add-member", async {
            transaction_conflicts(3, 2);
        })));
        let doc = &capture.documents()[0];
        check_document(doc).unwrap();
        assert_eq!(
            directives(doc),
            [(
                strings(&["Stack", "Function"]),
                strings(&["TransactionConflicts", "TransactionRetries"])
            )]
        );
        assert_eq!(doc["Function"], "add-member");
        assert_eq!(doc["TransactionConflicts"], 3.0);
        assert_eq!(doc["TransactionRetries"], 2.0);
    }

    #[test]
    fn the_deletion_backlog_has_the_stack_only() {
        let doc = one(|| deletion_backlog(0, Duration::ZERO));
        assert_eq!(
            directives(&doc),
            [(
                strings(&["Stack"]),
                strings(&["DeletingCustomers", "OldestDeletionAgeSeconds"])
            )]
        );
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Stack"]])
        );
        assert_eq!(doc["Stack"], stack());
        assert_eq!(doc["DeletingCustomers"], 0.0);
        assert_eq!(doc["OldestDeletionAgeSeconds"], 0.0);
        let doc = one(|| deletion_backlog(3, Duration::from_millis(90_500)));
        assert_eq!(doc["DeletingCustomers"], 3.0);
        assert_eq!(doc["OldestDeletionAgeSeconds"], 90.5);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Unit"],
            "Seconds"
        );
    }

    #[test]
    fn the_fold_lag_is_in_seconds_by_stack_only() {
        let doc = one(|| fold_lag(Duration::from_millis(12_250)));
        assert_eq!(
            directives(&doc),
            [(strings(&["Stack"]), strings(&["FoldLagSeconds"]))]
        );
        assert_eq!(doc["FoldLagSeconds"], 12.25);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Seconds"
        );
    }

    #[test]
    fn cascade_steps_by_step_and_outcome() {
        let doc = one(|| cascade_step("close_billing", "ok", Duration::from_millis(7)));
        assert_eq!(
            directives(&doc),
            [(
                strings(&["Stack", "Step", "Outcome"]),
                strings(&["CascadeSteps", "CascadeStepDuration"])
            )]
        );
        assert_eq!(doc["Step"], "close_billing");
        assert_eq!(doc["Outcome"], "ok");
        assert_eq!(doc["CascadeSteps"], 1.0);
        assert_eq!(doc["CascadeStepDuration"], 7.0);
        let doc = one(|| cascade_step("close_billing", "out_of_time", Duration::ZERO));
        assert_eq!(doc["Outcome"], "out_of_time");
    }

    #[test]
    fn stripe_calls_and_errors_by_operation() {
        let doc = one(|| stripe_call("list subscriptions", true));
        assert_eq!(
            directives(&doc),
            [(
                strings(&["Stack", "Operation"]),
                strings(&["StripeCalls", "StripeErrors"])
            )]
        );
        assert_eq!(doc["Operation"], "list_subscriptions");
        assert_eq!(
            (doc["StripeCalls"].as_f64(), doc["StripeErrors"].as_f64()),
            (Some(1.0), Some(0.0))
        );
        let doc = one(|| stripe_call("delete customer", false));
        assert_eq!(doc["Operation"], "delete_customer");
        assert_eq!(doc["StripeErrors"], 1.0);
    }

    #[test]
    fn cold_starts_by_function_and_the_first_request_says_so() {
        let doc = one(|| cold_start("list-customers"));
        assert_eq!(
            directives(&doc),
            [(strings(&["Stack", "Function"]), strings(&["ColdStart"]))]
        );
        assert_eq!(doc["Function"], "list-customers");
        assert_eq!(doc["ColdStart"], 1.0);
        let ids = RequestIds::default();
        let firsts: Vec<Value> = (0..3)
            .map(|_| one(|| request("get-customer", 200, Duration::ZERO, &ids)))
            .map(|d| d["coldStart"].clone())
            .collect();
        // Other tests of this process may have served the first request.
        assert!(firsts[1..].iter().all(|f| f == "false"), "{firsts:?}");
        assert!(firsts.iter().all(|f| f == "true" || f == "false"));
    }
}
