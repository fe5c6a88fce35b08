//! Tables 1 and 2: DynamoDB calls per request and latency of every endpoint, next
//! to the raw DynamoDB call it makes.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use billing::domain::{CustomerId, SubscriptionStatus, TierName, UserId};
use billing::store::Listing;
use billing::store::table::{MEMBERS_INDEX, PK, customer_key, customer_pk, key};
use http::{Method, StatusCode};
use serde_json::json;

use crate::harness::{App, Result, Sample, customer_with_members, measure_raw, seed_customers};
use crate::report::{Table, per};

/// Requests per read endpoint (and per add/remove member).
const N: usize = 50;
/// Untimed requests before each read endpoint's timed ones.
const WARMUP: usize = 3;
/// Customers in the listing the endpoints run against.
const CUSTOMERS: usize = 300;
/// Members of the customer whose members are listed (owner included).
const LISTED_MEMBERS: usize = 31;
/// The deep page of the customer listing (limit 10).
const DEEP_PAGE: u64 = 25;
/// Deletions timed per member count: (members, customers deleted).
const DELETIONS: [(usize, usize); 3] = [(0, 20), (10, 10), (250, 5)];

/// One endpoint measured, and the raw call it is compared with.
struct Row {
    name: String,
    sample: Sample,
    raw: Option<(&'static str, Sample)>,
}

/// Seeds a table, runs every endpoint, returns (calls table, latency table).
pub async fn run(app: &App, client: &Client) -> Result<(Table, Table)> {
    let seeded = seed_customers(app, 0..CUSTOMERS).await?;
    eprintln!(
        "bench: seeded {CUSTOMERS} customers in {:.1} s",
        seeded.took.as_secs_f64()
    );
    let table = app.store.table_name().to_owned();
    let raw = Raw { client, table };
    let ok = StatusCode::OK;
    let mut rows = Vec::new();

    // Customer listings.
    let all = Listing::all();
    let filtered = Listing::for_filters(
        Some(TierName::parse("pro")?),
        Some(SubscriptionStatus::Active),
    );
    let sample = app
        .measure(N, WARMUP, ok, |_| app.req(Method::GET, "/customers"))
        .await?;
    let raw_sample = measure_raw(&app.counter, N, async |_| raw.list(&all, 11).await).await?;
    push(
        &mut rows,
        Row {
            name: "list customers, page 1 (limit 10)".into(),
            sample,
            raw: Some(("Query LIST#CUSTOMERS Limit 11", raw_sample)),
        },
    );

    let issued = billing::auth::issue_api_key(
        &uuid::Uuid::new_v4().to_string(),
        vec!["billing_admin".to_owned()],
        None,
    )?;
    app.store
        .put_api_key(&issued.key_id, &issued.record)
        .await?;
    let key_headers = [
        ("api-key", issued.key_id.as_str()),
        ("api-secret", issued.secret.as_str()),
    ];
    let sample = app
        .measure(N, WARMUP, ok, |_| {
            app.req(Method::GET, "/customers").auth(&key_headers)
        })
        .await?;
    let raw_sample = measure_raw(&app.counter, N, async |_| {
        raw.get(billing::store::table::api_key_key(&issued.key_id))
            .await?;
        raw.list(&all, 11).await
    })
    .await?;
    push(
        &mut rows,
        Row {
            name: "list customers, page 1, api-key auth".into(),
            sample,
            raw: Some(("GetItem + Query LIST#CUSTOMERS Limit 11", raw_sample)),
        },
    );

    let sample = app
        .measure(N, WARMUP, ok, |_| {
            app.req(Method::GET, "/customers?tierName=pro&status=active")
        })
        .await?;
    let raw_sample = measure_raw(&app.counter, N, async |_| raw.list(&filtered, 11).await).await?;
    push(
        &mut rows,
        Row {
            name: "list customers, tierName+status, page 1".into(),
            sample,
            raw: Some(("Query LIST#<tier, status> Limit 11", raw_sample)),
        },
    );

    let deep_limit = 1 + (DEEP_PAGE - 1) * 10 + 10;
    let sample = app
        .measure(N, WARMUP, ok, |_| {
            app.req(Method::GET, format!("/customers?page={DEEP_PAGE}&limit=10"))
        })
        .await?;
    let raw_sample = measure_raw(&app.counter, N, async |_| {
        raw.list(&all, deep_limit as i32).await
    })
    .await?;
    push(
        &mut rows,
        Row {
            name: format!("list customers, page {DEEP_PAGE} (limit 10)"),
            sample,
            raw: Some(("Query LIST#CUSTOMERS Limit 251", raw_sample)),
        },
    );

    // One customer.
    let (got, _) = customer_with_members(app, 10_000, 1).await?;
    let sample = app
        .measure(N, WARMUP, ok, |_| {
            app.req(Method::GET, format!("/customer/{got}"))
        })
        .await?;
    let raw_sample =
        measure_raw(&app.counter, N, async |_| raw.get(customer_key(&got)).await).await?;
    push(
        &mut rows,
        Row {
            name: "get customer".into(),
            sample,
            raw: Some(("GetItem (consistent)", raw_sample)),
        },
    );

    // Members.
    let (listed, _) = customer_with_members(app, 10_001, LISTED_MEMBERS).await?;
    let sample = app
        .measure(N, WARMUP, ok, |_| {
            app.req(Method::GET, format!("/customer/{listed}/members"))
        })
        .await?;
    let raw_sample = measure_raw(&app.counter, N, async |_| raw.members(&listed, 11).await).await?;
    push(
        &mut rows,
        Row {
            name: format!("list members, page 1 ({LISTED_MEMBERS} members)"),
            sample,
            raw: Some(("Query LSI1 Limit 11 (consistent)", raw_sample)),
        },
    );

    let (grown, _) = customer_with_members(app, 10_002, 1).await?;
    let sample = app
        .measure(N, 0, StatusCode::CREATED, |_| {
            app.req(Method::POST, format!("/customer/{grown}/member"))
                .json(json!({"userID": UserId::random().to_string(), "role": "user"}))
        })
        .await?;
    raw.put_scratch_counter().await?;
    let raw_sample = measure_raw(&app.counter, N, async |i| raw.add_like(i).await).await?;
    push(
        &mut rows,
        Row {
            name: "add member".into(),
            sample,
            raw: Some(("TransactWriteItems 1 Update + 2 Put", raw_sample)),
        },
    );

    let (shrunk, users) = customer_with_members(app, 10_003, N + 1).await?;
    let sample = app
        .measure(N, 0, StatusCode::NO_CONTENT, |i| {
            app.req(
                Method::DELETE,
                format!("/customer/{shrunk}/member/{}", users[i]),
            )
        })
        .await?;
    let raw_sample = measure_raw(&app.counter, N, async |i| raw.remove_like(i).await).await?;
    push(
        &mut rows,
        Row {
            name: "remove member".into(),
            sample,
            raw: Some(("TransactWriteItems 1 Update + 2 Delete", raw_sample)),
        },
    );

    // Deletion cascades.
    for (k, (members, count)) in DELETIONS.into_iter().enumerate() {
        let mut ids: Vec<CustomerId> = Vec::with_capacity(count);
        for j in 0..count {
            ids.push(
                customer_with_members(app, 20_000 + k * 1_000 + j, members)
                    .await?
                    .0,
            );
        }
        let sample = app
            .measure(count, 0, StatusCode::NO_CONTENT, |i| {
                app.req(Method::DELETE, format!("/customer/{}", ids[i]))
            })
            .await?;
        let raw = if members == 0 {
            let s = measure_raw(&app.counter, count, async |i| raw.mark_like(i).await).await?;
            Some(("TransactWriteItems 5 Update", s))
        } else {
            None
        };
        push(
            &mut rows,
            Row {
                name: format!("delete customer, {members} members"),
                sample,
                raw,
            },
        );
    }
    Ok((calls_table(&rows), latency_table(&rows)))
}

/// Keeps a measured row, telling how far the bench got.
fn push(rows: &mut Vec<Row>, row: Row) {
    eprintln!(
        "bench: {}: {} calls, p50 {} ms",
        row.name,
        row.sample.calls_per_run(),
        row.sample.latencies.ms(50.0)
    );
    rows.push(row);
}

fn calls_table(rows: &[Row]) -> Table {
    let mut table = Table::new(
        "1. DynamoDB round trips per request (handlers in process, DynamoDB Local)",
        &[
            "endpoint",
            "n",
            "calls/req",
            "operations per request",
            "items read/req",
            "write actions/req",
            "capacity units/req",
        ],
    );
    for row in rows {
        let (s, n) = (&row.sample, row.sample.n());
        table.row(vec![
            row.name.clone(),
            n.to_string(),
            s.calls_per_run(),
            s.ops_per_run(),
            per(s.total.items_read as f64, n),
            per(s.total.writes as f64, n),
            format!("{:.1}", s.total.capacity / n.max(1) as f64),
        ]);
    }
    let retried: u64 = rows
        .iter()
        .map(|r| r.sample.total.attempts - r.sample.total.calls)
        .sum();
    let failed: u64 = rows.iter().map(|r| r.sample.total.errors).sum();
    table.note(format!(
        "calls = DynamoDB API calls counted by an SDK interceptor; items read = ScannedCount of \
         queries + items GetItem found; capacity = ConsumedCapacity (TOTAL) DynamoDB Local \
         reported. SDK retries: {retried}, failed calls: {failed}."
    ));
    table.note(format!(
        "Listing: {CUSTOMERS} seeded customers + the ones below; list members: a customer with \
         {LISTED_MEMBERS} members; Bearer auth unless stated."
    ));
    table
}

fn latency_table(rows: &[Row]) -> Table {
    let mut table = Table::new(
        "2. Latency per endpoint (ms) next to the raw DynamoDB call it makes",
        &[
            "endpoint",
            "n",
            "p50",
            "p95",
            "raw DynamoDB call",
            "raw p50",
            "raw p95",
            "p50 - raw p50",
            "raw capacity",
        ],
    );
    for row in rows {
        let l = &row.sample.latencies;
        let (name, raw_p50, raw_p95, diff, raw_capacity) = match &row.raw {
            Some((name, raw)) => {
                let r = &raw.latencies;
                let diff = match (l.percentile(50.0), r.percentile(50.0)) {
                    (Some(a), Some(b)) => {
                        format!("{:+.2}", (a.as_secs_f64() - b.as_secs_f64()) * 1000.0)
                    }
                    _ => "-".to_owned(),
                };
                let capacity = raw.total.capacity / raw.n().max(1) as f64;
                (
                    *name,
                    r.ms(50.0),
                    r.ms(95.0),
                    diff,
                    format!("{capacity:.1}"),
                )
            }
            None => ("-", "-".into(), "-".into(), "-".into(), "-".into()),
        };
        table.row(vec![
            row.name.clone(),
            l.len().to_string(),
            l.ms(50.0),
            l.ms(95.0),
            name.to_owned(),
            raw_p50,
            raw_p95,
            diff,
            raw_capacity,
        ]);
    }
    table.note(
        "Endpoint latency: dispatch() in process (routing, auth, parsing, store, JSON). Raw: the \
         same client sending the call directly (writes go to scratch items of the same shape, \
         which no index holds: compare raw capacity with the endpoint's in table 1).",
    );
    table
}

/// Raw DynamoDB calls shaped like the ones the store makes.
struct Raw<'a> {
    client: &'a Client,
    table: String,
}

/// Partition of the scratch items raw writes touch (not in any listing index).
const SCRATCH: &str = "BENCH#raw";

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl Raw<'_> {
    async fn list(&self, listing: &Listing, limit: i32) -> Result<()> {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", s(listing.entries_pk()))
            .limit(limit)
            .send()
            .await?;
        Ok(())
    }

    async fn members(&self, customer: &CustomerId, limit: i32) -> Result<()> {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(MEMBERS_INDEX)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", s(customer_pk(customer)))
            .consistent_read(true)
            .limit(limit)
            .send()
            .await?;
        Ok(())
    }

    async fn get(&self, key: billing::store::table::Item) -> Result<()> {
        self.client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await?;
        Ok(())
    }

    async fn put_scratch_counter(&self) -> Result<()> {
        let mut item = key(SCRATCH.to_owned(), "COUNT");
        item.insert("n".to_owned(), AttributeValue::N("0".to_owned()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await?;
        Ok(())
    }

    fn bump(&self, sk: &str, delta: i64, conditional: bool) -> Result<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(SCRATCH.to_owned(), sk)))
            .update_expression("ADD n :d")
            .expression_attribute_values(":d", AttributeValue::N(delta.to_string()))
            .set_condition_expression(conditional.then(|| "attribute_exists(PK)".to_owned()))
            .build()?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The scratch items of run `i`: a member-like item and a membership-like item.
    fn scratch_keys(i: usize) -> [billing::store::table::Item; 2] {
        [
            key(SCRATCH.to_owned(), &format!("MEMBER#{i}")),
            key(format!("{SCRATCH}#USER#{i}"), "MEMBERSHIP"),
        ]
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<()> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await?;
        Ok(())
    }

    /// Like adding a member: bump a count, put two new items.
    async fn add_like(&self, i: usize) -> Result<()> {
        let mut items = vec![self.bump("COUNT", 1, true)?];
        for mut item in Self::scratch_keys(i) {
            item.insert("role".to_owned(), s("user"));
            item.insert("joinedAt".to_owned(), s("2026-01-01T00:00:00.000Z"));
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(PK)")
                .build()?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        self.transact(items).await
    }

    /// Like removing a member: bump a count, delete the two items `add_like(i)` put.
    async fn remove_like(&self, i: usize) -> Result<()> {
        let mut items = vec![self.bump("COUNT", -1, true)?];
        for key in Self::scratch_keys(i) {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key))
                .condition_expression("attribute_exists(PK)")
                .build()?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        self.transact(items).await
    }

    /// Like marking a customer deleting: one conditional update, four entry
    /// deletes and four delta puts.
    async fn mark_like(&self, i: usize) -> Result<()> {
        let mut items = vec![self.bump("COUNT", 0, true)?];
        for c in 1..=4 {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(format!("{SCRATCH}#LIST#{c}"), &format!("E#{i}"))))
                .build()?;
            items.push(TransactWriteItem::builder().delete(delete).build());
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(key(format!("{SCRATCH}#INDEX#{c}"), &format!("X#{i}"))))
                .condition_expression("attribute_not_exists(PK)")
                .build()?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        self.transact(items).await
    }
}
