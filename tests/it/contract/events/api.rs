//! The API Gateway events of `events/`: each endpoint's, the `$default` route's
//! and the console's, through their handlers.

use super::*;

/// The event is the payload 2.0 API Gateway sends for this endpoint's route.
pub(super) fn check_event(endpoint: Endpoint, name: &str, event: &Value) {
    let route_key = format!("{} {PREFIX}{}", endpoint.method(), endpoint.path());
    let ctx = &event["requestContext"];
    assert_eq!(event["version"], "2.0", "{name}");
    assert_eq!(event["routeKey"], route_key.as_str(), "{name}");
    assert_eq!(ctx["routeKey"], route_key.as_str(), "{name}");
    assert_eq!(ctx["stage"], "$default", "{name}");
    assert_eq!(ctx["http"]["method"], endpoint.method().as_str(), "{name}");
    let raw_path = event["rawPath"].as_str().expect("rawPath");
    assert_eq!(ctx["http"]["path"], raw_path, "{name}");
    assert_eq!(
        event["headers"]["authorization"],
        format!("Bearer {PLACEHOLDER}").as_str(),
        "{name}: the token is a placeholder the test replaces"
    );
    // The path parameters are what the router extracts from rawPath.
    let (routed, params) = billing::http::route(&endpoint.method(), raw_path)
        .unwrap_or_else(|e| panic!("{name}: rawPath does not route: {e}"));
    assert_eq!(routed, endpoint, "{name}");
    let params: BTreeMap<String, Value> = params.into_iter().map(|(k, v)| (k, json!(v))).collect();
    let given: BTreeMap<String, Value> = event["pathParameters"]
        .as_object()
        .map(|m| m.clone().into_iter().collect())
        .unwrap_or_default();
    assert_eq!(given, params, "{name}: pathParameters");
    // queryStringParameters is what rawQueryString holds.
    let raw_query = event["rawQueryString"].as_str().expect("rawQueryString");
    let query: BTreeMap<String, Value> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), json!(v))
        })
        .collect();
    let given: BTreeMap<String, Value> = event["queryStringParameters"]
        .as_object()
        .map(|m| m.clone().into_iter().collect())
        .unwrap_or_default();
    assert_eq!(given, query, "{name}: queryStringParameters");
}

/// What an endpoint's event needs besides the seeded customers: for
/// `list-audit.json`, two changes with known audit entries (ADMIN made a
/// user, then MEMBER removed), made directly for request `AUDITED_REQUEST`.
pub(super) async fn prepare(endpoint: Endpoint, app: &TestApp) {
    if endpoint != Endpoint::ListAudit {
        return;
    }
    let origin = by_test().for_request(AUDITED_REQUEST);
    app.store
        .change_member_role(&customer_id(), &user(ADMIN), Role::User, &origin)
        .await
        .expect("change a role");
    // Entries sort by their time (milliseconds), then by id.
    tokio::time::sleep(Duration::from_millis(5)).await;
    app.store
        .remove_member(&customer_id(), &user(MEMBER), &origin)
        .await
        .expect("remove a member");
}

/// The customer's whole audit trail as listed, newest first.
pub(super) async fn audit_trail(app: &TestApp) -> Vec<Value> {
    let reply = app
        .get(&format!("/customer/{CUSTOMER}/audit?limit=100"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    let events = reply.json["events"].as_array().expect("events").clone();
    assert_eq!(
        reply.json["items"],
        json!(events.len()),
        "under 100 entries"
    );
    events
}

/// An audit event as listed: its fields, a UUID id, its time RFC 3339 with
/// milliseconds as the table writes it; returns it without `id` and `at`.
pub(super) fn audit_event(e: &Value) -> Value {
    let fields: BTreeSet<&str> = e
        .as_object()
        .expect("event")
        .keys()
        .map(String::as_str)
        .collect();
    let always = BTreeSet::from([
        "id",
        "action",
        "at",
        "actor",
        "requestID",
        "customerID",
        "changes",
    ]);
    assert!(always.is_subset(&fields), "{e}: every event has {always:?}");
    assert!(
        fields
            .difference(&always)
            .all(|f| ["userID", "role"].contains(f)),
        "{e}: no other fields"
    );
    assert!(
        uuid::Uuid::parse_str(e["id"].as_str().expect("id")).is_ok(),
        "{e}"
    );
    let at: Timestamp = serde_json::from_value(e["at"].clone()).expect("at: RFC 3339");
    assert_eq!(
        json!(time::to_millis(&at)),
        e["at"],
        "at: with milliseconds"
    );
    let mut rest = e.clone();
    if let Some(fields) = rest.as_object_mut() {
        fields.remove("id");
        fields.remove("at");
    }
    rest
}

/// The response the handler gave the event, and the table after it; `caller`
/// is the subject of the event's token.
pub(super) async fn check_outcome(endpoint: Endpoint, app: &TestApp, reply: &Reply, caller: &str) {
    let json_type = || {
        assert_eq!(reply.headers["content-type"], "application/json");
    };
    match endpoint {
        Endpoint::ListCustomers => {
            assert_eq!(reply.status, StatusCode::OK);
            json_type();
            assert_eq!(
                reply.json,
                json!({
                    "customers": [{
                        "id": CUSTOMER, "name": "Acme Corp", "tierName": "pro",
                        "subscriptionStatus": "active", "memberCount": 3,
                        "createdAt": CREATED_AT, "ownerUserID": OWNER,
                    }],
                    "items": 1,
                    "pages": 1,
                })
            );
        }
        Endpoint::GetCustomer => {
            assert_eq!(reply.status, StatusCode::OK);
            json_type();
            assert_eq!(
                reply.json,
                json!({
                    "id": CUSTOMER, "name": "Acme Corp", "createdAt": CREATED_AT,
                    "tierName": "pro", "tierID": TIER_ID, "subscriptionStatus": "active",
                    "memberCount": 3, "ownerUserID": OWNER,
                })
            );
        }
        Endpoint::DeleteCustomer => {
            assert_eq!(reply.status, StatusCode::NO_CONTENT);
            assert_eq!(reply.json, Value::Null);
            assert_eq!(
                app.store.find_customer(&customer_id()).await.ok(),
                Some(None)
            );
            for u in [OWNER, ADMIN, MEMBER] {
                assert_eq!(app.store.membership_of(&user(u)).await.ok(), Some(None));
            }
        }
        Endpoint::ListMembers => {
            assert_eq!(reply.status, StatusCode::OK);
            json_type();
            assert_eq!(
                (&reply.json["items"], &reply.json["pages"]),
                (&json!(3), &json!(1))
            );
            let members = reply.json["members"].as_array().expect("members");
            let got: Vec<Value> = members
                .iter()
                .map(|m| json!([m["userID"], m["role"], m["joinedAt"]]))
                .collect();
            // Owner, admins, users; seeding joins them one second apart, in fixture order.
            let want = vec![
                json!([OWNER, "owner", "2026-02-03T09:14:22Z"]),
                json!([ADMIN, "admin", "2026-02-03T09:14:23Z"]),
                json!([MEMBER, "user", "2026-02-03T09:14:24Z"]),
            ];
            assert_eq!(got, want);
            for m in members {
                let keys: BTreeSet<&str> = m
                    .as_object()
                    .expect("member")
                    .keys()
                    .map(String::as_str)
                    .collect();
                assert_eq!(
                    keys,
                    BTreeSet::from(["roleID", "userID", "role", "joinedAt"])
                );
                assert!(uuid::Uuid::parse_str(m["roleID"].as_str().expect("roleID")).is_ok());
            }
        }
        Endpoint::AddMember => {
            assert_eq!(reply.status, StatusCode::CREATED);
            json_type();
            assert_eq!(reply.json, json!({"message": "acknowledged"}));
            assert_eq!(
                app.store.membership_of(&user(NEWCOMER)).await.ok(),
                Some(Some((customer_id(), Role::User)))
            );
            let customer = stored_customer(app).await;
            assert_eq!(customer.member_count, 4);
        }
        Endpoint::RemoveMember => {
            assert_eq!(reply.status, StatusCode::NO_CONTENT);
            assert_eq!(reply.json, Value::Null);
            assert_eq!(
                app.store.membership_of(&user(MEMBER)).await.ok(),
                Some(None)
            );
            let customer = stored_customer(app).await;
            assert_eq!(customer.member_count, 2);
        }
        Endpoint::ChangeMemberRole => {
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
            json_type();
            assert_eq!(
                reply.json,
                json!({"userID": MEMBER, "role": "admin", "joinedAt": "2026-02-03T09:14:24Z"})
            );
            assert_eq!(
                app.store.membership_of(&user(MEMBER)).await.ok(),
                Some(Some((customer_id(), Role::Admin)))
            );
            let customer = stored_customer(app).await;
            assert_eq!(customer.member_count, 3, "memberCount unchanged");
            // The member moved among the admins (after ADMIN, who joined first).
            let members = app.get(&format!("/customer/{CUSTOMER}/members")).await;
            let order: Vec<Value> = members.json["members"]
                .as_array()
                .expect("members")
                .iter()
                .map(|m| json!([m["userID"], m["role"]]))
                .collect();
            assert_eq!(
                order,
                [
                    json!([OWNER, "owner"]),
                    json!([ADMIN, "admin"]),
                    json!([MEMBER, "admin"])
                ]
            );
            // and the change is the newest audit entry, by the caller, for
            // this request
            let trail = audit_trail(app).await;
            let newest = audit_event(&trail[0]);
            let request = newest["requestID"].as_str().expect("requestID");
            assert!(uuid::Uuid::parse_str(request).is_ok(), "the request's id");
            assert_eq!(
                newest,
                json!({
                    "action": "member.role_changed",
                    "actor": {"type": "user", "subject": caller},
                    "requestID": request,
                    "customerID": CUSTOMER, "userID": MEMBER, "role": "admin",
                    "changes": {"role": {"from": "user", "to": "admin"}},
                })
            );
        }
        Endpoint::GetUserCustomer => {
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
            json_type();
            assert_eq!(
                reply.json,
                json!({"customerID": CUSTOMER, "role": "admin", "joinedAt": "2026-02-03T09:14:23Z"})
            );
            // and a user of no customer is 404
            let none = app.get(&format!("/user/{NEWCOMER}/customer")).await;
            assert_eq!(none.status, StatusCode::NOT_FOUND);
            assert_eq!(none.error_code(), "membership_not_found");
        }
        Endpoint::ListAudit => {
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
            json_type();
            // The first page (limit=2) of the whole trail: seeding's entries
            // and the two changes `prepare` made.
            let trail = audit_trail(app).await;
            let total = trail.len();
            assert!(total > 2, "seeding and the two changes are audited");
            assert_eq!(
                (&reply.json["items"], &reply.json["pages"]),
                (&json!(total), &json!(total.div_ceil(2)))
            );
            let events = reply.json["events"].as_array().expect("events");
            assert_eq!(events.as_slice(), &trail[..2]);
            // newest first, each by the test for its request: the removal,
            // then the role change
            let by_test = json!({"type": "system", "name": "test"});
            assert_eq!(
                [audit_event(&events[0]), audit_event(&events[1])],
                [
                    json!({
                        "action": "member.removed", "actor": by_test,
                        "requestID": AUDITED_REQUEST, "customerID": CUSTOMER,
                        "userID": MEMBER, "role": "user",
                        "changes": {"role": {"from": "user", "to": null}},
                    }),
                    json!({
                        "action": "member.role_changed", "actor": by_test,
                        "requestID": AUDITED_REQUEST, "customerID": CUSTOMER,
                        "userID": ADMIN, "role": "user",
                        "changes": {"role": {"from": "admin", "to": "user"}},
                    }),
                ]
            );
            let times: Vec<&str> = trail
                .iter()
                .map(|e| e["at"].as_str().expect("at"))
                .collect();
            assert!(times.is_sorted_by(|a, b| a >= b), "newest first: {times:?}");
            for e in &trail {
                audit_event(e);
            }
            // and `next` leads to the entries after them
            let next = reply.json["next"]
                .as_str()
                .expect("next: more entries follow");
            let after = app
                .get(&format!("/customer/{CUSTOMER}/audit?limit=2&cursor={next}"))
                .await;
            assert_eq!(after.status, StatusCode::OK, "{:?}", after.json);
            assert_eq!(after.json["events"], json!(trail[2..total.min(4)]));
        }
    }
}

/// For an event carrying an `Idempotency-Key`: the same request again is the
/// same answer, marked replayed, with nothing done twice (no new audit
/// entry); the key with another body is 422 `idempotency_key_reused`.
pub(super) async fn check_idempotent_retry(
    endpoint: Endpoint,
    app: &TestApp,
    name: &str,
    signed: &str,
    first: &Reply,
) {
    let event: Value = serde_json::from_str(signed).expect("event JSON");
    if !endpoint.idempotent() || event["headers"].get("idempotency-key").is_none() {
        return;
    }
    let send = |raw: String| async move {
        let req = lambda_http::request::from_str(&raw).expect("event parses");
        Reply::from(billing::api::handle(&app.state, endpoint, req).await)
    };
    assert!(
        first.headers.get("idempotent-replayed").is_none(),
        "{name}: the first answer is no replay"
    );
    let trail = audit_trail(app).await;
    let again = send(signed.to_owned()).await;
    assert_eq!(
        (again.status, &again.json),
        (first.status, &first.json),
        "{name}: retried"
    );
    assert_eq!(again.headers["idempotent-replayed"], "true", "{name}");
    assert_eq!(audit_trail(app).await, trail, "{name}: nothing done twice");
    let mut other = event.clone();
    let mut body: Value =
        serde_json::from_str(event["body"].as_str().expect("a body")).expect("a JSON body");
    body["note"] = json!("another request");
    let body = body.to_string();
    other["headers"]["content-length"] = json!(body.len().to_string());
    other["body"] = json!(body);
    let reused = send(other.to_string()).await;
    assert_eq!(
        reused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{name}: {:?}",
        reused.json
    );
    assert_eq!(reused.error_code(), "idempotency_key_reused", "{name}");
    assert_eq!(audit_trail(app).await, trail, "{name}: nothing done");
}

pub(super) async fn run_http_event(
    env: &Env,
    endpoint: Endpoint,
    name: &str,
    raw: &str,
    event: &Value,
) {
    check_event(endpoint, name, event);
    // GIVEN a fresh table holding what the event names, and a fresh token
    let app = TestApp::new(env).await;
    app.seed(fixtures()).await;
    prepare(endpoint, &app).await;
    let caller = uuid::Uuid::new_v4().to_string();
    let fresh = token(&caller, &["billing_admin"], 300);
    // WHEN the event, parsed as the Lambda runtime does, reaches the function's handler
    let signed = raw.replace(PLACEHOLDER, &fresh);
    let req = lambda_http::request::from_str(&signed)
        .unwrap_or_else(|e| panic!("{name}: not an API Gateway payload 2.0 event: {e}"));
    assert_eq!(req.method(), endpoint.method(), "{name}");
    let reply = Reply::from(billing::api::handle(&app.state, endpoint, req).await);
    // THEN the function answers with its success status and shape
    check_outcome(endpoint, &app, &reply, &caller).await;
    // and a retry with its Idempotency-Key is answered, not acted on, again
    check_idempotent_retry(endpoint, &app, name, &signed, &reply).await;
}

/// The event is the payload 2.0 API Gateway sends to the `$default` route: a
/// request no route matches, without credentials (the function reads none).
pub(super) fn check_route_not_found_event(name: &str, event: &Value) {
    let ctx = &event["requestContext"];
    assert_eq!(event["version"], "2.0", "{name}");
    assert_eq!(event["routeKey"], DEFAULT_ROUTE.1, "{name}");
    assert_eq!(ctx["routeKey"], DEFAULT_ROUTE.1, "{name}");
    assert_eq!(ctx["stage"], "$default", "{name}");
    let raw_path = event["rawPath"].as_str().expect("rawPath");
    assert_eq!(ctx["http"]["path"], raw_path, "{name}");
    let method: Method = ctx["http"]["method"]
        .as_str()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("{name}: requestContext.http.method"));
    assert!(
        billing::http::route(&method, raw_path).is_err(),
        "{name}: {method} {raw_path} matches a route, so API Gateway would not send it to $default"
    );
    assert!(
        event.get("pathParameters").is_none(),
        "{name}: the $default route has no path parameters"
    );
    assert!(
        event["headers"].get("authorization").is_none(),
        "{name}: the $default route needs no credentials"
    );
}

/// The `$default` route's answer to `event` with another method and path.
pub(super) fn route_not_found_with(event: &Value, method: &str, path: &str) -> Reply {
    let mut event = event.clone();
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["path"] = json!(path);
    event["requestContext"]["http"]["method"] = json!(method);
    let raw = serde_json::to_string(&event).expect("event JSON");
    let req = lambda_http::request::from_str(&raw).expect("event parses");
    assert_eq!(req.method().as_str(), method);
    assert_eq!(req.uri().path(), path);
    Reply::from(billing::api::route_not_found(&req))
}

pub(super) fn run_route_not_found_event(name: &str, raw: &str, event: &Value) {
    check_route_not_found_event(name, event);
    // GIVEN the event, parsed as the Lambda runtime does: PUT on the customers list
    let req = lambda_http::request::from_str(raw)
        .unwrap_or_else(|e| panic!("{name}: not an API Gateway payload 2.0 event: {e}"));
    assert_eq!(req.method(), Method::PUT, "{name}");
    assert_eq!(req.uri().path(), format!("{PREFIX}/customers"), "{name}");
    // WHEN it reaches the function's handler
    let reply = Reply::from(billing::api::route_not_found(&req));
    // THEN it is 405 with the path's methods in `Allow`, in the error convention
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{name}");
    assert_eq!(reply.headers["allow"], "GET", "{name}");
    assert_eq!(reply.error_code(), "method_not_allowed", "{name}");
    // and a path no endpoint has is 404, with no `Allow`, whatever the method
    for (method, path) in [
        ("GET", format!("{PREFIX}/invoices")),
        (
            "GET",
            format!("{PREFIX}/customer/{CUSTOMER}/members/{MEMBER}"),
        ),
        ("POST", "/".to_owned()),
    ] {
        let reply = route_not_found_with(event, method, &path);
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{name}: {method} {path}"
        );
        assert!(
            reply.headers.get("allow").is_none(),
            "{name}: {method} {path}"
        );
        assert_eq!(
            reply.error_code(),
            "route_not_found",
            "{name}: {method} {path}"
        );
    }
    // and a known path with several routes allows each of their methods
    let reply = route_not_found_with(event, "PATCH", &format!("{PREFIX}/customer/{CUSTOMER}"));
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{name}");
    let allowed: BTreeSet<&str> = reply.headers["allow"]
        .to_str()
        .expect("Allow")
        .split(", ")
        .collect();
    assert_eq!(allowed, BTreeSet::from(["GET", "DELETE"]), "{name}");
    assert_eq!(reply.error_code(), "method_not_allowed", "{name}");
}

/// The console's event: API Gateway's payload 2.0 for one of its routes; the
/// function answers with the page and its security headers.
pub(super) fn run_console_event(name: &str, raw: &str, event: &Value) {
    let route_key = event["routeKey"].as_str().expect("routeKey");
    assert!(
        billing::http::CONSOLE_ROUTES
            .iter()
            .any(|(method, path)| format!("{method} {path}") == route_key),
        "{name}: {route_key} is a console route"
    );
    assert_eq!(event["requestContext"]["routeKey"], route_key, "{name}");
    // GIVEN the event, parsed as the Lambda runtime does
    let req = lambda_http::request::from_str(raw)
        .unwrap_or_else(|e| panic!("{name}: not an API Gateway payload 2.0 event: {e}"));
    assert_eq!(req.method(), Method::GET, "{name}");
    assert!(console::serves(req.method(), req.uri().path()), "{name}");
    // WHEN it reaches the function's handler, configured as the template does by default
    let settings = console::Settings::from_lookup(|_| None).expect("default settings");
    let response = console::respond(&settings, req.uri().path());
    // THEN it is the page, revalidated on every load, under the console's CSP
    assert_eq!(response.status(), StatusCode::OK, "{name}");
    let header = |h: &str| {
        response.headers()[h]
            .to_str()
            .unwrap_or_else(|_| panic!("{name}: {h}"))
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8", "{name}");
    assert_eq!(header("cache-control"), "no-cache", "{name}");
    assert_eq!(
        header("content-security-policy"),
        settings.content_security_policy(),
        "{name}"
    );
    assert_eq!(header("x-content-type-options"), "nosniff", "{name}");
    assert_eq!(header("referrer-policy"), "no-referrer", "{name}");
    let lambda_http::Body::Binary(page) = response.body() else {
        panic!("{name}: the page is a binary body");
    };
    assert!(page.starts_with(b"<!doctype html>"), "{name}");
}
