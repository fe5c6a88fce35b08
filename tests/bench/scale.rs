//! `--scale N` (`make bench-scale`): every listing at N customers, page 1, a
//! middle page, the last page and a cursor page, beside the offset scan that
//! deep pages cost before the order-statistics directory; and 16 concurrent
//! writers creating and deleting customers, beside the same writes through one
//! shared counter per listing; dense listings (N customers in one createdAt
//! minute, N in one second); a mixed load of 16 clients.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use futures_util::{StreamExt, stream};
use http::{Method, StatusCode};

use billing::domain::{CustomerId, Member, Role, UserId};
use billing::store::Listing;
use billing::store::table::{LSI1SK, MEMBERS_INDEX, PK, customer_pk};

use crate::counter::Counter;
use crate::harness::{
    App, Result, STATUSES, Sample, TIERS, customer_with_members, measure_raw, member, new_customer,
};
use crate::report::{Table, per};

/// Timed requests per case (after one untimed).
const RUNS: usize = 10;
/// Items per page in every case.
const LIMIT: u64 = 100;
/// Customers per `load_customers` call, and calls at once.
const LOAD_CHUNK: usize = 2_000;
const LOAD_CONCURRENCY: usize = 4;
/// Members of the customer whose members are listed.
const MEMBERS: usize = 10_000;
/// Concurrent writers, and customers each creates (deleting every other one).
const WRITERS: usize = 16;
const PER_WRITER: usize = 40;

/// Seeds `n` customers and a customer with 10,000 members into a fresh table,
/// then measures; returns the listing and the writers tables.
pub async fn run(client: &Client, counter: &Counter, n: usize) -> Result<Vec<Table>> {
    let name = format!("bench-scale-{}", uuid::Uuid::new_v4().simple());
    let app = App::new(client, counter, &name).await?;
    let seeding = seed(&app, n).await?;
    let mut listing = listing_table(
        format!("5. Listings at {n} customers (limit {LIMIT})"),
        "offset scan: calls",
    );
    let filters = [
        ("every customer", "", Listing::all()),
        (
            "status=active",
            "&status=active",
            listing_of(None, Some("active"))?,
        ),
        (
            "tierName=pro",
            "&tierName=pro",
            listing_of(Some("pro"), None)?,
        ),
        (
            "tierName=pro&status=active",
            "&tierName=pro&status=active",
            listing_of(Some("pro"), Some("active"))?,
        ),
    ];
    for (label, query, l) in &filters {
        let raw = Scan {
            client,
            table: &name,
            partition: l.entries_pk(),
            index: None,
            sort_from: None,
        };
        rows(
            &app,
            &mut listing,
            label,
            &format!("/customers?limit={LIMIT}{query}"),
            &raw,
        )
        .await?;
    }
    let members_of = customer_with_spread_members(&app, n + 1).await?;
    let raw = Scan {
        client,
        table: &name,
        partition: customer_pk(&members_of),
        index: Some(MEMBERS_INDEX),
        sort_from: Some("MEMBER#"),
    };
    let path = format!("/customer/{members_of}/members?limit={LIMIT}");
    let label = format!("members ({MEMBERS}, one joining per second)");
    rows(&app, &mut listing, &label, &path, &raw).await?;
    // The directory's limit: members added in bulk, all stamped within seconds.
    let (bulk, _) = customer_with_members(&app, n + 2, MEMBERS).await?;
    // What the stream consumer does as the minutes change: their fences.
    app.store.refresh_all_member_fences(&bulk).await?;
    let raw = Scan {
        partition: customer_pk(&bulk),
        ..raw
    };
    let path = format!("/customer/{bulk}/members?limit={LIMIT}");
    let label = format!("members ({MEMBERS}, added at once)");
    rows(&app, &mut listing, &label, &path, &raw).await?;
    listing.note(format!(
        "Per request, {RUNS} runs each, release build, DynamoDB Local: calls = DynamoDB calls \
         (page 1 and cursor pages send their two at once); items read = ScannedCount summed; \
         capacity = read units DynamoDB Local reported. Offset scan = what a deep page cost \
         before the directory: one Query from the listing's start reading every entry before \
         the page (paged by DynamoDB's 1 MB), on the same items. The members directory places a \
         page's first entry to the minute, then to a fence of that minute (members added at \
         once share a few minutes; their fences written as the stream consumer writes them)."
    ));
    listing.note(seeding);
    let dense = dense(&app, client, &name, n).await?;
    let writers = writers(&app, client, &name).await?;
    let mixed = mixed(&app).await?;
    Ok(vec![listing, dense, writers, mixed])
}

/// A customer whose `MEMBERS` members joined one per second (through the
/// store's transactions).
async fn customer_with_spread_members(app: &App, i: usize) -> Result<CustomerId> {
    let customer = new_customer(i)?;
    app.store
        .create_customer(&customer, &billing::domain::audit::Origin::system("bench"))
        .await?;
    let members: Vec<Member> = (0..MEMBERS)
        .map(|k| Member {
            role_id: uuid::Uuid::new_v4(),
            user_id: if k == 0 {
                customer.owner_user_id
            } else {
                UserId::random()
            },
            role: if k == 0 { Role::Owner } else { Role::User },
            joined_at: customer.created_at + chrono::Duration::seconds(k as i64),
        })
        .collect();
    app.store
        .add_members(
            &customer.id,
            &members,
            &billing::domain::audit::Origin::system("bench"),
        )
        .await?;
    Ok(customer.id)
}

fn listing_of(tier: Option<&str>, status: Option<&str>) -> Result<Listing> {
    Ok(Listing::for_filters(
        tier.map(billing::domain::TierName::parse).transpose()?,
        status
            .map(billing::domain::SubscriptionStatus::parse)
            .transpose()?,
    ))
}

/// Loads `n` customers (one per second from 2025-01-01, 3 tiers x 4 statuses),
/// then folds the listing counts; returns a note on what that took.
async fn seed(app: &App, n: usize) -> Result<String> {
    let started = Instant::now();
    let chunks: Vec<Vec<_>> = (0..n)
        .collect::<Vec<_>>()
        .chunks(LOAD_CHUNK)
        .map(|c| {
            c.iter()
                .map(|&i| new_customer(i))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<_>>()?;
    let mut loads = stream::iter(chunks)
        .map(|chunk| async move { app.store.load_customers(&chunk).await })
        .buffer_unordered(LOAD_CONCURRENCY);
    let mut items = 0;
    while let Some(loaded) = loads.next().await {
        items += loaded?;
        eprintln!(
            "bench: scale: {items} items loaded in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    let loaded = started.elapsed();
    let folding = Instant::now();
    // Every listing the generated customers are in (a scan for the pending
    // deltas would read the whole table).
    let mut listings = std::collections::BTreeSet::new();
    for i in 0..TIERS.len() * STATUSES.len() {
        let c = new_customer(i)?;
        for l in Listing::of(&billing::domain::Customer::from(&c)) {
            listings.insert(l.index_pk());
        }
    }
    let mut folds = stream::iter(listings)
        .map(|pk| async move { crate::listing::fold(app, &pk).await })
        .buffer_unordered(LOAD_CONCURRENCY);
    let mut folded = 0;
    while let Some(n) = folds.next().await {
        folded += n?;
    }
    Ok(format!(
        "Seeding: {n} customers ({items} items: records, entries, counts) by BatchWriteItem in \
         {:.0} s; {folded} count changes compacted in {:.1} s.",
        loaded.as_secs_f64(),
        folding.elapsed().as_secs_f64()
    ))
}

/// The offset scan of one listing's entries: the cost of a page before.
struct Scan<'a> {
    client: &'a Client,
    table: &'a str,
    partition: String,
    index: Option<&'static str>,
    sort_from: Option<&'static str>,
}

impl Scan<'_> {
    /// Reads from the listing's start until `offset + LIMIT` entries are read.
    async fn page(&self, offset: u64) -> Result<()> {
        let mut left = offset + LIMIT;
        let mut start = None;
        while left > 0 {
            let mut q = self
                .client
                .query()
                .table_name(self.table)
                .set_index_name(self.index.map(str::to_owned))
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", AttributeValue::S(self.partition.clone()))
                .limit(i32::try_from(left)?)
                .set_exclusive_start_key(start.take());
            q = match self.sort_from {
                Some(from) => q
                    .key_condition_expression("#pk = :pk AND #sk >= :from")
                    .expression_attribute_names("#sk", LSI1SK)
                    .expression_attribute_values(":from", AttributeValue::S(from.to_owned())),
                None => q.key_condition_expression("#pk = :pk"),
            };
            let out = q.send().await?;
            left = left.saturating_sub(out.count.max(0) as u64);
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(())
    }
}

/// A table of listings' pages for [`rows`]: the page's cost, then its offset
/// scan's, whose first column is headed `offset_calls`.
fn listing_table(title: String, offset_calls: &str) -> Table {
    Table::new(
        title,
        &[
            "listing",
            "page",
            "calls",
            "items read",
            "capacity",
            "p50 ms",
            "p95 ms",
            offset_calls,
            "items read",
            "capacity",
            "p50 ms",
        ],
    )
}

/// Page 1, the middle page, the last page and the page after page 1's cursor
/// of one listing, each beside its offset scan.
async fn rows(app: &App, table: &mut Table, label: &str, base: &str, raw: &Scan<'_>) -> Result<()> {
    let (status, body) = app.send(&app.req(Method::GET, base)).await?;
    if status != StatusCode::OK {
        return Err(format!("{base}: {status} {body}").into());
    }
    let body: serde_json::Value = serde_json::from_str(&body)?;
    let pages = body["pages"].as_u64().unwrap_or(0);
    let next = body["next"].as_str().unwrap_or_default().to_owned();
    let cases = [
        ("1".to_owned(), format!("{base}&page=1"), Some(0)),
        (
            format!("{} (middle)", pages.div_ceil(2)),
            format!("{base}&page={}", pages.div_ceil(2)),
            Some((pages.div_ceil(2) - 1) * LIMIT),
        ),
        (
            format!("{pages} (last)"),
            format!("{base}&page={pages}"),
            Some(pages.saturating_sub(1) * LIMIT),
        ),
        (
            "2 by cursor".to_owned(),
            format!("{base}&cursor={next}"),
            None,
        ),
    ];
    // A listing of one page has no cursor page.
    let cases = cases
        .into_iter()
        .filter(|(_, path, _)| !path.ends_with("cursor="));
    for (page, path, offset) in cases {
        let sample = app
            .measure(RUNS, 1, StatusCode::OK, |_| app.req(Method::GET, &path))
            .await?;
        let before = match offset {
            Some(offset) => {
                Some(measure_raw(&app.counter, RUNS, async |_| raw.page(offset).await).await?)
            }
            None => None,
        };
        eprintln!(
            "bench: scale: {label}, page {page}: p50 {} ms",
            sample.latencies.ms(50.0)
        );
        let mut cells = vec![label.to_owned(), page];
        cells.extend(cost(&sample));
        match before {
            Some(b) => {
                cells.extend(cost(&b).into_iter().take(3));
                cells.push(b.latencies.ms(50.0));
            }
            None => cells.extend(["-".into(), "-".into(), "-".into(), "-".into()]),
        }
        table.row(cells);
    }
    Ok(())
}

fn cost(sample: &Sample) -> Vec<String> {
    let n = sample.n().max(1);
    vec![
        sample.calls_per_run(),
        per(sample.total.items_read as f64, n),
        format!("{:.1}", sample.total.capacity / n as f64),
        sample.latencies.ms(50.0),
        sample.latencies.ms(95.0),
    ]
}

/// 16 writers each create 40 customers and delete every other one through the
/// handlers, all at once; then the same number of writes as the listing
/// counters made them before: one shared counter item per listing.
async fn writers(app: &App, client: &Client, table: &str) -> Result<Table> {
    let mut report = Table::new(
        format!("6. {WRITERS} concurrent writers, {PER_WRITER} customers each"),
        &[
            "design",
            "writes",
            "per second",
            "failed (503 contention)",
            "conflicts retried",
        ],
    );
    let before = app.counter.snapshot();
    let started = Instant::now();
    let runs = (0..WRITERS).map(|w| async move {
        let (mut done, mut failed) = (0u64, 0u64);
        for i in 0..PER_WRITER {
            let customer = new_customer(1_000_000 + w * PER_WRITER + i)?;
            match app
                .store
                .create_customer(&customer, &billing::domain::audit::Origin::system("bench"))
                .await
            {
                Ok(()) => done += 1,
                Err(billing::store::StoreError::Contention) => failed += 1,
                Err(e) => return Err(e.into()),
            }
            if i % 2 == 1 {
                let path = format!("/customer/{}", customer.id);
                match app.send(&app.req(Method::DELETE, &path)).await?.0 {
                    StatusCode::NO_CONTENT => done += 1,
                    StatusCode::SERVICE_UNAVAILABLE => failed += 1,
                    other => return Err(format!("DELETE answered {other}").into()),
                }
            }
        }
        Result::<_>::Ok((done, failed))
    });
    let outcomes = futures_util::future::join_all(runs).await;
    let took = started.elapsed();
    let calls = app.counter.snapshot().since(&before);
    let (mut done, mut failed) = (0, 0);
    for o in outcomes {
        let (d, f) = o?;
        done += d;
        failed += f;
    }
    report.row(vec![
        "listing entries + a shard of day counts each (create; DELETE runs the cascade)".into(),
        done.to_string(),
        format!("{:.0}", done as f64 / took.as_secs_f64()),
        failed.to_string(),
        calls.errors.to_string(),
    ]);
    let (done, failed, retried, took) = shared_counters(client, table).await?;
    report.row(vec![
        "before: the same creates through one counter item per listing".into(),
        done.to_string(),
        format!("{:.0}", done as f64 / took.as_secs_f64()),
        failed.to_string(),
        retried.to_string(),
    ]);
    report.note(
        "Creates and deletes of the first row are the real store transactions and handlers; \
         failed = gave up after the store's bounded retries (the API's 503 contention). The \
         second row sends the transactions the listing counters needed before (a new item and \
         ADD to the 4 counters of its listings), with the same retry budget (10 attempts, \
         10-640 ms backoff with jitter).",
    );
    Ok(report)
}

/// The `WRITERS * PER_WRITER` creates as before: a put and four shared counter
/// updates per transaction, retried like the store retries conflicts.
async fn shared_counters(client: &Client, table: &str) -> Result<(u64, u64, u64, Duration)> {
    let started = Instant::now();
    let runs = (0..WRITERS).map(|w| async move {
        let (mut done, mut failed, mut retried) = (0u64, 0u64, 0u64);
        for i in 0..PER_WRITER {
            let mut items = Vec::new();
            let put = Put::builder()
                .table_name(table)
                .item(PK, AttributeValue::S(format!("BENCH#before#{w}#{i}")))
                .item("SK", AttributeValue::S("X".into()))
                .build()?;
            items.push(TransactWriteItem::builder().put(put).build());
            for c in ["ALL", "STATUS", "TIER", "TIER_STATUS"] {
                let update = Update::builder()
                    .table_name(table)
                    .key(PK, AttributeValue::S("BENCH#COUNTER".into()))
                    .key("SK", AttributeValue::S(c.into()))
                    .update_expression("ADD n :one")
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .build()?;
                items.push(TransactWriteItem::builder().update(update).build());
            }
            let mut ok = false;
            for attempt in 0..10u32 {
                match client
                    .transact_write_items()
                    .set_transact_items(Some(items.clone()))
                    .send()
                    .await
                {
                    Ok(_) => {
                        ok = true;
                        break;
                    }
                    Err(_) => {
                        retried += 1;
                        let cap = 10u64 << attempt.min(6);
                        let jitter = rand_below(cap + 1);
                        tokio::time::sleep(Duration::from_millis(jitter.max(1))).await;
                    }
                }
            }
            if ok { done += 1 } else { failed += 1 }
        }
        Result::<_>::Ok((done, failed, retried))
    });
    let (mut done, mut failed, mut retried) = (0, 0, 0);
    for o in futures_util::future::join_all(runs).await {
        let (d, f, r) = o?;
        done += d;
        failed += f;
        retried += r;
    }
    Ok((done, failed, retried, started.elapsed()))
}

fn rand_below(n: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() % u128::from(n.max(1))) as u64
}

/// Customers in each dense distribution: one `createdAt` minute, one second.
async fn dense(app: &App, client: &Client, table: &str, n: usize) -> Result<Table> {
    let mut report = listing_table(
        format!(
            "5b. Dense listings: {n} customers in one createdAt minute, {n} in one second (limit {LIMIT})"
        ),
        "before (offset scan): calls",
    );
    let start: chrono::DateTime<chrono::Utc> = "2024-06-01T12:30:00Z".parse()?;
    let cases = [
        ("one minute", "denseminute", 60.0 / n as f64, start),
        (
            "one second",
            "densesecond",
            0.0,
            start + chrono::Duration::days(1),
        ),
    ];
    let started = Instant::now();
    for (_, tier, step, at) in &cases {
        let tier = billing::domain::TierName::parse(tier)?;
        let all: Vec<billing::domain::NewCustomer> = (0..n)
            .map(|i| billing::domain::NewCustomer {
                id: CustomerId::random(),
                name: format!("Dense customer {i}"),
                tier_name: tier.clone(),
                tier_id: uuid::Uuid::new_v4(),
                subscription_status: billing::domain::SubscriptionStatus::Active,
                created_at: *at + chrono::Duration::seconds((i as f64 * step) as i64),
                owner_user_id: UserId::random(),
                stripe_customer_id: None,
                stripe_subscription_id: None,
            })
            .collect();
        let mut loads = stream::iter(all.chunks(LOAD_CHUNK))
            .map(|chunk| async move { app.store.load_customers(chunk).await })
            .buffer_unordered(LOAD_CONCURRENCY);
        while let Some(loaded) = loads.next().await {
            loaded?;
        }
        let listings = all
            .first()
            .map(|c| Listing::of(&billing::domain::Customer::from(c)));
        for l in listings.unwrap_or_default() {
            crate::listing::fold(app, &l.index_pk()).await?;
        }
    }
    let seeded = started.elapsed();
    for (label, tier, _, _) in cases {
        let listing = listing_of(Some(tier), None)?;
        let raw = Scan {
            client,
            table,
            partition: listing.entries_pk(),
            index: None,
            sort_from: None,
        };
        let path = format!("/customers?limit={LIMIT}&tierName={tier}");
        rows(
            app,
            &mut report,
            &format!("tierName={tier} ({label})"),
            &path,
            &raw,
        )
        .await?;
    }
    report.note(format!(
        "Loaded by BatchWriteItem, then compacted (months, then the day's fences: every {} \
         entries) in {:.0} s. Before: the directory placed a page to its createdAt minute and \
         read every entry of that minute before it; here the whole listing is one minute, so a \
         page cost what the offset scan beside it costs (the issue measured 4.1x page 1 for a \
         middle page and 8.1x for the last at 6,000 customers in one minute).",
        billing::store::table::tally::FENCE_EVERY,
        seeded.as_secs_f64()
    ));
    Ok(report)
}

/// Concurrent clients of the mixed load, and how long it runs.
const CLIENTS: usize = 16;
const MIXED_SECONDS: u64 = 30;
/// Customers the mixed load's member churn spreads over.
const CHURNED: usize = 64;

/// One client's requests of one kind: label, latencies, unexpected answers.
type Kinds = Vec<(&'static str, Sample, u64)>;

/// `CLIENTS` clients for `MIXED_SECONDS`: listings at any page, a customer,
/// its members, and member churn (add, change role, remove); then every
/// churned customer's `memberCount` against its members.
async fn mixed(app: &App) -> Result<Table> {
    let origin = billing::domain::audit::Origin::system("bench");
    let mut customers = Vec::new();
    for i in 0..CHURNED {
        let c = new_customer(3_000_000 + i)?;
        let owner = member(c.owner_user_id, Role::Owner);
        app.store
            .create_customer_with_owner(&c, Some(&owner), None, &origin)
            .await?;
        customers.push(c.id);
    }
    let deadline = Instant::now() + Duration::from_secs(MIXED_SECONDS);
    let started = Instant::now();
    let customers = &customers;
    let runs = (0..CLIENTS).map(|client| async move {
        let mut kinds: Kinds = [
            "GET /customers?page=n",
            "GET /customers?cursor",
            "GET /customer/{id}",
            "GET /customer/{id}/members",
            "POST /customer/{id}/member",
            "PATCH /customer/{id}/member/{userID}",
            "DELETE /customer/{id}/member/{userID}",
        ]
        .into_iter()
        .map(|k| (k, Sample::default(), 0))
        .collect();
        let mut added: Vec<(CustomerId, UserId)> = Vec::new();
        let mut cursor = String::new();
        let mut k = 0usize;
        while Instant::now() < deadline {
            k += 1;
            let c = customers[(client * 7 + k) % CHURNED];
            let (kind, req, ok) = match k % 8 {
                0 | 1 => (
                    0,
                    app.req(
                        Method::GET,
                        format!("/customers?limit=20&page={}", 1 + rand_below(50)),
                    ),
                    StatusCode::OK,
                ),
                2 if !cursor.is_empty() => (
                    1,
                    app.req(Method::GET, format!("/customers?limit=20&cursor={cursor}")),
                    StatusCode::OK,
                ),
                2 | 3 => (
                    2,
                    app.req(Method::GET, format!("/customer/{c}")),
                    StatusCode::OK,
                ),
                4 => (
                    3,
                    app.req(Method::GET, format!("/customer/{c}/members?limit=10")),
                    StatusCode::OK,
                ),
                5 | 6 => {
                    let user = UserId::random();
                    added.push((c, user));
                    (
                        4,
                        app.req(Method::POST, format!("/customer/{c}/member"))
                            .json(serde_json::json!({"userID": user, "role": "user"})),
                        StatusCode::CREATED,
                    )
                }
                _ if added.len() > 4 && k % 16 == 7 => {
                    let (c, u) = added[added.len() - 1];
                    (
                        5,
                        app.req(Method::PATCH, format!("/customer/{c}/member/{u}"))
                            .json(serde_json::json!({"role": "admin"})),
                        StatusCode::OK,
                    )
                }
                _ => match added.pop() {
                    Some((c, u)) => (
                        6,
                        app.req(Method::DELETE, format!("/customer/{c}/member/{u}")),
                        StatusCode::NO_CONTENT,
                    ),
                    None => (
                        2,
                        app.req(Method::GET, format!("/customer/{c}")),
                        StatusCode::OK,
                    ),
                },
            };
            let before = app.counter.snapshot();
            let t = Instant::now();
            let (status, body) = app.send(&req).await?;
            kinds[kind]
                .1
                .record(t.elapsed(), app.counter.snapshot().since(&before));
            if status != ok {
                kinds[kind].2 += 1;
                eprintln!("bench: mixed: {} answered {status}: {body}", kinds[kind].0);
            }
            if kind == 0 {
                let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                cursor = body["next"].as_str().unwrap_or_default().to_owned();
            }
        }
        Result::<_>::Ok(kinds)
    });
    let mut all: Kinds = Vec::new();
    for outcome in futures_util::future::join_all(runs).await {
        for (label, sample, errors) in outcome? {
            match all.iter_mut().find(|(l, _, _)| *l == label) {
                Some((_, s, e)) => {
                    s.latencies.extend(&sample.latencies);
                    *e += errors;
                }
                None => all.push((label, sample, errors)),
            }
        }
    }
    let took = started.elapsed().as_secs_f64();
    // memberCount is exact: each customer's count equals its members listed.
    let mut exact = 0;
    for c in customers {
        let (_, body) = app
            .send(&app.req(Method::GET, format!("/customer/{c}")))
            .await?;
        let count = serde_json::from_str::<serde_json::Value>(&body)?["memberCount"].as_u64();
        let mut listed = 0;
        let mut page = app.req(Method::GET, format!("/customer/{c}/members?limit=100"));
        loop {
            let (_, body) = app.send(&page).await?;
            let body: serde_json::Value = serde_json::from_str(&body)?;
            listed += body["members"].as_array().map_or(0, Vec::len) as u64;
            match body["next"].as_str() {
                Some(next) => {
                    page = app.req(
                        Method::GET,
                        format!("/customer/{c}/members?limit=100&cursor={next}"),
                    )
                }
                None => break,
            }
        }
        if count == Some(listed) {
            exact += 1;
        }
    }
    let mut report = Table::new(
        format!("8. Mixed load: {CLIENTS} clients for {MIXED_SECONDS} s"),
        &["request", "requests", "req/s", "p50 ms", "p99 ms", "errors"],
    );
    let (mut total, mut errors) = (0, 0);
    for (label, sample, e) in &all {
        total += sample.n();
        errors += e;
        report.row(vec![
            (*label).to_owned(),
            sample.n().to_string(),
            format!("{:.0}", sample.n() as f64 / took),
            sample.latencies.ms(50.0),
            sample.latencies.ms(99.0),
            e.to_string(),
        ]);
    }
    report.row(vec![
        "all".into(),
        total.to_string(),
        format!("{:.0}", total as f64 / took),
        "-".into(),
        "-".into(),
        errors.to_string(),
    ]);
    report.note(format!(
        "Each client loops over: a numbered page (1-50, limit 20) of every customer, the page \
         after the last one's cursor, a customer, its members, adding members, changing one's \
         role and removing them, spread over {CHURNED} customers, through the handlers in \
         process (DynamoDB Local, no network). errors = answers other than the \
         expected status. Afterwards memberCount equals the members listed for {exact} of \
         {CHURNED} customers."
    ));
    Ok(report)
}
