//! The trail's pages: like other listings, deep pages at 10,000 entries, dense
//! numbers under racing changes, entries from before numbering.

use super::*;

/// Adds `n` new members with `role` to `customer`, each answered 201.
pub(super) async fn add_members(app: &TestApp, customer: &str, n: usize, role: &str) {
    for _ in 0..n {
        let reply = app
            .admin(
                Method::POST,
                &format!("/customer/{customer}/member"),
                Some(json!({"userID": uuid::Uuid::new_v4(), "role": role})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.json);
    }
}

/// The `next` cursor of the page at `path`.
pub(super) async fn next_cursor(app: &TestApp, path: &str) -> String {
    let reply = app.get(path).await;
    let next = reply.json["next"].as_str();
    next.unwrap_or_else(|| panic!("no next cursor: {:?}", reply.json))
        .to_owned()
}

pub(super) async fn the_audit_trail_pages_like_other_listings(env: &'static Env) {
    // GIVEN a customer with a trail of at least 13 entries
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::default()).await;
    let other = app.customer(Spec::default()).await;
    add_members(&app, &c.id, 12, "user").await;
    let all = audit_entries(&app, &c.id).await;
    let total = all.len();
    assert!(total >= 13, "{total}");
    let path = format!("/customer/{}/audit", c.id);
    // Numbered pages of 5 are the trail's slices.
    let pages = total.div_ceil(5);
    let mut walked = Vec::new();
    for page in 1..=pages {
        let reply = app.get(&format!("{path}?page={page}&limit=5")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            (reply.json["items"].clone(), reply.json["pages"].clone()),
            (json!(total), json!(pages))
        );
        assert_eq!(reply.json["next"].is_string(), page < pages, "page {page}");
        walked.extend(reply.json["events"].as_array().unwrap().clone());
    }
    assert_eq!(walked, all);
    let past = app.get(&format!("{path}?page={}&limit=5", pages + 1)).await;
    assert_eq!(
        past.json,
        json!({"events": [], "items": total, "pages": pages})
    );
    // The default page is the newest 10.
    let default = app.get(&path).await;
    assert_eq!(default.json["events"].as_array().unwrap()[..], all[..10]);
    // Cursors walk the same entries; a cursor keeps its place while newer
    // entries arrive.
    let next = next_cursor(&app, &format!("{path}?limit=5")).await;
    add_members(&app, &c.id, 2, "admin").await;
    let mut cursor = Some(next.clone());
    let mut rest = Vec::new();
    while let Some(next) = cursor {
        let reply = app.get(&format!("{path}?limit=5&cursor={next}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
        assert_eq!(reply.json["items"], json!(total + 2));
        rest.extend(reply.json["events"].as_array().unwrap().clone());
        cursor = reply.json["next"].as_str().map(str::to_owned);
    }
    assert_eq!(rest, all[5..], "the cursor continued where it was");
    // Bad input, as for the other listings.
    let members_cursor = next_cursor(&app, &format!("/customer/{}/members?limit=1", c.id)).await;
    add_members(&app, &other.id, 6, "user").await;
    let foreign = next_cursor(&app, &format!("/customer/{}/audit?limit=1", other.id)).await;
    let mut altered = next.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    for (query, code) in [
        (format!("?cursor={altered}"), "invalid_cursor"),
        (format!("?cursor={members_cursor}"), "invalid_cursor"),
        (format!("?cursor={foreign}"), "invalid_cursor"),
        (format!("?page=2&cursor={next}"), "invalid_cursor"),
        ("?page=0".to_owned(), "invalid_page"),
        ("?limit=101".to_owned(), "invalid_limit"),
        ("?limit=0".to_owned(), "invalid_limit"),
        ("?limit=5&limit=6".to_owned(), "repeated_parameter"),
    ] {
        let reply = app.get(&format!("{path}{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(reply.error_code(), code, "{query}");
    }
    let reply = app.get("/customer/not-a-uuid/audit").await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (StatusCode::BAD_REQUEST, "invalid_customer_id")
    );
    let reply = app
        .get(&format!("/customer/{}/audit", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(reply.json, json!({"events": [], "items": 0, "pages": 0}));
    // Without billing_admin: 403.
    let reply = app
        .call(
            Method::GET,
            &path,
            &[("authorization", &bearer("u", &["support"]))],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

/// `n` role-change entries of `customer` written straight into its trail, one
/// millisecond apart, numbered after `after` (its sequence), the sequence then
/// moved to `after + n`: what `n` audited changes leave, without making them
/// one by one. Returns the entries' ids, oldest first.
pub(super) async fn load_trail(
    env: &Env,
    table: &str,
    customer: &CustomerId,
    after: u64,
    n: u64,
) -> Vec<uuid::Uuid> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    use billing::domain::audit::{Action, AuditEntry};
    use billing::store::table::{AuditItem, Item, audit_sequence_item};
    use futures_util::StreamExt;
    let client = env.dynamodb_client();
    let origin = billing_tests::by_test();
    let start = billing::domain::now() - chrono::Duration::milliseconds(n as i64 + 1000);
    let user = billing::domain::UserId::random();
    let mut ids = Vec::new();
    let mut items: Vec<Item> = Vec::new();
    for i in 0..n {
        let mut entry = AuditEntry::new(Action::MemberRoleChanged, &origin, *customer)
            .member(user, billing::domain::Role::Admin)
            .changed("role", Some("user"), Some("admin"));
        entry.at = start + chrono::Duration::milliseconds(i as i64);
        ids.push(entry.id);
        items.push(serde_dynamo::to_item(AuditItem::new(&entry, after + i + 1)).unwrap());
    }
    items.push(audit_sequence_item(customer, after + n));
    let batches: Vec<Vec<Item>> = items.chunks(25).map(<[Item]>::to_vec).collect();
    futures_util::stream::iter(batches)
        .for_each_concurrent(8, |batch| {
            let client = client.clone();
            async move {
                let mut requests: Vec<WriteRequest> = batch
                    .into_iter()
                    .map(|item| {
                        let put = PutRequest::builder().set_item(Some(item)).build().unwrap();
                        WriteRequest::builder().put_request(put).build()
                    })
                    .collect();
                for _ in 0..50 {
                    if requests.is_empty() {
                        return;
                    }
                    let out = client
                        .batch_write_item()
                        .request_items(table, requests)
                        .send()
                        .await
                        .expect("BatchWriteItem");
                    requests = out
                        .unprocessed_items
                        .and_then(|mut left| left.remove(table))
                        .unwrap_or_default();
                }
                assert!(requests.is_empty(), "items left unprocessed");
            }
        })
        .await;
    ids
}

/// The same table and handlers over a client whose calls, items read and
/// read units a [`Counter`] counts.
pub(super) fn counted(env: &Env, app: &TestApp) -> (TestApp, billing_tests::counter::Counter) {
    let counter = billing_tests::counter::Counter::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&env.sdk)
            .endpoint_url(&env.dynamodb_url)
            .interceptor(counter.clone())
            .build(),
    );
    (app.through(client), counter)
}

/// The ids of a page's events.
pub(super) fn ids(reply: &Reply) -> Vec<String> {
    reply.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect()
}

pub(super) async fn a_deep_audit_page_at_10k_entries_reads_only_its_page(env: &'static Env) {
    // GIVEN a customer whose trail holds its own entries and 10,000 more
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(1)).await;
    let customer = CustomerId::parse(&c.id).unwrap();
    let own = audit_entries(&app, &c.id).await.len() as u64;
    let loaded = load_trail(env, app.store.table_name(), &customer, own, 10_000).await;
    // AND one more change audited on top, numbered after them by its writer
    let user = &c.members[0];
    let reply = app
        .admin(
            Method::PATCH,
            &format!("/customer/{}/member/{user}", c.id),
            Some(json!({"role": "user"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    let total = own + 10_000 + 1;
    let (counted, counter) = counted(env, &app);
    let limit = 20u64;
    let pages = total.div_ceil(limit);
    let get = |query: String| {
        let (counted, counter, customer) = (&counted, &counter, &c.id);
        async move {
            let before = counter.snapshot();
            let reply = counted
                .get(&format!("/customer/{customer}/audit?limit={limit}&{query}"))
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{query}: {:?}", reply.json);
            (reply, counter.snapshot().since(&before))
        }
    };

    // WHEN page 1 is read THEN it is the newest change, with the exact total
    let (first, _) = get("page=1".into()).await;
    assert_eq!(first.json["items"], json!(total));
    assert_eq!(first.json["pages"], json!(pages));
    assert_eq!(first.json["events"][0]["action"], "member.role_changed");
    assert_eq!(first.json["events"][0]["userID"], json!(user));
    let newest_loaded = |skip: usize, n: usize| -> Vec<String> {
        loaded
            .iter()
            .rev()
            .skip(skip)
            .take(n)
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(ids(&first)[1..], newest_loaded(0, limit as usize - 1)[..]);

    // WHEN a deep page is read (entries 5,001 to 5,020 from the newest)
    let deep = 251;
    let (reply, calls) = get(format!("page={deep}")).await;
    // THEN it holds exactly those entries, with the same totals
    let offset = ((deep - 1) * limit) as usize;
    assert_eq!(ids(&reply), newest_loaded(offset - 1, limit as usize));
    assert_eq!(reply.json["items"], json!(total));
    assert_eq!(reply.json["pages"], json!(pages));
    assert!(reply.json["next"].is_string());
    // AND it read its page and two items more, not the 5,000 before it:
    // the sequence (GetItem), the oldest entry (Query, 1) and limit + 1
    eprintln!("audit page {deep} of {pages} at {total} entries: {calls:?}");
    assert_eq!(calls.calls, 3, "{calls:?}");
    assert_eq!(calls.items_read, 1 + 1 + limit + 1, "{calls:?}");
    assert!(calls.capacity <= 10.0, "{calls:?}");

    // AND the last page: the oldest entries, as few reads
    let (last, calls) = get(format!("page={pages}")).await;
    let last_ids = ids(&last);
    assert_eq!(last_ids.len() as u64, total - (pages - 1) * limit);
    assert!(last.json["next"].is_null());
    assert!(calls.items_read <= 1 + 1 + limit + 1, "{calls:?}");
    // AND the page after a deep cursor reads as little, totals included
    let cursor = reply.json["next"].as_str().unwrap().to_owned();
    let (after, calls) = get(format!("cursor={cursor}")).await;
    assert_eq!(
        ids(&after),
        newest_loaded(offset - 1 + limit as usize, limit as usize)
    );
    assert_eq!(after.json["items"], json!(total));
    assert!(calls.items_read <= 1 + 1 + limit + 1, "{calls:?}");
    // AND a page past the end is empty, the totals the same
    let (past, _) = get(format!("page={}", pages + 1)).await;
    assert_eq!(past.json["events"], json!([]));
    assert_eq!(past.json["items"], json!(total));
}

pub(super) async fn audit_numbers_stay_dense_when_changes_race(env: &'static Env) {
    // GIVEN a customer with 12 members, and three servers on its table (each
    // its own store, as Lambda instances are: their writers race for the
    // customer's numbers, where one process's writers take turns)
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(12)).await;
    let before = audit_entries(&app, &c.id).await.len();
    let servers = [
        app.through(env.dynamodb_client()),
        app.through(env.dynamodb_client()),
        app.through(env.dynamodb_client()),
    ];
    // WHEN all of them change role at once (the first, an admin, to user),
    // and 6 users are added at once, spread over the servers
    let changes = c.members.iter().enumerate().map(|(i, user)| {
        let role = if i == 0 { "user" } else { "admin" };
        let path = format!("/customer/{}/member/{user}", c.id);
        let app = &servers[i % 3];
        async move {
            app.admin(Method::PATCH, &path, Some(json!({ "role": role })))
                .await
        }
    });
    let adds = (0..6).map(|i| {
        let user = uuid::Uuid::new_v4().to_string();
        let path = format!("/customer/{}/member", c.id);
        let app = &servers[i % 3];
        async move {
            app.admin(
                Method::POST,
                &path,
                Some(json!({"userID": user, "role": "user"})),
            )
            .await
        }
    });
    let (changed, added) = tokio::join!(
        futures_util::future::join_all(changes),
        futures_util::future::join_all(adds)
    );
    for reply in changed.iter().chain(&added) {
        assert!(reply.status.is_success(), "{:?}", reply.json);
    }
    // THEN every change has its entry, numbered 1..n without a gap or a repeat
    let trail = audit_entries(&app, &c.id).await;
    assert_eq!(trail.len(), before + c.members.len() + 6);
    let out = env
        .dynamodb_client()
        .query()
        .table_name(app.store.table_name())
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("AUDIT#{}", c.id)),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("Query");
    let mut numbers: Vec<u64> = out
        .items
        .unwrap_or_default()
        .iter()
        .filter_map(|item| billing::store::table::audit_number(item["SK"].as_s().ok()?))
        .collect();
    numbers.sort_unstable();
    let expected: Vec<u64> = (1..=trail.len() as u64).collect();
    assert_eq!(numbers, expected);
    // AND numbered pages cut the same order as the cursor walk
    let mut paged = Vec::new();
    for page in 1..=trail.len().div_ceil(7) {
        let reply = app
            .get(&format!("/customer/{}/audit?limit=7&page={page}", c.id))
            .await;
        paged.extend(reply.json["events"].as_array().unwrap().clone());
    }
    assert_eq!(paged, trail);
}

pub(super) async fn entries_from_before_numbering_list_below_the_numbered_ones(env: &'static Env) {
    use aws_sdk_dynamodb::types::AttributeValue;
    // GIVEN a customer whose trail was written before numbering: its entries'
    // sort keys are `<at>#<id>` and there is no sequence
    let app = TestApp::new(env).await;
    let c = app.customer(Spec::with_members(2)).await;
    let client = env.dynamodb_client();
    let table = app.store.table_name().to_owned();
    let pk = AttributeValue::S(format!("AUDIT#{}", c.id));
    let out = client
        .query()
        .table_name(&table)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", pk.clone())
        .consistent_read(true)
        .send()
        .await
        .expect("Query");
    for mut item in out.items.unwrap_or_default() {
        let numbered = item["SK"].as_s().unwrap().clone();
        client
            .delete_item()
            .table_name(&table)
            .key("PK", pk.clone())
            .key("SK", AttributeValue::S(numbered))
            .send()
            .await
            .expect("DeleteItem");
        if item["type"].as_s().unwrap() == "audit" {
            let legacy = format!(
                "{}#{}",
                item["at"].as_s().unwrap(),
                item["id"].as_s().unwrap()
            );
            item.insert("SK".to_owned(), AttributeValue::S(legacy));
            app.put_raw(item).await;
        }
    }
    let legacy = audit_entries(&app, &c.id).await;
    assert!(
        legacy.len() >= 3,
        "the creation and the members: {legacy:?}"
    );
    // WHEN changes are made after the upgrade
    for user in &c.members {
        let reply = app
            .admin(
                Method::DELETE,
                &format!("/customer/{}/member/{user}", c.id),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
    }
    // THEN they list first, newest first, then the older entries as before
    let trail = audit_entries(&app, &c.id).await;
    assert_eq!(trail.len(), legacy.len() + 2);
    assert_eq!(trail[0]["userID"], json!(c.members[1]));
    assert_eq!(trail[1]["userID"], json!(c.members[0]));
    assert_eq!(trail[2..], legacy[..]);
    // AND every numbered page, across the boundary and among the older
    // entries, is its slice of that order, with the exact total
    for limit in [1, 2, 3] {
        for page in 1..=trail.len().div_ceil(limit) + 1 {
            let reply = app
                .get(&format!(
                    "/customer/{}/audit?limit={limit}&page={page}",
                    c.id
                ))
                .await;
            assert_eq!(
                reply.json["items"],
                json!(trail.len()),
                "limit {limit} page {page}"
            );
            let want: Vec<Value> = trail
                .iter()
                .skip((page - 1) * limit)
                .take(limit)
                .cloned()
                .collect();
            assert_eq!(
                reply.json["events"],
                json!(want),
                "limit {limit} page {page}"
            );
        }
    }
}
