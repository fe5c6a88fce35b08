//! Listings at any depth: numbered pages read through the day counts and
//! fences, cursor pages, compaction by the stream consumer, concurrent writers,
//! and what any page costs in dense days and with a compaction backlog.

use std::collections::BTreeMap;

use billing::domain::{
    CustomerId, Member, NewCustomer, PageRequest, Role, SubscriptionStatus, TierName, UserId,
};
use billing::store::table::entry_sort;
use billing::store::table::tally::FENCE_EVERY;
use billing::store::{Listing, PageAt, Store};
use billing_tests::Env;
use billing_tests::app::{Spec, TestApp};
use billing_tests::counter::{Calls, Counter};
use billing_tests::sinks::{EventSink, StreamConsumer};
use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use futures_util::future::join_all;
use http::{Method, StatusCode};

use crate::TestFn;
use crate::customers::ids;
use crate::members::member_pages;

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        every_numbered_page_is_its_slice_of_the_listing,
        cursor_pages_walk_the_listing_and_survive_changes_before_them,
        bad_cursors_are_400,
        member_pages_and_cursors_through_the_directory,
        the_stream_consumer_compacts_counts_and_nothing_changes,
        sixteen_concurrent_writers_count_exactly,
        reindex_projects_a_legacy_table_once,
        every_page_of_a_dense_minute_and_second_costs_page_1,
        a_compaction_backlog_leaves_page_1_at_its_cost,
        every_page_of_members_added_at_once_costs_page_1,
    ]
}

/// A customer stored directly (no members): (createdAt, id) is its listing order.
#[derive(Debug, Clone)]
struct Made {
    id: CustomerId,
    created_at: DateTime<Utc>,
    tier: &'static str,
    status: SubscriptionStatus,
}

async fn make(app: &TestApp, created_at: DateTime<Utc>, tier: &'static str, status: &str) -> Made {
    let status = SubscriptionStatus::parse(status).unwrap();
    let id = CustomerId::parse(&uuid::Uuid::new_v4().to_string()).unwrap();
    let customer = NewCustomer {
        id,
        name: format!("Customer {id}"),
        tier_name: TierName::parse(tier).unwrap(),
        tier_id: uuid::Uuid::new_v4(),
        subscription_status: status,
        created_at,
        owner_user_id: UserId::parse(&uuid::Uuid::new_v4().to_string()).unwrap(),
        stripe_customer_id: None,
        stripe_subscription_id: None,
    };
    app.store
        .create_customer(&customer, &billing_tests::by_test())
        .await
        .unwrap();
    Made {
        id,
        created_at,
        tier,
        status,
    }
}

fn at(raw: &str) -> DateTime<Utc> {
    raw.parse().unwrap()
}

/// 150 customers: 40 in one second, 40 in four slots of one day, 30 on 30
/// days, 40 over two months; two tiers, two statuses.
async fn populate(app: &TestApp) -> Vec<Made> {
    let mut times = Vec::new();
    times.extend((0..40).map(|_| at("2026-03-01T10:00:00Z")));
    times.extend((0..40).map(|i| at("2026-03-02T08:00:00Z") + Duration::minutes(10 * (i % 4))));
    times.extend((0..30).map(|i| at("2025-12-01T12:00:00Z") + Duration::days(i)));
    times.extend((0..40).map(|i| at("2026-04-01T00:00:00Z") + Duration::hours(37 * i)));
    let made = times.into_iter().enumerate().map(|(i, t)| {
        let tier = if i % 3 == 0 { "basic" } else { "pro" };
        let status = if i % 4 == 0 { "past_due" } else { "active" };
        make(app, t, tier, status)
    });
    futures_util::stream::iter(made)
        .buffered(16)
        .collect()
        .await
}

/// The ids a listing should show, in order.
fn expected(made: &[Made], tier: Option<&str>, status: Option<&str>) -> Vec<String> {
    let mut keep: Vec<&Made> = made
        .iter()
        .filter(|m| tier.is_none_or(|t| m.tier == t))
        .filter(|m| status.is_none_or(|s| m.status.as_str() == s))
        .collect();
    keep.sort_by_key(|m| (m.created_at, m.id.to_string()));
    keep.iter().map(|m| m.id.to_string()).collect()
}

fn query(tier: Option<&str>, status: Option<&str>) -> String {
    let mut q = String::new();
    if let Some(t) = tier {
        q.push_str(&format!("&tierName={t}"));
    }
    if let Some(s) = status {
        q.push_str(&format!("&status={s}"));
    }
    q
}

const FILTERS: [(Option<&str>, Option<&str>); 4] = [
    (None, None),
    (Some("pro"), None),
    (None, Some("active")),
    (Some("basic"), Some("past_due")),
];

/// Every page of every listing, at several limits, is exactly its slice.
async fn assert_every_page(app: &TestApp, made: &[Made], limits: &[u32]) {
    for (tier, status) in FILTERS {
        let want = expected(made, tier, status);
        for &limit in limits {
            let pages = want.len().div_ceil(limit as usize);
            for page in 1..=pages + 1 {
                let reply = app
                    .get(&format!(
                        "/customers?page={page}&limit={limit}{}",
                        query(tier, status)
                    ))
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
                assert_eq!(reply.json["items"].as_u64(), Some(want.len() as u64));
                assert_eq!(reply.json["pages"].as_u64(), Some(pages as u64));
                let from = ((page - 1) * limit as usize).min(want.len());
                let to = (from + limit as usize).min(want.len());
                assert_eq!(
                    ids(&reply.json),
                    want[from..to],
                    "{tier:?}/{status:?} page {page} limit {limit}"
                );
                assert_eq!(reply.json.get("next").is_some(), to < want.len());
            }
        }
    }
}

async fn every_numbered_page_is_its_slice_of_the_listing(env: &'static Env) {
    let app = TestApp::new(env).await;
    let mut made = populate(&app).await;
    assert_every_page(&app, &made, &[7, 33, 100]).await;
    // One entry per page, through the smallest listing.
    let want = expected(&made, Some("basic"), Some("past_due"));
    for page in 1..=want.len() + 1 {
        let reply = app
            .get(&format!(
                "/customers?page={page}&limit=1&tierName=basic&status=past_due"
            ))
            .await;
        assert_eq!(
            ids(&reply.json),
            want.get(page - 1).into_iter().cloned().collect::<Vec<_>>()
        );
    }

    // Fold two of the four listings' deltas: the same pages.
    for listing in [
        Listing::all(),
        Listing::for_filters(Some(TierName::parse("pro").unwrap()), None),
    ] {
        assert!(app.store.fold_index(&listing.index_pk()).await.unwrap() > 0);
    }
    assert_every_page(&app, &made, &[33]).await;

    // Deletions (through the API) and creations before and after every page.
    let gone: Vec<Made> = made.iter().step_by(9).cloned().collect();
    for m in &gone {
        let reply = app
            .admin(Method::DELETE, &format!("/customer/{}", m.id), None)
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
    }
    made.retain(|m| gone.iter().all(|g| g.id != m.id));
    for (i, t) in [
        "2020-01-01T00:00:00Z",
        "2026-03-01T10:00:00Z",
        "2030-12-31T23:59:59Z",
    ]
    .into_iter()
    .enumerate()
    {
        made.push(
            make(
                &app,
                at(t),
                if i == 1 { "basic" } else { "pro" },
                "past_due",
            )
            .await,
        );
    }
    assert_every_page(&app, &made, &[9]).await;
}

/// Every page of a listing through `next` cursors, `limit` at a time.
async fn walk(app: &TestApp, filters: &str, limit: u32) -> Vec<String> {
    let mut seen = Vec::new();
    let mut reply = app.get(&format!("/customers?limit={limit}{filters}")).await;
    for _ in 0..1000 {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        seen.extend(ids(&reply.json));
        let Some(next) = reply.json["next"].as_str() else {
            return seen;
        };
        reply = app
            .get(&format!("/customers?limit={limit}&cursor={next}{filters}"))
            .await;
    }
    panic!("no last page");
}

async fn cursor_pages_walk_the_listing_and_survive_changes_before_them(env: &'static Env) {
    let app = TestApp::new(env).await;
    let made = populate(&app).await;
    for (tier, status) in FILTERS {
        let want = expected(&made, tier, status);
        for limit in [13, 100] {
            assert_eq!(
                walk(&app, &query(tier, status), limit).await,
                want,
                "{tier:?}/{status:?}"
            );
        }
    }

    // A cursor after page 1; then an entry before it goes and one arrives:
    // the next page is still exactly what followed the last id seen.
    let want = expected(&made, None, None);
    let first = app.get("/customers?limit=10").await;
    let next = first.json["next"].as_str().unwrap().to_owned();
    let deleted = app
        .admin(Method::DELETE, &format!("/customer/{}", want[3]), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    make(&app, at("2019-06-01T00:00:00Z"), "pro", "active").await;
    let second = app.get(&format!("/customers?limit=10&cursor={next}")).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(ids(&second.json), want[10..20]);
    assert_eq!(second.json["items"].as_u64(), Some(want.len() as u64));
}

async fn bad_cursors_are_400(env: &'static Env) {
    let app = TestApp::new(env).await;
    let made = populate(&app).await;
    let first = app.get("/customers?limit=5&status=active").await;
    let next = first.json["next"].as_str().unwrap().to_owned();
    let (payload, mac) = next.split_once('.').unwrap();
    let mut flipped = payload.as_bytes().to_vec();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let member_cursor = {
        let c = app.customer(Spec::with_members(12)).await;
        let page = app
            .get(&format!("/customer/{}/members?limit=5", c.id))
            .await;
        page.json["next"].as_str().unwrap().to_owned()
    };
    for bad in [
        format!("/customers?limit=5&status=active&cursor={flipped}.{mac}"),
        format!("/customers?limit=5&status=active&cursor={payload}"),
        "/customers?limit=5&status=active&cursor=%20".to_owned(),
        // Another listing's cursor.
        format!("/customers?limit=5&cursor={next}"),
        format!("/customers?limit=5&status=past_due&cursor={next}"),
        format!("/customers?limit=5&cursor={member_cursor}"),
        // Both a page and a cursor.
        format!("/customers?limit=5&status=active&page=2&cursor={next}"),
    ] {
        let reply = app.get(&bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            reply.json["error"]["code"], "invalid_cursor",
            "{bad}: {}",
            reply.json
        );
    }
    let ok = app
        .get(&format!("/customers?limit=5&status=active&cursor={next}"))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ids(&ok.json), expected(&made, None, Some("active"))[5..10]);
}

async fn member_pages_and_cursors_through_the_directory(env: &'static Env) {
    let app = TestApp::new(env).await;
    // 60 members joined within seconds: page starts deep in one slot.
    let c = app.customer(Spec::with_members(60)).await;
    let all = app
        .get(&format!("/customer/{}/members?limit=100", c.id))
        .await;
    let want: Vec<String> = all.json["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["userID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(want.len(), 61);
    assert!(all.json.get("next").is_none());
    for limit in [1, 9, 20] {
        assert_eq!(
            member_pages(&app, &c.id, limit).await,
            want,
            "limit {limit}"
        );
    }
    let mut seen = Vec::new();
    let mut reply = app
        .get(&format!("/customer/{}/members?limit=8", c.id))
        .await;
    loop {
        seen.extend(
            reply.json["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["userID"].as_str().unwrap().to_owned()),
        );
        let Some(next) = reply.json["next"].as_str() else {
            break;
        };
        reply = app
            .get(&format!("/customer/{}/members?limit=8&cursor={next}", c.id))
            .await;
    }
    assert_eq!(seen, want);
    // A customer's cursor does not page another customer's members.
    let other = app.customer(Spec::with_members(3)).await;
    let next = app
        .get(&format!("/customer/{}/members?limit=2", c.id))
        .await
        .json["next"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = app
        .get(&format!(
            "/customer/{}/members?limit=2&cursor={next}",
            other.id
        ))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json["error"]["code"], "invalid_cursor");
}

/// Changes pending in each listing directory of `app`'s table: the changes its
/// shards of day counts hold.
async fn pending(app: &TestApp) -> BTreeMap<String, i64> {
    let mut found = BTreeMap::new();
    for pk in app.store.pending_indexes().await.unwrap() {
        let out = app
            .store
            .client()
            .query()
            .table_name(app.store.table_name())
            .key_condition_expression("PK = :pk AND begins_with(SK, :x)")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(pk.clone()),
            )
            .expression_attribute_values(
                ":x",
                aws_sdk_dynamodb::types::AttributeValue::S("DIR#S#".into()),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        let changes = out
            .items
            .unwrap_or_default()
            .iter()
            .map(|i| i["chg"].as_n().unwrap().parse::<i64>().unwrap())
            .sum();
        found.insert(pk, changes);
    }
    found
}

async fn the_stream_consumer_compacts_counts_and_nothing_changes(env: &'static Env) {
    let app = TestApp::with_stream(env).await;
    let made = populate(&app).await;
    let before = pending(&app).await;
    // Each customer counted once in each of its four listings.
    assert_eq!(before.values().sum::<i64>(), 4 * made.len() as i64);
    let sink = EventSink::new(env).await;
    let mut consumer = StreamConsumer::new(env, &app, sink.publisher()).await;
    consumer.catch_up(true).await;
    assert!(pending(&app).await.is_empty(), "every shard compacted");
    assert_every_page(&app, &made, &[11]).await;
}

async fn sixteen_concurrent_writers_count_exactly(env: &'static Env) {
    let app = TestApp::new(env).await;
    let writers = (0..16).map(|w| {
        let app = &app;
        async move {
            let mut kept = Vec::new();
            for i in 0..6 {
                // All at once, in the same second: the same slot of every listing.
                let status = if (w + i) % 2 == 0 {
                    "active"
                } else {
                    "past_due"
                };
                let m = make(app, at("2026-05-05T05:05:05Z"), "pro", status).await;
                if i % 3 == 0 {
                    let reply = app
                        .admin(Method::DELETE, &format!("/customer/{}", m.id), None)
                        .await;
                    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.json);
                } else {
                    kept.push(m);
                }
            }
            kept
        }
    });
    let made: Vec<Made> = join_all(writers).await.into_iter().flatten().collect();
    assert_eq!(made.len(), 16 * 4);
    assert_every_page(&app, &made, &[10]).await;
}

async fn reindex_projects_a_legacy_table_once(env: &'static Env) {
    use aws_sdk_dynamodb::types::AttributeValue::S;
    let app = TestApp::new(env).await;
    // A new table is born reindexed (a store of its own: the app's has seen nothing).
    let client = app.store.client();
    let table = app.store.table_name();
    let fresh = || Store::new(client.clone(), table);
    assert!(
        fresh().is_reindexed().await.unwrap(),
        "a new table is marked"
    );
    // A table as the listing indexes left it: records with their keys, counters,
    // no entries, no marker.
    let mut made = Vec::new();
    for i in 0..30 {
        let status = if i % 2 == 0 { "active" } else { "past_due" };
        made.push(
            make(
                &app,
                at("2026-01-01T00:00:00Z") + Duration::hours(7 * i),
                "pro",
                status,
            )
            .await,
        );
    }
    let listing_items = client
        .scan()
        .table_name(table)
        .filter_expression("begins_with(PK, :list) OR begins_with(PK, :index)")
        .expression_attribute_values(":list", S("LIST#".into()))
        .expression_attribute_values(":index", S("INDEX#".into()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(
        listing_items
            .iter()
            .filter(|i| i["PK"].as_s().unwrap().starts_with("LIST#"))
            .count(),
        30 * 4,
        "an entry per listing"
    );
    app.delete_raw(listing_items).await;
    for m in &made {
        client
            .update_item()
            .table_name(table)
            .set_key(Some(billing::store::table::customer_key(&m.id)))
            .update_expression("SET GSI1PK = :all, GSI2PK = :status, GSI1SK = :sort")
            .expression_attribute_values(":all", S("CUSTOMERS".into()))
            .expression_attribute_values(":status", S(format!("STATUS#{}", m.status.as_str())))
            .expression_attribute_values(":sort", S(m.created_at.to_rfc3339()))
            .send()
            .await
            .unwrap();
    }
    client
        .delete_item()
        .table_name(table)
        .set_key(Some(billing::store::table::reindexed_key()))
        .send()
        .await
        .unwrap();
    let counter = billing::store::table::key("COUNTER".into(), "CUSTOMERS");
    client
        .put_item()
        .table_name(table)
        .set_item(Some(counter))
        .send()
        .await
        .unwrap();
    assert_eq!(app.get("/customers").await.json["items"], 0);
    assert!(
        !fresh().is_reindexed().await.unwrap(),
        "a legacy table is not"
    );
    // The endpoints keep working on customers not reindexed yet.
    let member = serde_json::json!({"userID": uuid::Uuid::new_v4(), "role": "user"});
    let path = format!("/customer/{}/member", made[0].id);
    let added = app.admin(Method::POST, &path, Some(member)).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.json);
    let gone = made.remove(1);
    let deleted = app
        .admin(Method::DELETE, &format!("/customer/{}", gone.id), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.json);

    // Page by page, resumed halfway as after a crash; then once more from the start.
    let (first, next) = app.store.reindex_page(None).await.unwrap();
    let mut added = first.added;
    let mut start = next;
    while let Some(key) = start.take() {
        let (page, next) = app.store.reindex_page(Some(key)).await.unwrap();
        added += page.added;
        start = next;
    }
    let (again, _) = app.store.reindex_page(None).await.unwrap();
    assert_eq!((added, again.added), (29, 0));
    for pk in app.store.pending_indexes().await.unwrap() {
        app.store.fold_index(&pk).await.unwrap();
    }
    assert_eq!(app.store.drop_legacy_counters().await.unwrap(), 1);
    // As `billing-dev reindex` ends: the table marked reindexed.
    app.store.mark_reindexed().await.unwrap();
    assert!(
        fresh().is_reindexed().await.unwrap(),
        "marked once reindexed"
    );
    assert_every_page(&app, &made, &[4]).await;
    let record = client
        .get_item()
        .table_name(table)
        .set_key(Some(billing::store::table::customer_key(&made[0].id)))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(!record.contains_key("GSI1PK") && !record.contains_key("GSI2PK"));

    // Marked, the writes no longer allow for a customer without its entries:
    // one whose entries went missing is not deleted without them (its delete
    // reads again, then gives up), where the same delete went through above.
    let stray = &made[2];
    let entries = client
        .scan()
        .table_name(table)
        .filter_expression("begins_with(PK, :list) AND #id = :id")
        .expression_attribute_names("#id", "id")
        .expression_attribute_values(":list", S("LIST#".into()))
        .expression_attribute_values(":id", S(stray.id.to_string()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(entries.len(), 4, "an entry per listing");
    app.delete_raw(entries).await;
    let refused = app
        .admin(Method::DELETE, &format!("/customer/{}", stray.id), None)
        .await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.json
    );
    let still = app.get(&format!("/customer/{}", stray.id)).await;
    assert_eq!(still.status, StatusCode::OK, "{}", still.json);
}

/// A store on `app`'s table whose client counts what it reads.
fn counted(app: &TestApp) -> (Store, Counter) {
    let counter = Counter::default();
    let conf = app
        .store
        .client()
        .config()
        .to_builder()
        .interceptor(counter.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(conf);
    (Store::new(client, app.store.table_name()), counter)
}

/// One page of `listing` read through `store`: its ids, `next`, and what it read.
async fn page_cost(
    store: &Store,
    counter: &Counter,
    listing: &Listing,
    at: PageAt,
) -> (Vec<String>, Option<String>, u64, Calls) {
    let before = counter.snapshot();
    let page = store.list_customers(listing, at).await.unwrap();
    let cost = counter.snapshot().since(&before);
    let ids = page.items.iter().map(|c| c.id.to_string()).collect();
    (ids, page.more_after, page.total, cost)
}

fn number(page: u32, limit: u32) -> PageAt {
    PageAt::Number(PageRequest { page, limit })
}

/// `n` new customers of `tier` created at `times(i)`, loaded as an import does.
fn dense(n: usize, tier: &str, times: impl Fn(usize) -> DateTime<Utc>) -> Vec<NewCustomer> {
    (0..n)
        .map(|i| NewCustomer {
            id: CustomerId::parse(&uuid::Uuid::new_v4().to_string()).unwrap(),
            name: format!("Dense {i}"),
            tier_name: TierName::parse(tier).unwrap(),
            tier_id: uuid::Uuid::new_v4(),
            subscription_status: SubscriptionStatus::Active,
            created_at: times(i),
            owner_user_id: UserId::parse(&uuid::Uuid::new_v4().to_string()).unwrap(),
            stripe_customer_id: None,
            stripe_subscription_id: None,
        })
        .collect()
}

/// Compacts every listing directory with pending changes.
async fn compact_all(app: &TestApp) {
    for pk in app.store.pending_indexes().await.unwrap() {
        app.store.fold_listing(&pk).await.unwrap();
    }
}

async fn every_page_of_a_dense_minute_and_second_costs_page_1(env: &'static Env) {
    let app = TestApp::new(env).await;
    // GIVEN 800 customers in one minute (about 14 a second) and 800 in one second,
    // each on a tier of its own, loaded and compacted as an import is
    const N: usize = 800;
    let minute = dense(N, "minute", |i| {
        at("2026-06-01T12:30:00Z") + Duration::seconds((i * 60 / N) as i64)
    });
    let second = dense(N, "second", |_| at("2026-06-02T08:00:00Z"));
    for batch in [&minute, &second] {
        app.store.load_customers(batch).await.unwrap();
    }
    compact_all(&app).await;
    let (store, counter) = counted(&app);
    for (tier, made) in [("minute", &minute), ("second", &second)] {
        let mut want: Vec<(String, String)> = made
            .iter()
            .map(|c| (entry_sort(&c.created_at, &c.id), c.id.to_string()))
            .collect();
        want.sort();
        let want: Vec<String> = want.into_iter().map(|(_, id)| id).collect();
        let listing = Listing::for_filters(Some(TierName::parse(tier).unwrap()), None);
        // WHEN every page is read at limit 100 and one after a cursor
        let limit = 100;
        let (_, _, _, first) = page_cost(&store, &counter, &listing, number(1, limit)).await;
        let mut after = None;
        for page in 1..=(N as u32).div_ceil(limit) {
            let (ids, next, total, cost) =
                page_cost(&store, &counter, &listing, number(page, limit)).await;
            // THEN each is its slice, exact
            let from = ((page - 1) * limit) as usize;
            assert_eq!(
                ids,
                want[from..(from + limit as usize).min(N)],
                "{tier} page {page}"
            );
            assert_eq!(total, N as u64);
            // AND costs at most twice page 1 in items read and capacity
            assert!(
                cost.items_read <= 2 * first.items_read,
                "{tier} page {page}: {} items read, page 1 {}",
                cost.items_read,
                first.items_read
            );
            assert!(
                cost.capacity <= 2.0 * first.capacity,
                "{tier} page {page}: {} capacity, page 1 {}",
                cost.capacity,
                first.capacity
            );
            if page == 5 {
                after = next;
            }
        }
        let after = after.expect("page 5 has a next");
        let (ids, _, _, cost) =
            page_cost(&store, &counter, &listing, PageAt::After { after, limit }).await;
        assert_eq!(
            ids,
            want[500..600],
            "{tier}: the page after page 5's cursor"
        );
        assert!(
            cost.items_read <= 2 * first.items_read,
            "{tier} cursor page"
        );
    }
}

async fn a_compaction_backlog_leaves_page_1_at_its_cost(env: &'static Env) {
    let app = TestApp::new(env).await;
    // GIVEN 60 customers, compacted: the steady state
    let mut made = Vec::new();
    for i in 0..60 {
        made.push(
            make(
                &app,
                at("2026-07-01T00:00:00Z") + Duration::minutes(i),
                "pro",
                "active",
            )
            .await,
        );
    }
    compact_all(&app).await;
    let (store, counter) = counted(&app);
    let all = Listing::all();
    let (_, _, _, steady) = page_cost(&store, &counter, &all, number(1, 10)).await;
    // WHEN 240 more are created and deleted with nothing compacting (a
    // stream consumer hours behind: 400 changes pending per listing)
    let more = (0..240).map(|i| {
        make(
            &app,
            at("2026-07-02T00:00:00Z") + Duration::seconds(i),
            "pro",
            "active",
        )
    });
    let more: Vec<Made> = futures_util::stream::iter(more)
        .buffered(16)
        .collect()
        .await;
    for m in more.iter().step_by(3) {
        let reply = app
            .admin(Method::DELETE, &format!("/customer/{}", m.id), None)
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
    }
    made.extend(
        more.into_iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, m)| m),
    );
    let pending: i64 = pending(&app).await.values().sum();
    assert_eq!(pending, 4 * (240 + 80));
    // THEN page 1 reads at most twice what it read in the steady state
    let (ids, _, total, backlog) = page_cost(&store, &counter, &all, number(1, 10)).await;
    let want = expected(&made, None, None);
    assert_eq!((ids.as_slice(), total), (&want[..10], want.len() as u64));
    assert!(
        backlog.items_read <= 2 * steady.items_read && backlog.capacity <= 2.0 * steady.capacity,
        "backlog page 1 {backlog:?}, steady {steady:?}"
    );
    // AND every page stays exact (deep pages read their day from its start
    // until its fences are rebuilt), then as cheap as page 1 once compacted
    assert_every_page(&app, &made, &[10]).await;
    compact_all(&app).await;
    let (_, _, _, first) = page_cost(&store, &counter, &all, number(1, 10)).await;
    for page in 1..=(want.len() as u32).div_ceil(10) {
        let (ids, _, _, cost) = page_cost(&store, &counter, &all, number(page, 10)).await;
        let from = ((page - 1) * 10) as usize;
        assert_eq!(ids, want[from..(from + 10).min(want.len())]);
        // A fence and at most FENCE_EVERY - 1 entries more than page 1.
        assert!(
            cost.items_read <= first.items_read + FENCE_EVERY,
            "page {page}: {cost:?}"
        );
    }
}

/// One page of a customer's members read through `store`: its user ids and
/// what it read.
async fn member_page_cost(
    store: &Store,
    counter: &Counter,
    customer: &CustomerId,
    page: u32,
) -> (Vec<String>, Calls) {
    let before = counter.snapshot();
    let got = store
        .list_members(customer, number(page, 20))
        .await
        .unwrap();
    let cost = counter.snapshot().since(&before);
    (
        got.items.iter().map(|m| m.user_id.to_string()).collect(),
        cost,
    )
}

async fn every_page_of_members_added_at_once_costs_page_1(env: &'static Env) {
    let app = TestApp::with_stream(env).await;
    // GIVEN a customer and 300 members added at once, all stamped with one time
    let c = app.customer(Spec::default()).await;
    let id = CustomerId::parse(&c.id).unwrap();
    let joined = at("2026-06-03T09:00:00Z");
    let mut users: Vec<UserId> = (0..300).map(|_| UserId::random()).collect();
    let members: Vec<Member> = users
        .iter()
        .map(|&user_id| Member {
            role_id: uuid::Uuid::new_v4(),
            user_id,
            role: Role::User,
            joined_at: joined,
        })
        .collect();
    let origin = billing::domain::audit::Origin::system("test");
    app.store.add_members(&id, &members, &origin).await.unwrap();
    users.sort_by_key(|u| u.to_string());
    let mut want = vec![c.owner.clone()];
    want.extend(users.iter().map(|u| u.to_string()));
    let (store, counter) = counted(&app);
    let pages = (want.len() as u32).div_ceil(20);
    let walk = async |want: &[String]| {
        let (_, first) = member_page_cost(&store, &counter, &id, 1).await;
        let mut worst = 0;
        for page in 1..=pages {
            let (ids, cost) = member_page_cost(&store, &counter, &id, page).await;
            let from = ((page - 1) * 20) as usize;
            assert_eq!(ids, want[from..(from + 20).min(want.len())], "page {page}");
            worst = worst.max(cost.items_read);
        }
        (first.items_read, worst)
    };
    // WHEN no stream record was handled yet, a page reads the minute before it
    let (first, worst) = walk(&want).await;
    assert!(worst > 250, "the last page read {worst} items");
    // THEN once the stream consumer wrote the minute's fences, every page
    // reads at most FENCE_EVERY entries (and two directory items) more than page 1
    let sink = EventSink::new(env).await;
    let mut consumer = StreamConsumer::new(env, &app, sink.publisher()).await;
    consumer.catch_up(true).await;
    let (_, worst) = walk(&want).await;
    assert!(
        worst <= first + FENCE_EVERY + 2,
        "{worst} items, page 1 {first}"
    );
    // AND a member of that minute removed: pages stay exact, and bounded again
    // once its stream record is handled
    let gone = users.remove(150);
    app.store.remove_member(&id, &gone, &origin).await.unwrap();
    want.retain(|u| *u != gone.to_string());
    walk(&want).await;
    consumer.catch_up(true).await;
    let (_, worst) = walk(&want).await;
    assert!(
        worst <= first + FENCE_EVERY + 2,
        "{worst} items after a removal"
    );
}
