//! Metrics (CloudWatch EMF lines), joinable logs, and the deletion monitor.

use std::time::Duration;

use billing::domain::{CustomerId, time};
use billing::monitor;
use billing::telemetry::LogLines;
use billing::telemetry::metrics::{Capture, check_document};
use billing_tests::app::{API, Spec, TestApp, token};
use billing_tests::{Env, Reply};
use futures_util::future::join_all;
use http::{Method, StatusCode};
use lambda_http::RequestExt;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use serde_json::{Value, json};

use crate::TestFn;

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        emf_for_a_successful_request,
        emf_for_auth_failures_names_the_reason,
        emf_for_a_deletion_and_concurrent_writes,
        logs_of_a_request_carry_its_ids_and_no_secrets,
        deletion_monitor_counts_deleting_customers_and_their_age,
        deleting_customers_stay_out_of_every_listing,
    ]
}

/// Request headers, owned.
type Headers<'a> = &'a [(&'a str, String)];
/// One request header.
type Header<'a> = (&'a str, &'a str);

/// The EMF documents `work` emitted, each checked as EMF.
async fn emitted<T>(work: impl Future<Output = T>) -> (T, Vec<Value>) {
    let capture = Capture::new();
    let out = capture.scope(work).await;
    let docs = capture.documents();
    assert_eq!(docs.len(), capture.lines().len(), "every line is JSON");
    for doc in &docs {
        check_document(doc).unwrap_or_else(|e| panic!("not EMF ({e}): {doc}"));
    }
    (out, docs)
}

/// The documents defining `metric`.
fn defining<'a>(docs: &'a [Value], metric: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|d| {
            check_document(d)
                .map(|names| names.iter().any(|n| n == metric))
                .unwrap_or(false)
        })
        .collect()
}

/// (dimension names, metric names) of a document's directives.
fn directives(doc: &Value) -> Vec<(Vec<&str>, Vec<&str>)> {
    doc["_aws"]["CloudWatchMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["Dimensions"][0]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap())
                    .collect(),
                d["Metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["Name"].as_str().unwrap())
                    .collect(),
            )
        })
        .collect()
}

async fn emf_for_a_successful_request(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::default()).await;
    let (reply, docs) = emitted(app.get(&format!("/customer/{}", c.id))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(docs.len(), 1, "{docs:?}");
    let doc = &docs[0];
    assert_eq!(
        directives(doc),
        [
            (vec!["Stack", "Function", "StatusClass"], vec!["Requests"]),
            (vec!["Stack", "Function"], vec!["Latency"]),
        ]
    );
    assert_eq!(
        doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "BillingAdmin"
    );
    assert_eq!(doc["Stack"], billing::telemetry::metrics::LOCAL_STACK);
    assert_eq!(doc["Function"], "get-customer");
    assert_eq!(doc["StatusClass"], "2xx");
    assert_eq!(doc["Requests"], 1.0);
    assert!(doc["Latency"].as_f64().unwrap() > 0.0);
    assert!(doc["requestId"].as_str().is_some_and(|s| !s.is_empty()));
    let now = chrono::Utc::now().timestamp_millis();
    let stamp = doc["_aws"]["Timestamp"].as_i64().unwrap();
    assert!((now - 60_000..=now).contains(&stamp), "{stamp} vs {now}");

    // A listing and an unknown route count too, each as its function.
    let (_, docs) = emitted(app.get("/customers?status=active")).await;
    assert_eq!(docs[0]["Function"], "list-customers");
    let (reply, docs) = emitted(app.get("/nowhere")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        (docs.len(), &docs[0]["Function"], &docs[0]["StatusClass"]),
        (1, &json!("route-not-found"), &json!("4xx"))
    );
}

async fn emf_for_auth_failures_names_the_reason(env: &'static Env) {
    let app = TestApp::new(env).await;
    let expired = {
        // signed by the dev key, expired well beyond the leeway
        let settings = billing_tests::app::jwt_settings();
        let iat = chrono::Utc::now().timestamp() as u64 - 3600;
        let claims = billing::auth::Claims {
            sub: uuid::Uuid::new_v4().to_string(),
            roles: vec!["billing_admin".into()],
            iss: settings.issuer.clone(),
            aud: settings.audience.clone(),
            exp: iat + 60,
            iat,
        };
        let key =
            jsonwebtoken::EncodingKey::from_ed_pem(billing_tests::app::PRIVATE_KEY.as_bytes())
                .unwrap();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
            &claims,
            &key,
        )
        .unwrap()
    };
    let user = token(&uuid::Uuid::new_v4().to_string(), &["billing_user"], 600);
    let cases: [(Headers, StatusCode, &str); 6] = [
        (&[], StatusCode::UNAUTHORIZED, "missing"),
        (
            &[("authorization", "Basic abc".into())],
            StatusCode::UNAUTHORIZED,
            "malformed",
        ),
        (
            &[("authorization", "Bearer not-a-jwt".into())],
            StatusCode::UNAUTHORIZED,
            "malformed_token",
        ),
        (
            &[("authorization", format!("Bearer {expired}"))],
            StatusCode::UNAUTHORIZED,
            "expired",
        ),
        (
            &[
                ("api-key", "ak_00000000000000000000000000000000".into()),
                ("api-secret", "nope".into()),
            ],
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        ),
        (
            &[("authorization", format!("Bearer {user}"))],
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ];
    for (headers, status, reason) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (reply, docs) = emitted(app.call(Method::GET, "/customers", &headers, None)).await;
        assert_eq!(reply.status, status, "{reason}");
        let failures = defining(&docs, "AuthFailures");
        assert_eq!(failures.len(), 1, "{reason}: {docs:?}");
        let doc = failures[0];
        assert_eq!(
            directives(doc),
            [(vec!["Stack", "Function", "Reason"], vec!["AuthFailures"])],
            "{reason}"
        );
        assert_eq!(doc["Reason"], reason);
        assert_eq!(doc["Function"], "list-customers");
        assert_eq!(doc["AuthFailures"], 1.0);
        let requests = defining(&docs, "Requests");
        assert_eq!(requests.len(), 1, "{reason}");
        assert_eq!(requests[0]["StatusClass"], "4xx", "{reason}");
    }
    // and a request that passes counts no failure
    let (_, docs) = emitted(app.get("/customers")).await;
    assert!(defining(&docs, "AuthFailures").is_empty());
}

async fn emf_for_a_deletion_and_concurrent_writes(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer_with_stripe(Spec::with_members(2)).await;
    let (reply, docs) =
        emitted(app.admin(Method::DELETE, &format!("/customer/{}", c.id), None)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let requests = defining(&docs, "Requests");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["Function"], "delete-customer");
    assert_eq!(requests[0]["StatusClass"], "2xx");
    // Every step of the cascade, in order, each with its duration, and the one
    // Stripe call (deleting the customer).
    let steps: Vec<&str> = defining(&docs, "CascadeSteps")
        .iter()
        .map(|d| {
            assert_eq!(d["Outcome"], "ok", "{d}");
            assert!(
                d["CascadeStepDuration"]
                    .as_f64()
                    .is_some_and(|ms| ms >= 0.0),
                "{d}"
            );
            d["Step"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        steps,
        [
            "mark_deleting",
            "close_billing",
            "delete_members",
            "delete_record"
        ]
    );
    let stripe = defining(&docs, "StripeCalls");
    assert_eq!(stripe.len(), 1, "{stripe:?}");
    assert_eq!(stripe[0]["Operation"], "delete_customer");
    assert_eq!(stripe[0]["StripeErrors"], 0.0);

    // Concurrent adds to one customer, in this task: conflicts, if DynamoDB
    // reports any, are counted for add-member with no more retries than conflicts.
    let c = app.customer(Spec::default()).await;
    let path = format!("/customer/{}/member", c.id);
    let adds = (0..15).map(|_| {
        app.admin(
            Method::POST,
            &path,
            Some(json!({"userID": uuid::Uuid::new_v4(), "role": "user"})),
        )
    });
    let (replies, docs) = emitted(join_all(adds)).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::CREATED
        || r.status == StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(defining(&docs, "Requests").len(), 15);
    for doc in defining(&docs, "TransactionConflicts") {
        assert_eq!(
            directives(doc),
            [(
                vec!["Stack", "Function"],
                vec!["TransactionConflicts", "TransactionRetries"]
            )]
        );
        assert_eq!(doc["Function"], "add-member");
        let conflicts = doc["TransactionConflicts"].as_f64().unwrap();
        let retries = doc["TransactionRetries"].as_f64().unwrap();
        assert!(conflicts >= 1.0 && retries <= conflicts, "{doc}");
    }
}

/// A request as API Gateway (HTTP API) and Lambda deliver it: with a Lambda
/// context (request id, X-Ray trace header) and API Gateway's request context.
async fn invoke(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    ids: (&str, &str, &str),
) -> Reply {
    let (lambda_id, api_id, trace_header) = ids;
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("{API}{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let (parts, ()) = builder.body(()).unwrap().into_parts();
    let mut context = lambda_http::Context::default();
    context.request_id = lambda_id.to_owned();
    context.xray_trace_id = Some(trace_header.to_owned());
    let mut api = ApiGatewayV2httpRequestContext::default();
    api.request_id = Some(api_id.to_owned());
    let req = billing::http::lambda_request(parts, Vec::new())
        .with_lambda_context(context)
        .with_request_context(RequestContext::ApiGatewayV2(api));
    Reply::from(billing::api::dispatch(&app.state, req).await)
}

async fn logs_of_a_request_carry_its_ids_and_no_secrets(env: &'static Env) {
    let app = TestApp::new(env).await;
    let c = app.customer_with_stripe(Spec::default()).await;
    let admin = token(&uuid::Uuid::new_v4().to_string(), &["billing_admin"], 600);
    let key = billing::auth::issue_api_key(
        &uuid::Uuid::new_v4().to_string(),
        vec!["billing_admin".into()],
        None,
    )
    .unwrap();
    app.store
        .put_api_key(&key.key_id, &key.record)
        .await
        .unwrap();
    let bearer = format!("Bearer {admin}");
    let api_key = [
        ("api-key", key.key_id.as_str()),
        ("api-secret", key.secret.as_str()),
    ];
    let requests: [(Method, String, &[Header]); 4] = [
        (
            Method::GET,
            format!("/customer/{}", c.id),
            &[("authorization", bearer.as_str())],
        ),
        (Method::GET, format!("/customer/{}", c.id), &api_key),
        (
            Method::GET,
            "/customers".into(),
            &[("authorization", "Bearer tampered.token.value")],
        ),
        (
            Method::DELETE,
            format!("/customer/{}", c.id),
            &[("authorization", bearer.as_str())],
        ),
    ];
    let secrets = [
        admin.as_str(),
        key.secret.as_str(),
        key.record.secret_hash.as_str(),
        "sk_test_local",
        "tampered.token.value",
    ];
    for (n, (method, path, headers)) in requests.into_iter().enumerate() {
        let lambda_id = uuid::Uuid::new_v4().to_string();
        let api_id = format!("api-{n}-{}", uuid::Uuid::new_v4().simple());
        let root = format!(
            "1-67f3a1b2-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..24]
        );
        let header = format!("Root={root};Parent=53995c3f42cd8ad8;Sampled=1");
        // At the most verbose filter anyone can ask for (`init_capturing` in
        // main.rs: `trace`); the noisy crates stay capped.
        let logs = LogLines::default();
        let reply = logs
            .scope(invoke(
                &app,
                method.clone(),
                &path,
                headers,
                (&lambda_id, &api_id, &header),
            ))
            .await;
        let what = format!("{method} {path} ({})", reply.status);
        let lines = logs.lines();
        assert!(lines.len() >= 2, "{what}: {lines:?}");
        let mut debug_lines = 0;
        for line in &lines {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let request = v["spans"]
                .as_array()
                .and_then(|spans| spans.iter().find(|s| s["name"] == "request"))
                .unwrap_or_else(|| panic!("{what}: a line outside the request span: {line}"));
            assert_eq!(request["request_id"], lambda_id.as_str(), "{what}: {line}");
            assert_eq!(request["api_request_id"], api_id.as_str(), "{what}: {line}");
            assert_eq!(request["trace_id"], root.as_str(), "{what}: {line}");
            if v["level"] == "DEBUG" || v["level"] == "TRACE" {
                debug_lines += 1;
            }
            for secret in secrets {
                assert!(!line.contains(secret), "{what}: a secret in {line}");
            }
            // nothing of the HTTP exchanges below (headers, SigV4 requests, bodies)
            for leak in [
                "canonical_request",
                "signing request",
                "x-amz-target",
                "x-amz-security-token",
                "\"Item\"",
            ] {
                assert!(!line.contains(leak), "{what}: {leak} in {line}");
            }
        }
        let handled = lines.iter().filter(|l| l.contains("\"handled\"")).count();
        assert_eq!(handled, 1, "{what}: one handled line");
        if reply.status != StatusCode::UNAUTHORIZED {
            // the store's operations logged at debug, inside the request
            assert!(debug_lines > 0, "{what}: {lines:?}");
            assert!(
                lines.iter().any(|l| l.contains("\"operation\"")),
                "{what}: {lines:?}"
            );
        } else {
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("\"auth_failure\":\"malformed_token\"")),
                "{what}: {lines:?}"
            );
        }
        // the error id of an error answer is in its log line
        if let Some(error_id) = reply.headers.get("x-error-id") {
            let error_id = error_id.to_str().unwrap();
            assert!(
                lines.iter().any(|l| l.contains(error_id)),
                "{what}: {error_id} in {lines:?}"
            );
        }
        assert!(reply.status.is_success() || reply.status == StatusCode::UNAUTHORIZED);
    }
}

async fn deletion_monitor_counts_deleting_customers_and_their_age(env: &'static Env) {
    let app = TestApp::new(env).await;
    // GIVEN no customer being deleted: 0 and 0
    let (backlog, docs) = emitted(monitor::report(&app.store)).await;
    let backlog = backlog.unwrap();
    assert_eq!((backlog.deleting, backlog.oldest_age), (0, Duration::ZERO));
    assert_eq!(docs.len(), 1);
    assert_eq!(
        directives(&docs[0]),
        [(
            vec!["Stack"],
            vec!["DeletingCustomers", "OldestDeletionAgeSeconds"]
        )]
    );
    assert_eq!(docs[0]["DeletingCustomers"], 0.0);
    assert_eq!(docs[0]["OldestDeletionAgeSeconds"], 0.0);
    assert_eq!(
        docs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Unit"],
        "Seconds"
    );

    // WHEN two of three customers are marked deleting, one after the other
    let mut ids = Vec::new();
    for _ in 0..3 {
        let c = app.customer(Spec::with_members(2)).await;
        ids.push(CustomerId::parse(&c.id).unwrap());
    }
    let first = app
        .store
        .begin_deletion(&ids[0], &billing_tests::by_test())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = app
        .store
        .begin_deletion(&ids[1], &billing_tests::by_test())
        .await
        .unwrap();
    let first_since = first.deleting_since.unwrap();
    // (the table keeps deletingSince to the millisecond)
    let stored = |since: Option<billing::domain::Timestamp>| -> billing::domain::Timestamp {
        time::to_millis(&since.unwrap()).parse().unwrap()
    };
    let (stored_first, stored_second) =
        (stored(first.deleting_since), stored(second.deleting_since));

    // THEN the record sits in GSI1's DELETING partition, by when its deletion began
    let raw = app
        .store
        .client()
        .get_item()
        .table_name(app.store.table_name())
        .set_key(Some(billing::store::table::customer_key(&ids[0])))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let text = |name: &str| raw.get(name).and_then(|v| v.as_s().ok()).cloned();
    assert_eq!(text("GSI1PK").as_deref(), Some("DELETING"));
    assert_eq!(
        text("GSI1SK"),
        Some(format!("{}#{}", time::to_millis(&first_since), ids[0]))
    );
    for gone in ["GSI2PK", "GSI3PK", "GSI4PK"] {
        assert_eq!(text(gone), None, "{gone}");
    }

    // AND both are counted, the age being the oldest's
    let (backlog, docs) = emitted(monitor::report(&app.store)).await;
    let backlog = backlog.unwrap();
    let expected = monitor::age(Some(stored_first), chrono::Utc::now());
    assert_eq!(backlog.deleting, 2);
    assert!(
        backlog.oldest_age <= expected && expected - backlog.oldest_age < Duration::from_secs(5),
        "{backlog:?} vs {expected:?}"
    );
    assert_eq!(docs[0]["DeletingCustomers"], 2.0);
    let reported = docs[0]["OldestDeletionAgeSeconds"].as_f64().unwrap();
    assert!(reported >= 0.0);
    assert!((reported - backlog.oldest_age.as_secs_f64()).abs() < 0.002);

    // AND the age grows while the deletion stays unfinished
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = monitor::report(&app.store).await.unwrap();
    assert_eq!(later.deleting, 2);
    assert!(
        later.oldest_age >= backlog.oldest_age + Duration::from_secs(1),
        "{later:?} after {backlog:?}"
    );

    // WHEN the oldest deletion finishes, the other one is the oldest
    app.state
        .cascade
        .run(&ids[0], &billing_tests::by_test())
        .await
        .unwrap();
    let after = monitor::report(&app.store).await.unwrap();
    let (now, was) = (
        monitor::age(Some(stored_second), chrono::Utc::now()),
        monitor::age(Some(stored_first), chrono::Utc::now()),
    );
    assert_eq!(after.deleting, 1);
    assert!(
        after.oldest_age <= now && now - after.oldest_age < Duration::from_secs(5),
        "{after:?} vs {now:?}"
    );
    assert!(
        after.oldest_age + Duration::from_millis(10) < was,
        "{after:?} vs {was:?}"
    );
    // and once none is left, 0 and 0 again
    app.state
        .cascade
        .run(&ids[1], &billing_tests::by_test())
        .await
        .unwrap();
    let none = monitor::report(&app.store).await.unwrap();
    assert_eq!((none.deleting, none.oldest_age), (0, Duration::ZERO));
}

async fn deleting_customers_stay_out_of_every_listing(env: &'static Env) {
    let app = TestApp::new(env).await;
    let mut made = Vec::new();
    for (tier, status) in [("pro", "active"), ("pro", "past_due"), ("free", "active")] {
        let c = app
            .customer(Spec {
                tier,
                status,
                members: 1,
                ..Spec::default()
            })
            .await;
        made.push(c.id);
    }
    let queries = [
        "/customers",
        "/customers?status=active",
        "/customers?tierName=pro",
        "/customers?tierName=pro&status=active",
        "/customers?limit=1&page=2",
    ];
    let mut before = Vec::new();
    for q in queries {
        before.push(app.get(q).await.json);
    }
    // WHEN the first customer (pro, active) is being deleted
    let deleting = CustomerId::parse(&made[0]).unwrap();
    app.store
        .begin_deletion(&deleting, &billing_tests::by_test())
        .await
        .unwrap();
    // THEN no listing shows it and every total dropped by one where it was counted
    for (q, was) in queries.iter().zip(&before) {
        let now = app.get(q).await;
        assert_eq!(now.status, StatusCode::OK, "{q}");
        let ids: Vec<&str> = now.json["customers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert!(!ids.contains(&made[0].as_str()), "{q}: {ids:?}");
        let items = |v: &Value| v["items"].as_u64().unwrap();
        assert_eq!(items(&now.json), items(was) - 1, "{q}");
    }
    assert_eq!(
        app.get("/customers?limit=100").await.json["items"],
        json!(2)
    );
    // AND the members listing and the record are gone for every endpoint but DELETE
    assert_eq!(
        app.get(&format!("/customer/{}", made[0])).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/customer/{}/members", made[0]))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // AND the monitor sees it, and no longer once the DELETE finished it
    assert_eq!(monitor::report(&app.store).await.unwrap().deleting, 1);
    let reply = app
        .admin(Method::DELETE, &format!("/customer/{}", made[0]), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(monitor::report(&app.store).await.unwrap().deleting, 0);
    assert_eq!(crate::members::items_of(&app, &made[0]).await, 0);
    // and the other listings are as they were without it
    assert_eq!(app.get("/customers").await.json["items"], json!(2));
    assert_eq!(
        app.get("/customers?tierName=pro").await.json["items"],
        json!(1)
    );
}
