//! `template.yaml`'s alarms: each watches what it claims, notifying AlarmTopicArn if given.

use std::collections::{BTreeMap, BTreeSet};

use billing::telemetry::metrics::{Metric, NAMESPACE};
use billing_tests::Env;
use serde_norway::Value as Yaml;

use super::{
    Deployment, PLATFORM_HOOKS, STREAM_CONSUMER, conditional, entries, functions, one_or_many,
    render, resources_of, str_of, template, template_events,
};

/// The metric the access log's 429 answers are counted in (by a metric filter,
/// not by the code).
const TOO_MANY_REQUESTS: &str = "TooManyRequests";

/// The template's metric filter that makes `metric`: its id and resource.
fn log_metric<'a>(template: &'a Yaml, metric: &str) -> (String, &'a Yaml) {
    let found: Vec<(String, &Yaml)> = resources_of(template, "AWS::Logs::MetricFilter")
        .into_iter()
        .filter(|(_, f)| {
            f["Properties"]["MetricTransformations"]
                .as_sequence()
                .is_some_and(|ts| ts.iter().any(|t| render(&t["MetricName"]) == metric))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "template.yaml: one metric filter makes {metric}"
    );
    found.into_iter().next().expect("one")
}

const SAMPLE_ALARM_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:billing-alarms";

/// The template condition that alarms notify under (AlarmTopicArn given).
const ALARM_TOPIC: &str = "HasAlarmTopic";

/// A map of scalars (`Dimensions` as `{Name: Value}`, a condition block's keys)
/// rendered.
fn dimensions(v: &Yaml) -> BTreeMap<String, String> {
    v.as_sequence()
        .map(|dims| {
            dims.iter()
                .map(|d| (render(&d["Name"]), render(&d["Value"])))
                .collect()
        })
        .unwrap_or_default()
}

/// Every alarm, by what it claims to watch: its namespace, metric, dimensions
/// (the template's own resources), statistic and threshold; each notifies
/// AlarmTopicArn when one is given.
pub(super) async fn template_alarms_watch_what_they_claim(_env: &'static Env) {
    let template = template();
    let params = &template["Parameters"];
    let alarms = resources_of(&template, "AWS::CloudWatch::Alarm");
    let functions = functions(&template);
    let function_id = |binary: &str| {
        functions
            .iter()
            .find(|f| f.binary == binary)
            .map(|f| f.logical_id.clone())
            .unwrap_or_else(|| panic!("template.yaml: no {binary} function"))
    };

    // Notifications: to AlarmTopicArn (ALARM and OK), only when one is given.
    let topic = &params["AlarmTopicArn"];
    assert_eq!(
        topic["Default"].as_str(),
        Some(""),
        "AlarmTopicArn: optional"
    );
    let pattern = str_of(&topic["AllowedPattern"], "AlarmTopicArn");
    assert!(
        pattern.starts_with("^$|") && pattern.contains(":sns:"),
        "AlarmTopicArn: empty or an SNS topic ARN"
    );
    for (given, notifies) in [("", false), (SAMPLE_ALARM_TOPIC, true)] {
        let deployment = Deployment::new(&template, &[("AlarmTopicArn", given)]);
        assert_eq!(
            deployment.conditions.get(ALARM_TOPIC),
            Some(&notifies),
            "{ALARM_TOPIC} with AlarmTopicArn={given:?}"
        );
        for (id, alarm) in &alarms {
            for key in ["AlarmActions", "OKActions"] {
                let v = &alarm["Properties"][key];
                let (condition, _, _) =
                    conditional(v).unwrap_or_else(|| panic!("{id}.{key}: !If [{ALARM_TOPIC}, ..]"));
                assert_eq!(condition, ALARM_TOPIC, "{id}.{key}");
                assert_eq!(
                    deployment.resolve(v).map(one_or_many),
                    notifies.then(|| vec!["Ref:AlarmTopicArn".to_owned()]),
                    "{id}.{key} with AlarmTopicArn={given:?}"
                );
            }
        }
    }

    // Every alarm is claimed below, exactly once.
    let mut claimed: Vec<String> = Vec::new();
    let single = |namespace: &str, metric: &str| -> Vec<(String, &Yaml)> {
        alarms
            .iter()
            .filter(|(_, a)| {
                let p = &a["Properties"];
                p["Namespace"].as_str() == Some(namespace)
                    && p["MetricName"].as_str() == Some(metric)
            })
            .map(|(id, a)| (id.clone(), &a["Properties"]))
            .collect()
    };
    let threshold = |p: &Yaml, id: &str, op: &str, value: &str| {
        assert_eq!(render(&p["ComparisonOperator"]), op, "{id}");
        assert_eq!(render(&p["Threshold"]), value, "{id}: Threshold");
        assert!(
            p["EvaluationPeriods"].as_u64().is_some_and(|n| n >= 1),
            "{id}: EvaluationPeriods"
        );
    };
    let quiet_is_fine = |p: &Yaml, id: &str| {
        assert_eq!(
            p["TreatMissingData"].as_str(),
            Some("notBreaching"),
            "{id}: no data is nothing happening"
        );
    };
    let default_of = |name: &str| render(&params[name]["Default"]);

    // Dead letters: the stream's batches given up on (its on-failure destination)
    // and the platform's events not handled (each hook's rule's and function's
    // dead letters), each queue watched for any visible message.
    let queue = |arn: &Yaml, what: &str| -> String {
        let arn = render(arn);
        let id = arn
            .strip_prefix("GetAtt:")
            .and_then(|a| a.strip_suffix(".Arn"))
            .unwrap_or_else(|| panic!("{what}: !GetAtt <queue>.Arn, found {arn}"))
            .to_owned();
        assert_eq!(
            template["Resources"][id.as_str()]["Type"].as_str(),
            Some("AWS::SQS::Queue"),
            "{what}: {id}"
        );
        id
    };
    let stream_events = template_events(STREAM_CONSUMER);
    let mut dead_letters = BTreeSet::new();
    for (name, e) in entries(&stream_events) {
        let on_failure = &e["Properties"]["DestinationConfig"]["OnFailure"]["Destination"];
        dead_letters.insert(queue(on_failure, &format!("{STREAM_CONSUMER}.{name}")));
    }
    for h in &PLATFORM_HOOKS {
        let hook = &template["Resources"][function_id(h.binary).as_str()]["Properties"];
        for (name, e) in entries(&template_events(h.binary)) {
            let dlq = &e["Properties"]["DeadLetterConfig"]["Arn"];
            assert_eq!(
                queue(dlq, &format!("{}.{name}", h.binary)),
                h.queue,
                "{}.{name}: the rule's dead letters",
                h.binary
            );
            dead_letters.insert(h.queue.to_owned());
        }
        assert_eq!(
            queue(&hook["DeadLetterQueue"]["TargetArn"], h.binary),
            h.queue,
            "{}: the function's dead letters",
            h.binary
        );
    }
    let mut expected_queues = BTreeSet::from(["CleanupStreamFailureQueue".to_owned()]);
    expected_queues.extend(PLATFORM_HOOKS.iter().map(|h| h.queue.to_owned()));
    assert_eq!(dead_letters, expected_queues, "the dead-letter queues");
    let mut watched = BTreeSet::new();
    for (id, p) in single("AWS/SQS", "ApproximateNumberOfMessagesVisible") {
        let dims = dimensions(&p["Dimensions"]);
        assert_eq!(dims.len(), 1, "{id}: Dimensions");
        let queue_name = &dims["QueueName"];
        let q = queue_name
            .strip_prefix("GetAtt:")
            .and_then(|q| q.strip_suffix(".QueueName"))
            .unwrap_or_else(|| panic!("{id}: QueueName !GetAtt <queue>.QueueName"));
        assert!(watched.insert(q.to_owned()), "{id}: {q} watched twice");
        assert_eq!(render(&p["Statistic"]), "Maximum", "{id}");
        threshold(p, &id, "GreaterThanThreshold", "0");
        quiet_is_fine(p, &id);
        claimed.push(id);
    }
    assert_eq!(
        watched, dead_letters,
        "a non-empty alarm per dead-letter queue"
    );

    // The table stream's consumer falls behind.
    let age = single("AWS/Lambda", "IteratorAge");
    assert_eq!(age.len(), 1, "one iterator age alarm");
    for (id, p) in age {
        assert_eq!(
            dimensions(&p["Dimensions"]),
            BTreeMap::from([(
                "FunctionName".to_owned(),
                format!("Ref:{}", function_id(STREAM_CONSUMER))
            )]),
            "{id}: the stream consumer"
        );
        assert_eq!(render(&p["Statistic"]), "Maximum", "{id}");
        threshold(
            p,
            &id,
            "GreaterThanThreshold",
            "Ref:StreamIteratorAgeAlarmMs",
        );
        quiet_is_fine(p, &id);
        claimed.push(id);
    }
    assert_eq!(default_of("StreamIteratorAgeAlarmMs"), "300000");

    // Errors and throttles of every function, one alarm each.
    let every_function: BTreeSet<String> = functions
        .iter()
        .map(|f| format!("Ref:{}", f.logical_id))
        .collect();
    for metric in ["Errors", "Throttles"] {
        let mut covered = BTreeSet::new();
        for (id, p) in single("AWS/Lambda", metric) {
            let dims = dimensions(&p["Dimensions"]);
            assert_eq!(dims.len(), 1, "{id}: Dimensions");
            assert!(
                covered.insert(dims["FunctionName"].clone()),
                "{id}: a second {metric} alarm of {}",
                dims["FunctionName"]
            );
            assert_eq!(render(&p["Statistic"]), "Sum", "{id}");
            assert!(
                p["Period"].as_u64().is_some_and(|s| s <= 300),
                "{id}: Period"
            );
            threshold(p, &id, "GreaterThanThreshold", "0");
            quiet_is_fine(p, &id);
            claimed.push(id);
        }
        assert_eq!(covered, every_function, "a {metric} alarm per function");
    }

    // The API's 5xx rate: 5xx / Count * 100 of the HTTP API's $default stage.
    let math: Vec<&(String, &Yaml)> = alarms
        .iter()
        .filter(|(_, a)| a["Properties"].get("Metrics").is_some())
        .collect();
    assert_eq!(math.len(), 1, "one metric math alarm (the 5xx rate)");
    for (id, alarm) in math {
        let p = &alarm["Properties"];
        let metrics = p["Metrics"].as_sequence().expect("Metrics");
        let stat_id = |name: &str| -> String {
            let found: Vec<&Yaml> = metrics
                .iter()
                .filter(|m| m["MetricStat"]["Metric"]["MetricName"].as_str() == Some(name))
                .collect();
            assert_eq!(found.len(), 1, "{id}: one {name}");
            let m = found[0];
            let metric = &m["MetricStat"]["Metric"];
            assert_eq!(
                render(&metric["Namespace"]),
                "AWS/ApiGateway",
                "{id}: {name}"
            );
            assert_eq!(
                dimensions(&metric["Dimensions"]),
                BTreeMap::from([
                    ("ApiId".to_owned(), "Ref:HttpApi".to_owned()),
                    ("Stage".to_owned(), "$default".to_owned()),
                ]),
                "{id}: {name} of the HTTP API's $default stage"
            );
            assert_eq!(render(&m["MetricStat"]["Stat"]), "Sum", "{id}: {name}");
            assert_eq!(m["ReturnData"].as_bool(), Some(false), "{id}: {name}");
            render(&m["Id"])
        };
        let (errors, requests) = (stat_id("5xx"), stat_id("Count"));
        let returned: Vec<&Yaml> = metrics
            .iter()
            .filter(|m| m["ReturnData"].as_bool() != Some(false))
            .collect();
        assert_eq!(returned.len(), 1, "{id}: one expression returns data");
        let expression: String = str_of(&returned[0]["Expression"], "Expression")
            .split_whitespace()
            .collect();
        assert!(
            [
                format!("{errors}/{requests}*100"),
                format!("100*{errors}/{requests}"),
                format!("({errors}/{requests})*100"),
            ]
            .contains(&expression),
            "{id}: the percentage of 5xx, found {expression}"
        );
        assert_eq!(
            template["Resources"]["HttpApi"]["Type"].as_str(),
            Some("AWS::Serverless::HttpApi")
        );
        threshold(p, id, "GreaterThanThreshold", "Ref:Api5xxRateAlarmPercent");
        quiet_is_fine(p, id);
        claimed.push(id.clone());
    }
    assert_eq!(default_of("Api5xxRateAlarmPercent"), "5");

    // A deletion stuck in the deleting state, from the deletion monitor's metric.
    let stuck = single("BillingAdmin", "OldestDeletionAgeSeconds");
    assert_eq!(stuck.len(), 1, "one stuck deletion alarm");
    for (id, p) in stuck {
        assert_eq!(render(&p["Unit"]), "Seconds", "{id}");
        assert_eq!(render(&p["Statistic"]), "Maximum", "{id}");
        threshold(
            p,
            &id,
            "GreaterThanThreshold",
            "Ref:StuckDeletionThresholdSeconds",
        );
        quiet_is_fine(p, &id);
        claimed.push(id);
    }
    assert_eq!(default_of("StuckDeletionThresholdSeconds"), "900");

    // Listing count changes compacted late, from the stream consumer's metric
    // (the stack only, as the code emits it).
    let lag = Metric::FoldLagSeconds;
    assert!(
        lag.dimensions().is_empty(),
        "FoldLagSeconds: the stack only"
    );
    let folds = single(NAMESPACE, lag.name());
    assert_eq!(folds.len(), 1, "one fold lag alarm");
    for (id, p) in folds {
        assert_eq!(render(&p["Unit"]), lag.unit().as_str(), "{id}");
        assert_eq!(render(&p["Statistic"]), "Maximum", "{id}");
        threshold(p, &id, "GreaterThanThreshold", "Ref:FoldLagAlarmSeconds");
        quiet_is_fine(p, &id);
        claimed.push(id);
    }
    assert_eq!(default_of("FoldLagAlarmSeconds"), "600");

    // And the monitor itself: no DeletingCustomers sample (it emits one every
    // run) is an alarm, so a silent monitor cannot hide a stuck deletion.
    let silent = single("BillingAdmin", "DeletingCustomers");
    assert_eq!(silent.len(), 1, "one deletion monitor heartbeat alarm");
    for (id, p) in silent {
        assert_eq!(render(&p["Statistic"]), "SampleCount", "{id}");
        threshold(p, &id, "LessThanThreshold", "1");
        assert_eq!(
            p["TreatMissingData"].as_str(),
            Some("breaching"),
            "{id}: no data is the alarm"
        );
        // At least two runs of the monitor's schedule fit in what it looks at.
        let looked_at = p["Period"].as_u64().unwrap_or_default()
            * p["EvaluationPeriods"].as_u64().unwrap_or_default();
        assert!(looked_at >= 600, "{id}: covers more than one run");
        claimed.push(id);
    }

    // Billing that differs from Stripe's, from the reconciliation's metric (the
    // stack only, as the code emits it): one run a day, so the alarm looks at a
    // day and stays in ALARM until a run finds no drift.
    let drifted = Metric::ReconcileDrifted;
    assert!(
        drifted.dimensions().is_empty(),
        "ReconcileDrifted: the stack only"
    );
    let drift = single(NAMESPACE, drifted.name());
    assert_eq!(drift.len(), 1, "one reconciliation drift alarm");
    for (id, p) in drift {
        assert_eq!(render(&p["Unit"]), drifted.unit().as_str(), "{id}");
        assert_eq!(render(&p["Statistic"]), "Maximum", "{id}");
        assert_eq!(p["Period"].as_u64(), Some(86_400), "{id}: a day, one run");
        threshold(p, &id, "GreaterThanThreshold", "0");
        quiet_is_fine(p, &id);
        claimed.push(id);
    }

    // 429s (API Gateway's throttling, before any function) per route, counted
    // from the access log by the template's metric filter.
    let (filter_id, filter) = log_metric(&template, TOO_MANY_REQUESTS);
    let filter = &filter["Properties"];
    assert_eq!(
        render(&filter["LogGroupName"]),
        "Ref:ApiAccessLogGroup",
        "{filter_id}"
    );
    let pattern: String = str_of(&filter["FilterPattern"], &filter_id)
        .split_whitespace()
        .collect();
    assert_eq!(pattern, r#"{$.status="429"}"#, "{filter_id}: 429 answers");
    let format =
        render(&template["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"]["Format"]);
    for field in [
        r#""stack":"${AWS::StackName}""#,
        r#""routeKey":"$context.routeKey""#,
        r#""status":"$context.status""#,
    ] {
        assert!(
            format.starts_with("Sub:") && format.contains(field),
            "HttpApi access log: {field}"
        );
    }
    let mut routes_watched = BTreeSet::new();
    for (id, p) in single(NAMESPACE, TOO_MANY_REQUESTS) {
        let dims = dimensions(&p["Dimensions"]);
        assert!(
            routes_watched.insert(dims["Route"].clone()),
            "{id}: a second alarm on {}",
            dims["Route"]
        );
        assert_eq!(render(&p["Statistic"]), "Sum", "{id}");
        assert_eq!(p["Period"].as_u64(), Some(300), "{id}: Period");
        threshold(p, &id, "GreaterThanThreshold", "0");
        quiet_is_fine(p, &id);
        claimed.push(id);
    }
    let every_route: BTreeSet<String> = functions
        .iter()
        .flat_map(|f| f.routes.iter())
        .map(|(method, path)| match path.as_str() {
            "$default" => path.clone(),
            _ => format!("{method} {path}"),
        })
        .collect();
    assert_eq!(routes_watched, every_route, "a 429 alarm per route");

    // Events refused by the platform hooks as not the platform's (the code's
    // SyncEvents, Outcome foreign_sender).
    let foreign = single(NAMESPACE, Metric::SyncEvents.name());
    assert_eq!(foreign.len(), 1, "one foreign events alarm");
    for (id, p) in foreign {
        let dims = dimensions(&p["Dimensions"]);
        assert_eq!(
            dims.get("Source").map(String::as_str),
            Some("platform"),
            "{id}"
        );
        assert_eq!(
            dims.get("Outcome").map(String::as_str),
            Some(billing::sender::FOREIGN_SENDER),
            "{id}"
        );
        assert_eq!(render(&p["Statistic"]), "Sum", "{id}");
        threshold(p, &id, "GreaterThanThreshold", "0");
        quiet_is_fine(p, &id);
        claimed.push(id);
    }

    let all: BTreeSet<String> = alarms.iter().map(|(id, _)| id.clone()).collect();
    let distinct: BTreeSet<String> = claimed.iter().cloned().collect();
    assert_eq!(distinct.len(), claimed.len(), "each alarm claimed once");
    assert_eq!(distinct, all, "every alarm watches one of the above");
}

/// The metrics an alarm watches: (namespace, metric name, dimensions), for a
/// single-metric alarm and for each metric of a metric math alarm.
fn watched_metrics(id: &str, p: &Yaml) -> Vec<(String, String, BTreeMap<String, String>)> {
    match p.get("Metrics").and_then(Yaml::as_sequence) {
        None => vec![(
            render(&p["Namespace"]),
            render(&p["MetricName"]),
            dimensions(&p["Dimensions"]),
        )],
        Some(metrics) => metrics
            .iter()
            .filter_map(|m| m.get("MetricStat"))
            .map(|stat| {
                let metric = &stat["Metric"];
                (
                    render(&metric["Namespace"]),
                    render(&metric["MetricName"]),
                    dimensions(&metric["Dimensions"]),
                )
            })
            .inspect(|(_, name, _)| assert!(!name.is_empty(), "{id}: a metric"))
            .collect(),
    }
}

/// Every alarm selects its own stack's data: a metric of this service
/// (`BillingAdmin`) by its whole dimension set, `Stack` being this stack's name
/// (`AWS::StackName`, which the template gives every function as
/// `STACK_NAME`); an AWS metric by a dimension naming a resource of this
/// template (its function, queue or API). A dev and a prod stack in one
/// account therefore never fire or silence each other's alarms.
pub(super) async fn template_alarms_select_their_own_stack(_env: &'static Env) {
    let template = template();
    let resources: BTreeSet<String> = entries(&template["Resources"])
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    // The stack's name reaches every function, so every metric carries it.
    for f in functions(&template) {
        let env = entries(&f.properties["Environment"]["Variables"]);
        let stack = env
            .iter()
            .find(|(k, _)| k == "STACK_NAME")
            .map(|(_, v)| render(v));
        assert_eq!(
            stack.as_deref(),
            Some("Ref:AWS::StackName"),
            "{}: STACK_NAME",
            f.logical_id
        );
    }
    let names_a_resource = |value: &str| {
        let id = value.strip_prefix("Ref:").or_else(|| {
            value
                .strip_prefix("GetAtt:")
                .and_then(|v| v.split('.').next())
        });
        id.is_some_and(|id| resources.contains(id))
    };
    let alarms = resources_of(&template, "AWS::CloudWatch::Alarm");
    assert!(!alarms.is_empty());
    for (id, alarm) in &alarms {
        let watched = watched_metrics(id, &alarm["Properties"]);
        assert!(!watched.is_empty(), "{id}: watches a metric");
        for (namespace, name, dims) in watched {
            assert!(
                !dims.is_empty(),
                "{id}: {namespace} {name} without dimensions is every stack's"
            );
            if namespace == NAMESPACE {
                // Its dimension set: the code's, or a metric filter's.
                let set: BTreeSet<String> = match Metric::ALL.into_iter().find(|m| m.name() == name)
                {
                    Some(metric) => metric
                        .dimension_set()
                        .iter()
                        .map(|d| d.name().to_owned())
                        .collect(),
                    None => {
                        let (filter_id, filter) = log_metric(&template, &name);
                        let transformation = filter["Properties"]["MetricTransformations"]
                            .as_sequence()
                            .and_then(|ts| ts.iter().find(|t| render(&t["MetricName"]) == name))
                            .expect("its transformation");
                        assert_eq!(
                            render(&transformation["MetricNamespace"]),
                            NAMESPACE,
                            "{filter_id}"
                        );
                        let keys: Vec<(String, String)> = transformation["Dimensions"]
                            .as_sequence()
                            .map(|ds| {
                                ds.iter()
                                    .map(|d| (render(&d["Key"]), render(&d["Value"])))
                                    .collect()
                            })
                            .unwrap_or_default();
                        assert!(
                            keys.contains(&("Stack".to_owned(), "$.stack".to_owned())),
                            "{filter_id}: Stack from the log line's stack"
                        );
                        keys.into_iter().map(|(k, _)| k).collect()
                    }
                };
                let named: BTreeSet<String> = dims.keys().cloned().collect();
                assert_eq!(named, set, "{id}: {name}'s whole dimension set");
                assert_eq!(
                    dims.get("Stack").map(String::as_str),
                    Some("Ref:AWS::StackName"),
                    "{id}: this stack's {name}"
                );
            } else {
                assert!(
                    dims.values().any(|v| names_a_resource(v)),
                    "{id}: {namespace} {name} selects a resource of this stack, found {dims:?}"
                );
            }
        }
    }
}
