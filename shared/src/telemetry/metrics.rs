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
//! inside [`Capture::scope`] they go to that capture instead (tests).
//!
//! Lambda's log-level filtering (JSON log format, `ApplicationLogLevel`) drops
//! application lines below its level, and counts a line without a `level` or a
//! valid `timestamp` as INFO: every document therefore carries `timestamp` (RFC
//! 3339, the instant of `_aws.Timestamp`) and a `level` that passes the function's
//! filter (`AWS_LAMBDA_LOG_LEVEL`: INFO, or WARN, ERROR, FATAL when set so).

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::cascade::{CascadeError, Step};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "BillingAdmin";

/// A CloudWatch unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// A duration in milliseconds.
    Milliseconds,
    /// A duration in seconds.
    Seconds,
}

impl Unit {
    /// The unit's CloudWatch name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
            Self::Seconds => "Seconds",
        }
    }
}

/// A dimension name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// The CloudFormation stack (every metric's first dimension; [`stack`]).
    Stack,
    /// The function (package name).
    Function,
    /// `2xx`, `4xx` or `5xx`.
    StatusClass,
    /// Why authentication failed ([`crate::auth::AuthError::reason`], or `forbidden`).
    Reason,
    /// A deletion cascade step.
    Step,
    /// How a cascade step ended.
    Outcome,
    /// A Stripe operation.
    Operation,
    /// Where an event came from: `stripe` or `platform`.
    Source,
}

impl Dimension {
    /// The dimension's name in CloudWatch.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stack => "Stack",
            Self::Function => "Function",
            Self::StatusClass => "StatusClass",
            Self::Reason => "Reason",
            Self::Step => "Step",
            Self::Outcome => "Outcome",
            Self::Operation => "Operation",
            Self::Source => "Source",
        }
    }
}

/// Every metric this service publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// HTTP requests, by function and status class.
    Requests,
    /// HTTP request latency, by function.
    Latency,
    /// Process starts (cold starts), by function.
    ColdStart,
    /// Failed authentications and role checks, by function and reason.
    AuthFailures,
    /// Transaction attempts cancelled by a conflicting transaction.
    TransactionConflicts,
    /// Transaction attempts re-sent after a conflict.
    TransactionRetries,
    /// Customers in the deleting state.
    DeletingCustomers,
    /// Age of the oldest customer in the deleting state (0 when none).
    OldestDeletionAgeSeconds,
    /// Deletion cascade steps run, by step and outcome.
    CascadeSteps,
    /// Deletion cascade step durations, by step and outcome.
    CascadeStepDuration,
    /// Stripe calls, by operation.
    StripeCalls,
    /// Failed Stripe calls, by operation.
    StripeErrors,
    /// Events received from Stripe and the platform, by source and outcome.
    SyncEvents,
    /// Customers a reconciliation compared with Stripe.
    ReconcileChecked,
    /// Customers a reconciliation found drifted from Stripe.
    ReconcileDrifted,
    /// Drifted customers a reconciliation repaired.
    ReconcileRepaired,
    /// Age of the oldest listing count change a compaction of a listing's
    /// directory moved into its months (how far the fold lags).
    FoldLagSeconds,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Self; 17] = [
        Self::Requests,
        Self::Latency,
        Self::ColdStart,
        Self::AuthFailures,
        Self::TransactionConflicts,
        Self::TransactionRetries,
        Self::DeletingCustomers,
        Self::OldestDeletionAgeSeconds,
        Self::CascadeSteps,
        Self::CascadeStepDuration,
        Self::StripeCalls,
        Self::StripeErrors,
        Self::SyncEvents,
        Self::ReconcileChecked,
        Self::ReconcileDrifted,
        Self::ReconcileRepaired,
        Self::FoldLagSeconds,
    ];

    /// The metric's name in CloudWatch.
    pub fn name(self) -> &'static str {
        match self {
            Self::Requests => "Requests",
            Self::Latency => "Latency",
            Self::ColdStart => "ColdStart",
            Self::AuthFailures => "AuthFailures",
            Self::TransactionConflicts => "TransactionConflicts",
            Self::TransactionRetries => "TransactionRetries",
            Self::DeletingCustomers => "DeletingCustomers",
            Self::OldestDeletionAgeSeconds => "OldestDeletionAgeSeconds",
            Self::CascadeSteps => "CascadeSteps",
            Self::CascadeStepDuration => "CascadeStepDuration",
            Self::StripeCalls => "StripeCalls",
            Self::StripeErrors => "StripeErrors",
            Self::SyncEvents => "SyncEvents",
            Self::ReconcileChecked => "ReconcileChecked",
            Self::ReconcileDrifted => "ReconcileDrifted",
            Self::ReconcileRepaired => "ReconcileRepaired",
            Self::FoldLagSeconds => "FoldLagSeconds",
        }
    }

    /// Its unit.
    pub fn unit(self) -> Unit {
        match self {
            Self::Latency | Self::CascadeStepDuration => Unit::Milliseconds,
            Self::OldestDeletionAgeSeconds | Self::FoldLagSeconds => Unit::Seconds,
            _ => Unit::Count,
        }
    }

    /// Its own dimensions: it is published with `Stack` followed by these
    /// ([`Metric::dimension_set`]).
    pub fn dimensions(self) -> &'static [Dimension] {
        use Dimension as D;
        match self {
            Self::Requests => &[D::Function, D::StatusClass],
            Self::Latency
            | Self::ColdStart
            | Self::TransactionConflicts
            | Self::TransactionRetries => &[D::Function],
            Self::AuthFailures => &[D::Function, D::Reason],
            Self::DeletingCustomers
            | Self::OldestDeletionAgeSeconds
            | Self::ReconcileChecked
            | Self::ReconcileDrifted
            | Self::ReconcileRepaired
            | Self::FoldLagSeconds => &[],
            Self::SyncEvents => &[D::Source, D::Outcome],
            Self::CascadeSteps | Self::CascadeStepDuration => &[D::Step, D::Outcome],
            Self::StripeCalls | Self::StripeErrors => &[D::Operation],
        }
    }

    /// The one dimension set it is published with (and that an alarm on it
    /// must name, whole): `Stack`, then [`Metric::dimensions`].
    pub fn dimension_set(self) -> Vec<Dimension> {
        std::iter::once(Dimension::Stack)
            .chain(self.dimensions().iter().copied())
            .collect()
    }
}

/// One EMF document: metric values, the dimension values they need, and extra
/// properties (searchable in Logs Insights, never dimensions).
#[derive(Debug, Clone, Default)]
pub struct Document {
    dimensions: Vec<(Dimension, String)>,
    values: Vec<(Metric, f64)>,
    properties: Vec<(&'static str, String)>,
}

/// The value written for a dimension the document was not given.
const UNKNOWN: &str = "unknown";

impl Document {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a dimension's value (the last one given wins).
    pub fn dimension(mut self, dimension: Dimension, value: impl Into<String>) -> Self {
        self.dimensions.retain(|(d, _)| *d != dimension);
        self.dimensions.push((dimension, value.into()));
        self
    }

    /// Adds a metric value (the last one given for a metric wins).
    pub fn value(mut self, metric: Metric, value: f64) -> Self {
        self.values.retain(|(m, _)| *m != metric);
        self.values.push((metric, value));
        self
    }

    /// Adds a property that is not a dimension (e.g. a request id).
    pub fn property(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.properties.push((name, value.into()));
        self
    }

    /// The document at `timestamp_ms`: one metric directive per distinct dimension
    /// set, so that every metric is published with exactly its own dimensions;
    /// with this process's line [`level`] and the instant as `timestamp`.
    pub fn to_json(&self, timestamp_ms: i64) -> Value {
        let mut root = Map::new();
        for (name, value) in &self.properties {
            root.insert((*name).to_owned(), json!(value));
        }
        root.insert("level".to_owned(), json!(level()));
        if let Some(at) = chrono::DateTime::from_timestamp_millis(timestamp_ms) {
            root.insert(
                "timestamp".to_owned(),
                json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            );
        }
        let mut directives: Vec<(Vec<Dimension>, Vec<Value>)> = Vec::new();
        for (metric, value) in &self.values {
            let dims = metric.dimension_set();
            let definition = json!({"Name": metric.name(), "Unit": metric.unit().as_str()});
            match directives.iter_mut().find(|(d, _)| *d == dims) {
                Some((_, metrics)) => metrics.push(definition),
                None => directives.push((dims.clone(), vec![definition])),
            }
            for dim in &dims {
                let given = self
                    .dimensions
                    .iter()
                    .find(|(d, _)| d == dim)
                    .map(|(_, v)| dimension_value(v))
                    .or_else(|| (*dim == Dimension::Stack).then(|| dimension_value(stack())));
                root.insert(
                    dim.name().to_owned(),
                    json!(given.unwrap_or_else(|| UNKNOWN.to_owned())),
                );
            }
            let finite = if value.is_finite() { *value } else { 0.0 };
            root.insert(metric.name().to_owned(), json!(finite));
        }
        let directives: Vec<Value> = directives
            .into_iter()
            .map(|(dims, metrics)| {
                json!({
                    "Namespace": NAMESPACE,
                    "Dimensions": [dims.iter().map(|d| d.name()).collect::<Vec<_>>()],
                    "Metrics": metrics,
                })
            })
            .collect();
        root.insert(
            "_aws".to_owned(),
            json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": directives}),
        );
        Value::Object(root)
    }

    /// Writes the document, timestamped now, as one line (nothing when it holds
    /// no metric).
    pub fn emit(self) {
        if self.values.is_empty() {
            return;
        }
        let line = self
            .to_json(chrono::Utc::now().timestamp_millis())
            .to_string();
        write_line(&line);
    }
}

/// A dimension value CloudWatch accepts: 1 to 1024 characters, not blank.
fn dimension_value(value: &str) -> String {
    let value: String = value
        .chars()
        .filter(|c| !c.is_control())
        .take(250)
        .collect();
    if value.trim().is_empty() {
        UNKNOWN.to_owned()
    } else {
        value
    }
}

/// The `level` of a metric line under Lambda's application log level
/// `lambda_log_level` (`AWS_LAMBDA_LOG_LEVEL`): the lowest level that passes it,
/// never below INFO.
pub fn level_for(lambda_log_level: Option<&str>) -> &'static str {
    match lambda_log_level
        .map(|l| l.trim().to_ascii_uppercase())
        .as_deref()
    {
        Some("WARN" | "WARNING") => "WARN",
        Some("ERROR") => "ERROR",
        Some("FATAL") => "FATAL",
        _ => "INFO",
    }
}

/// The `level` of this process's metric lines (see [`level_for`]).
pub fn level() -> &'static str {
    static LEVEL: OnceLock<&'static str> = OnceLock::new();
    LEVEL.get_or_init(|| level_for(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref()))
}

// ---- where lines go -------------------------------------------------------

type Sink = Box<dyn Fn(&str) + Send + Sync>;

static SINK: OnceLock<Sink> = OnceLock::new();

/// Sends every line of this process to `sink` instead of stdout (e.g. nowhere, in
/// a test binary); only the first call takes effect. Returns whether it did.
pub fn set_sink(sink: impl Fn(&str) + Send + Sync + 'static) -> bool {
    SINK.set(Box::new(sink)).is_ok()
}

/// EMF lines captured in memory, for the futures run in [`Capture::scope`].
#[derive(Debug, Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<String>>>);

impl Capture {
    /// An empty capture.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `work` with every line it emits (in its own task) captured here.
    pub async fn scope<F: Future>(&self, work: F) -> F::Output {
        CAPTURE.scope(self.clone(), work).await
    }

    /// The lines captured so far, parsed.
    pub fn documents(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The lines captured so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn push(&self, line: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line.to_owned());
    }
}

tokio::task_local! {
    static CAPTURE: Capture;
    static FUNCTION: &'static str;
}

fn write_line(line: &str) {
    if CAPTURE.try_with(|c| c.push(line)).is_ok() {
        return;
    }
    match SINK.get() {
        Some(sink) => sink(line),
        None => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
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

// ---- the stack --------------------------------------------------------------

/// The stack of the metrics of a process outside AWS (`make dev`, tests).
pub const LOCAL_STACK: &str = "local";

/// The `Stack` dimension of this process's metrics: `STACK_NAME` (the template
/// sets it to `AWS::StackName`), else [`LOCAL_STACK`].
pub fn stack() -> &'static str {
    static STACK: OnceLock<String> = OnceLock::new();
    STACK.get_or_init(|| stack_of(std::env::var("STACK_NAME").ok().as_deref()))
}

/// The stack named by `STACK_NAME`'s value (blank or unset: [`LOCAL_STACK`]).
pub fn stack_of(stack_name: Option<&str>) -> String {
    stack_name
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(LOCAL_STACK)
        .to_owned()
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

/// How a deletion cascade step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// It did its work (or found it done).
    Ok,
    /// The customer was not there (already deleted).
    NotFound,
    /// The run's time budget ran out during it.
    OutOfTime,
    /// It failed (Stripe, the table, configuration).
    Failed,
}

impl StepOutcome {
    /// The outcome of a step's result.
    pub fn of<T>(result: &Result<T, CascadeError>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(e) if e.nothing_to_delete() => Self::NotFound,
            Err(e) if e.out_of_time() => Self::OutOfTime,
            Err(_) => Self::Failed,
        }
    }

    /// The `Outcome` dimension value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NotFound => "not_found",
            Self::OutOfTime => "out_of_time",
            Self::Failed => "failed",
        }
    }
}

/// The `Step` dimension value of a cascade step.
pub fn step_name(step: Step) -> &'static str {
    match step {
        Step::MarkDeleting => "mark_deleting",
        Step::CloseBilling => "close_billing",
        Step::DeleteMembers => "delete_members",
        Step::DeleteRecord => "delete_record",
    }
}

/// One deletion cascade step: `CascadeSteps` (1) and `CascadeStepDuration`, by
/// step and outcome.
pub fn cascade_step(step: Step, outcome: StepOutcome, duration: Duration) {
    Document::new()
        .dimension(Dimension::Step, step_name(step))
        .dimension(Dimension::Outcome, outcome.as_str())
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

// ---- checking a document (tests) ------------------------------------------

/// Checks that `doc` is a valid EMF document of this service: an `_aws` object
/// with a millisecond timestamp and metric directives in namespace `BillingAdmin`;
/// every dimension of every set a string member of the root, every metric a
/// number member with a valid unit; and a `level` and RFC 3339 `timestamp` that
/// Lambda's log-level filtering reads. Returns the metric names it defines.
pub fn check_document(doc: &Value) -> Result<Vec<String>, String> {
    if !matches!(
        doc["level"].as_str(),
        Some("INFO" | "WARN" | "ERROR" | "FATAL")
    ) {
        return Err(format!("level {}", doc["level"]));
    }
    doc["timestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .ok_or_else(|| format!("timestamp {}", doc["timestamp"]))?;
    let aws = doc["_aws"].as_object().ok_or("no _aws object")?;
    let timestamp = aws
        .get("Timestamp")
        .and_then(Value::as_i64)
        .ok_or("_aws.Timestamp is not an integer")?;
    if timestamp < 1_500_000_000_000 {
        return Err(format!("_aws.Timestamp {timestamp} is not in milliseconds"));
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
        .ok_or("_aws.CloudWatchMetrics is not a non-empty array")?;
    let mut names = Vec::new();
    for directive in directives {
        if directive["Namespace"] != NAMESPACE {
            return Err(format!("namespace {}", directive["Namespace"]));
        }
        let sets = directive["Dimensions"]
            .as_array()
            .filter(|s| !s.is_empty())
            .ok_or("Dimensions is not a non-empty array")?;
        for set in sets {
            let set = set.as_array().ok_or("a dimension set is not an array")?;
            if set.len() > 30 {
                return Err("more than 30 dimensions".to_owned());
            }
            for dim in set {
                let dim = dim.as_str().ok_or("a dimension name is not a string")?;
                match doc.get(dim).and_then(Value::as_str) {
                    Some(v) if !v.trim().is_empty() => {}
                    _ => return Err(format!("dimension {dim} is not a non-empty string member")),
                }
            }
        }
        let metrics = directive["Metrics"]
            .as_array()
            .filter(|m| !m.is_empty() && m.len() <= 100)
            .ok_or("Metrics is not an array of 1 to 100")?;
        for metric in metrics {
            let name = metric["Name"].as_str().ok_or("a metric has no Name")?;
            if !doc.get(name).is_some_and(Value::is_number) {
                return Err(format!("metric {name} is not a number member"));
            }
            let unit = metric["Unit"].as_str().ok_or("a metric has no Unit")?;
            if !VALID_UNITS.contains(&unit) {
                return Err(format!("metric {name} has unit {unit}"));
            }
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// CloudWatch's units.
const VALID_UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cascade::Failure;
    use crate::store::StoreError;

    fn captured(work: impl FnOnce()) -> Vec<Value> {
        let capture = Capture::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(capture.scope(async { work() }));
        capture.documents()
    }

    fn one(work: impl FnOnce()) -> Value {
        let docs = captured(work);
        assert_eq!(docs.len(), 1, "{docs:?}");
        let doc = docs.into_iter().next().unwrap();
        check_document(&doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
        doc
    }

    /// (dimension names, metric names) of each directive.
    fn directives(doc: &Value) -> Vec<(Vec<String>, Vec<String>)> {
        doc["_aws"]["CloudWatchMetrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let dims = d["Dimensions"][0]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_owned())
                    .collect();
                let metrics = d["Metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["Name"].as_str().unwrap().to_owned())
                    .collect();
                (dims, metrics)
            })
            .collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn every_metric_has_its_exact_name_unit_and_dimensions() {
        let names: Vec<_> = Metric::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(
            names,
            [
                "Requests",
                "Latency",
                "ColdStart",
                "AuthFailures",
                "TransactionConflicts",
                "TransactionRetries",
                "DeletingCustomers",
                "OldestDeletionAgeSeconds",
                "CascadeSteps",
                "CascadeStepDuration",
                "StripeCalls",
                "StripeErrors",
                "SyncEvents",
                "ReconcileChecked",
                "ReconcileDrifted",
                "ReconcileRepaired",
                "FoldLagSeconds",
            ]
        );
        for metric in Metric::ALL {
            let doc = Document::new()
                .dimension(Dimension::Function, "f")
                .dimension(Dimension::StatusClass, "2xx")
                .dimension(Dimension::Reason, "r")
                .dimension(Dimension::Step, "s")
                .dimension(Dimension::Outcome, "o")
                .dimension(Dimension::Operation, "op")
                .dimension(Dimension::Source, "src")
                .value(metric, 1.0)
                .to_json(1_800_000_000_000);
            assert_eq!(check_document(&doc), Ok(vec![metric.name().to_owned()]));
            let dims: Vec<String> = metric
                .dimension_set()
                .iter()
                .map(|d| d.name().into())
                .collect();
            assert_eq!(dims[0], "Stack", "{metric:?}: the stack first");
            assert_eq!(doc["Stack"], stack(), "{metric:?}");
            assert_eq!(directives(&doc), [(dims, vec![metric.name().to_owned()])]);
        }
    }

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
        let failed = |failure| -> Result<(), CascadeError> {
            Err(CascadeError {
                step: Step::CloseBilling,
                failure,
            })
        };
        assert_eq!(StepOutcome::of(&Ok::<_, CascadeError>(())), StepOutcome::Ok);
        assert_eq!(
            StepOutcome::of(&failed(Failure::Store(StoreError::CustomerNotFound))),
            StepOutcome::NotFound
        );
        assert_eq!(
            StepOutcome::of(&failed(Failure::OutOfTime)),
            StepOutcome::OutOfTime
        );
        assert_eq!(
            StepOutcome::of(&failed(Failure::StripeNotConfigured)),
            StepOutcome::Failed
        );
        let steps = [
            (Step::MarkDeleting, "mark_deleting"),
            (Step::CloseBilling, "close_billing"),
            (Step::DeleteMembers, "delete_members"),
            (Step::DeleteRecord, "delete_record"),
        ];
        for (step, name) in steps {
            let doc = one(|| cascade_step(step, StepOutcome::Ok, Duration::from_millis(7)));
            assert_eq!(
                directives(&doc),
                [(
                    strings(&["Stack", "Step", "Outcome"]),
                    strings(&["CascadeSteps", "CascadeStepDuration"])
                )]
            );
            assert_eq!(doc["Step"], name);
            assert_eq!(doc["Outcome"], "ok");
            assert_eq!(doc["CascadeSteps"], 1.0);
            assert_eq!(doc["CascadeStepDuration"], 7.0);
        }
        let doc = one(|| cascade_step(Step::CloseBilling, StepOutcome::OutOfTime, Duration::ZERO));
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
    fn missing_or_blank_dimensions_and_odd_values_stay_valid() {
        let doc = Document::new()
            .dimension(Dimension::Function, " \n")
            .value(Metric::Requests, f64::NAN)
            .to_json(1_800_000_000_000);
        check_document(&doc).unwrap();
        assert_eq!(doc["Function"], "unknown");
        assert_eq!(doc["StatusClass"], "unknown");
        assert_eq!(doc["Requests"], 0.0);
        // and nothing is written for a document without metrics
        assert!(captured(|| Document::new().dimension(Dimension::Function, "f").emit()).is_empty());
    }

    #[test]
    fn lines_pass_lambdas_log_level_filter() {
        let cases = [
            (None, "INFO"),
            (Some("TRACE"), "INFO"),
            (Some("debug"), "INFO"),
            (Some("INFO"), "INFO"),
            (Some("WARN"), "WARN"),
            (Some("ERROR"), "ERROR"),
            (Some("FATAL"), "FATAL"),
            (Some("nonsense"), "INFO"),
        ];
        for (configured, level) in cases {
            assert_eq!(level_for(configured), level, "{configured:?}");
        }
        let doc = Document::new()
            .value(Metric::DeletingCustomers, 1.0)
            .to_json(1_800_000_000_123);
        assert_eq!(doc["level"], level());
        assert_eq!(doc["timestamp"], "2027-01-15T08:00:00.123Z");
    }

    #[test]
    fn the_checker_refuses_what_cloudwatch_would() {
        let good = json!({
            "_aws": {"Timestamp": 1_800_000_000_000_i64, "CloudWatchMetrics": [{
                "Namespace": "BillingAdmin", "Dimensions": [["Function"]],
                "Metrics": [{"Name": "Requests", "Unit": "Count"}]}]},
            "Function": "f", "Requests": 1,
            "level": "INFO", "timestamp": "2027-01-15T08:00:00.000Z"
        });
        assert!(check_document(&good).is_ok());
        let broken = |path: &str, value: Value| {
            let mut doc = good.clone();
            *doc.pointer_mut(path).unwrap() = value;
            check_document(&doc).is_err()
        };
        assert!(broken("/Function", json!(1)));
        assert!(broken("/Requests", json!("1")));
        assert!(broken("/_aws/Timestamp", json!(1_800_000_000)));
        assert!(broken(
            "/_aws/CloudWatchMetrics/0/Namespace",
            json!("Other")
        ));
        assert!(broken(
            "/_aws/CloudWatchMetrics/0/Metrics/0/Unit",
            json!("Requests")
        ));
        assert!(broken("/_aws/CloudWatchMetrics/0/Dimensions", json!([])));
        assert!(broken("/level", json!("DEBUG")));
        assert!(broken("/timestamp", json!(1_800_000_000)));
    }

    #[test]
    fn the_stack_comes_from_stack_name_and_may_be_given() {
        assert_eq!(stack_of(Some("billing-prod")), "billing-prod");
        assert_eq!(stack_of(Some(" ")), LOCAL_STACK);
        assert_eq!(stack_of(None), LOCAL_STACK);
        let doc = Document::new()
            .dimension(Dimension::Stack, "billing-dev")
            .value(Metric::ReconcileDrifted, 2.0)
            .to_json(1_800_000_000_000);
        check_document(&doc).unwrap();
        assert_eq!(doc["Stack"], "billing-dev");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Stack"]])
        );
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
