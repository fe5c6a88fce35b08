//! Checking metrics (tests; the `testing` feature, which no function links):
//! the lines of a scope captured in memory ([`Capture`]), and a document held to
//! what CloudWatch accepts ([`check_document`]).

use std::future::Future;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::catalogue::NAMESPACE;

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
}

/// Keeps `line` in the capture of the running scope; false outside any.
pub(super) fn take(line: &str) -> bool {
    CAPTURE.try_with(|c| c.push(line)).is_ok()
}

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

/// Helpers of the unit tests: what a piece of work emits, read back.
#[cfg(test)]
mod helpers {
    use super::*;

    /// The documents `work` emits.
    pub(crate) fn captured(work: impl FnOnce()) -> Vec<Value> {
        let capture = Capture::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(capture.scope(async { work() }));
        capture.documents()
    }

    /// The one document `work` emits, checked.
    pub(crate) fn one(work: impl FnOnce()) -> Value {
        let docs = captured(work);
        assert_eq!(docs.len(), 1, "{docs:?}");
        let doc = docs.into_iter().next().unwrap();
        check_document(&doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
        doc
    }

    /// (dimension names, metric names) of each directive.
    pub(crate) fn directives(doc: &Value) -> Vec<(Vec<String>, Vec<String>)> {
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

    /// Owned strings.
    pub(crate) fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }
}
#[cfg(test)]
pub(crate) use helpers::{captured, directives, one, strings};

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
}
