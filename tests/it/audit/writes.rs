//! What an audited change writes and publishes: one membership event per change,
//! one transaction of known size.

use super::*;

pub(super) async fn membership_events_are_published_once_per_change(env: &'static Env) {
    // GIVEN a table with its stream, its consumer publishing to a bus whose
    // events land in a queue, and what seeding published already drained
    let app = TestApp::with_stream(env).await;
    let c = app.customer(Spec::with_members(2)).await;
    let sink = EventSink::with_pattern(env, json!({"source": [billing::events::SOURCE]})).await;
    let mut consumer = StreamConsumer::new(env, &app, sink.publisher()).await;
    consumer.catch_up(false).await;
    settle().await;
    // (seeding published its members' member.added, and nothing for the
    // customer's own creation)
    let seeded = sink.drain_envelopes().await;
    let mut seeded_users: Vec<(&str, &str)> = seeded
        .iter()
        .map(|e| {
            assert_eq!(e["detail-type"], "member.added", "{e}");
            (
                e["detail"]["userID"].as_str().unwrap(),
                e["detail"]["role"].as_str().unwrap(),
            )
        })
        .collect();
    seeded_users.sort_unstable();
    let mut expected = vec![
        (c.owner.as_str(), "owner"),
        (c.members[0].as_str(), "admin"),
        (c.members[1].as_str(), "user"),
    ];
    expected.sort_unstable();
    assert_eq!(seeded_users, expected);
    // WHEN an admin adds u, makes it an admin, removes m1, and an API key makes
    // m0 a user; then the customer is deleted
    let admin = Who::user(&format!("admin-{}", uuid::Uuid::new_v4()));
    let key = Who::api_key(&app, "ops-user").await;
    let u = uuid::Uuid::new_v4().to_string();
    let steps = [
        (&admin, add_request(&c.id, &u, json!("user"))),
        (&admin, role_request(&c.id, &u, json!("admin"))),
        (&admin, remove_request(&c.id, &c.members[1])),
        (&key, role_request(&c.id, &c.members[0], json!(2))),
        // the same role again: no change, no event
        (&key, role_request(&c.id, &c.members[0], json!("user"))),
    ];
    for (who, (method, path, body)) in steps {
        let reply = who.send(&app, method.clone(), &path, body, &[]).await;
        assert!(
            reply.status.is_success(),
            "{method} {path}: {:?}",
            reply.json
        );
    }
    let changes: Vec<Value> = audit_entries(&app, &c.id).await[..4].to_vec();
    let reply = admin.call(&app, delete_request(&c.id)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    // and the stream delivers every batch twice
    consumer.catch_up(true).await;
    settle().await;
    let events = sink.drain_envelopes().await;
    // THEN each change's event came twice with one eventId: one after deduplication
    let mut by_id: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in &events {
        assert_eq!(e["source"], billing::events::SOURCE);
        let id = e["detail"]["eventId"].as_str().expect("eventId").to_owned();
        by_id.entry(id).or_default().push(e);
    }
    let members: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["detail-type"]
                .as_str()
                .unwrap_or_default()
                .starts_with("member.")
        })
        .collect();
    assert_eq!(members.len(), 2 * 4, "at-least-once: {events:#?}");
    let deleted: Vec<&Value> = events
        .iter()
        .filter(|e| e["detail-type"] == billing::events::CUSTOMER_DELETED)
        .collect();
    assert_eq!(
        deleted
            .iter()
            .map(|e| e["detail"]["customerID"].as_str().unwrap_or_default())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([c.id.as_str()])
    );
    assert_eq!(
        by_id.len(),
        4 + 1,
        "one per change and one customer.deleted, the cascade's removals none"
    );
    for dupes in by_id.values() {
        assert_eq!(dupes.len(), 2);
        assert_eq!(
            dupes[0]["detail"], dupes[1]["detail"],
            "a redelivery is the same event"
        );
    }
    // and each event is its audit entry
    let actors = [key.actor(), admin.actor(), admin.actor(), admin.actor()];
    for (entry, actor) in changes.iter().zip(actors) {
        let id = entry["id"].as_str().unwrap();
        let event = by_id
            .get(id)
            .unwrap_or_else(|| panic!("no event for {entry}"))[0];
        assert_eq!(event["detail-type"], entry["action"]);
        let mut detail = json!({
            "eventId": id,
            "customerID": c.id,
            "userID": entry["userID"],
            "role": entry["role"],
            "actor": actor,
            "requestID": entry["requestID"],
            "at": entry["at"],
        });
        if entry["action"] == "member.role_changed" {
            detail["previousRole"] = entry["changes"]["role"]["from"].clone();
        }
        assert_eq!(event["detail"], detail, "{entry}");
    }
    let kinds: Vec<(&str, &str)> = changes
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("member.role_changed", "user"),
            ("member.removed", "user"),
            ("member.role_changed", "admin"),
            ("member.added", "user"),
        ]
    );
    let previous: Vec<Value> = changes
        .iter()
        .filter(|e| e["action"] == "member.role_changed")
        .map(|e| by_id[e["id"].as_str().unwrap()][0]["detail"]["previousRole"].clone())
        .collect();
    assert_eq!(previous, [json!("admin"), json!("user")]);
}

/// The sizes of the transactions a request commits, asserting its status and
/// that it wrote exactly one audit entry of `customer`.
pub(super) async fn measure(
    app: &TestApp,
    customer: &str,
    (method, path, body): Request,
    status: StatusCode,
) -> Vec<u64> {
    let audited = audit_entries(app, customer).await.len();
    let (reply, sizes) = committed_transactions(app.admin(method.clone(), &path, body)).await;
    assert_eq!(reply.status, status, "{method} {path}: {:?}", reply.json);
    assert_eq!(
        audit_entries(app, customer).await.len(),
        audited + 1,
        "{method} {path}: exactly one audit entry"
    );
    sizes
}

pub(super) async fn each_audited_change_is_one_transaction_of_known_size(env: &'static Env) {
    // GIVEN a pro/active customer (4 listings) with an owner and two members
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(2)).await;
    let user = uuid::Uuid::new_v4().to_string();
    let changes = [
        // An add: the record's count, its 4 listing entries' counts, the member, the
        // membership, the members directory's month and day, the audit entry and
        // the customer's audit sequence.
        (
            add_request(&c.id, &user, json!("user")),
            StatusCode::CREATED,
        ),
        // A role change: the record's condition, the member, the membership, the
        // directory (out of one group, into the other: month and day of each), the
        // entry and sequence.
        (role_request(&c.id, &user, json!("admin")), StatusCode::OK),
        // A removal: as an add.
        (remove_request(&c.id, &user), StatusCode::NO_CONTENT),
        // A deletion's first transaction: the record, its 4 entries deleted and 4
        // deltas put, the entry and sequence; then the members (3 with the members directory),
        // then the record.
        (delete_request(&c.id), StatusCode::NO_CONTENT),
    ];
    let mut measured = Vec::new();
    for (request, status) in changes {
        measured.push(measure(&app, &c.id, request, status).await);
    }
    let [add, change, remove, delete] = <[Vec<u64>; 4]>::try_from(measured).expect("4 changes");
    eprintln!(
        "writes per transaction: add {add:?}, role change {change:?}, remove {remove:?}, delete {delete:?}"
    );
    assert_eq!(add, vec![ADD_MEMBER], "add member");
    assert_eq!(change, vec![CHANGE_ROLE], "change role");
    assert_eq!(remove, vec![REMOVE_MEMBER], "remove member");
    assert_eq!(
        delete.first(),
        Some(&DELETE_FIRST),
        "delete customer: {delete:?}"
    );
    // With an Idempotency-Key the transaction also writes the answer into
    // the key's record: one more write, none after it.
    let c = app.customer(Spec::default()).await;
    let body_user = uuid::Uuid::new_v4().to_string();
    let body = json!({"userID": body_user, "role": "user"});
    let (keyed, members) = (Who::user("keyed"), format!("/customer/{}/member", c.id));
    let keyed_add = || {
        committed_transactions(keyed.send(
            &app,
            Method::POST,
            &members,
            Some(body.clone()),
            &[("idempotency-key", "writes-1")],
        ))
    };
    let (reply, sizes) = keyed_add().await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(sizes, vec![ADD_MEMBER + ANSWER]);
    // Its replay, and a role change to the role a member has, commit nothing.
    let (reply, sizes) = keyed_add().await;
    assert_eq!(
        (
            reply.status,
            reply.headers.get("idempotent-replayed").is_some()
        ),
        (StatusCode::CREATED, true)
    );
    assert_eq!(sizes, Vec::<u64>::new(), "a replay writes nothing");
    let (reply, sizes) = committed_transactions(app.admin(
        Method::PATCH,
        &format!("/customer/{}/member/{}", c.id, c.owner),
        Some(json!({"role": "admin"})),
    ))
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(sizes, Vec::<u64>::new(), "a refused change writes nothing");
    let user = body_user;
    let (reply, sizes) = committed_transactions(app.admin(
        Method::PATCH,
        &format!("/customer/{}/member/{user}", c.id),
        Some(json!({"role": "user"})),
    ))
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(sizes, Vec::<u64>::new(), "the same role writes nothing");
    // A keyed role change, and a keyed deletion's first transaction.
    let (method, path, body) = role_request(&c.id, &user, json!("admin"));
    let (reply, sizes) = committed_transactions(keyed.send(
        &app,
        method,
        &path,
        body,
        &[("idempotency-key", "writes-2")],
    ))
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(sizes, vec![CHANGE_ROLE + ANSWER]);
    let (method, path, _) = delete_request(&c.id);
    let (reply, sizes) = committed_transactions(keyed.send(
        &app,
        method,
        &path,
        None,
        &[("idempotency-key", "writes-3")],
    ))
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(sizes.first(), Some(&(DELETE_FIRST + ANSWER)), "{sizes:?}");
}

/// The write of an `Idempotency-Key`'s answer in the transaction of its change.
pub(super) const ANSWER: u64 = 1;

/// Write actions of adding a member (2 of them the audit entry and its
/// customer's audit sequence).
pub(super) const ADD_MEMBER: u64 = 11;
/// Of changing a member's role (2 of them the audit entry and sequence, 1 a
/// condition check).
pub(super) const CHANGE_ROLE: u64 = 9;
/// Of removing a member (2 of them the audit entry and sequence).
pub(super) const REMOVE_MEMBER: u64 = 11;
/// Of a deletion's first transaction (2 of them the audit entry and sequence).
pub(super) const DELETE_FIRST: u64 = 11;
