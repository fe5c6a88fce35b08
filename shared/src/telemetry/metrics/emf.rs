//! One Embedded Metric Format document: metric values, the dimension values
//! they need and extra properties, written as one JSON line ([`Document::emit`]).
//!
//! Every document carries the `Stack` dimension (this process's [`stack`]) and,
//! for Lambda's log-level filtering, a `timestamp` and a `level` ([`level_for`]).

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use super::catalogue::{Dimension, Metric, NAMESPACE};
use super::sink::write_line;

/// One EMF document: metric values, the dimension values they need, and extra
/// properties (searchable in Logs Insights, never dimensions).
#[derive(Debug, Clone, Default)]
pub struct Document {
    dimensions: Vec<(Dimension, String)>,
    values: Vec<(Metric, f64)>,
    properties: Vec<(&'static str, String)>,
}

/// The value written for a dimension the document was not given.
pub(super) const UNKNOWN: &str = "unknown";

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::capture::{captured, check_document, directives};

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
}
