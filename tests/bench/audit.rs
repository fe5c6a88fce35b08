//! A customer's audit trail at depth (`--audit N`): N entries in one customer's
//! trail, then its first, middle and last numbered pages and a cursor page deep
//! in it, through the real handler: calls, items read, read units and latency.

use std::time::Instant;

use billing::domain::audit::{Action, AuditEntry};
use billing::domain::{CustomerId, Role, UserId};
use billing::store::table::{AuditItem, Item, audit_sequence_item};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use http::{Method, StatusCode};

use crate::counter::Counter;
use crate::harness::{App, Result, Sample};
use crate::report::{Table, per};

/// Requests timed per page.
const RUNS: usize = 30;
/// Page size.
const LIMIT: u64 = 10;

/// Loads `n` entries into one customer's trail and measures its pages.
pub async fn run(client: &aws_sdk_dynamodb::Client, counter: &Counter, n: usize) -> Result<Table> {
    let table = format!("bench-audit-{}", uuid::Uuid::new_v4().simple());
    let app = App::new(client, counter, &table).await?;
    let customer = CustomerId::random();
    let started = Instant::now();
    load(client, &table, &customer, n).await?;
    eprintln!("bench: {n} audit entries loaded in {:?}", started.elapsed());

    let pages = (n as u64).div_ceil(LIMIT).max(1);
    let path = |query: &str| format!("/customer/{customer}/audit?limit={LIMIT}{query}");
    // The cursor of the page before the middle one: its next page is as deep.
    let (status, body) = app
        .send(&app.req(Method::GET, path(&format!("&page={}", pages / 2 - 1))))
        .await?;
    let cursor = (status == StatusCode::OK)
        .then(|| serde_json::from_str::<serde_json::Value>(&body).ok())
        .flatten()
        .and_then(|v| v["next"].as_str().map(str::to_owned))
        .ok_or("no cursor in the middle of the trail")?;
    let cases = [
        ("page 1".to_owned(), path("&page=1")),
        (
            format!("page {} (middle)", pages / 2),
            path(&format!("&page={}", pages / 2)),
        ),
        (
            format!("page {pages} (last)"),
            path(&format!("&page={pages}")),
        ),
        (
            "cursor (middle)".to_owned(),
            path(&format!("&cursor={cursor}")),
        ),
    ];
    let mut out = Table::new(
        format!(
            "Audit trail pages at {n} entries of one customer (limit {LIMIT}; {RUNS} runs each)"
        ),
        &[
            "page",
            "calls",
            "items read",
            "read units",
            "p50 ms",
            "p95 ms",
        ],
    );
    for (name, path) in cases {
        let sample: Sample = app
            .measure(RUNS, 3, StatusCode::OK, |_| {
                app.req(Method::GET, path.clone())
            })
            .await?;
        let runs = sample.n();
        out.row(vec![
            name,
            sample.calls_per_run(),
            per(sample.total.items_read as f64, runs),
            format!("{:.1}", sample.total.capacity / runs as f64),
            sample.latencies.ms(50.0),
            sample.latencies.ms(95.0),
        ]);
    }
    out.note(
        "items read = ScannedCount of the queries; read units = ConsumedCapacity (TOTAL) \
         DynamoDB Local reported; in process, through the handler.",
    );
    Ok(out)
}

/// `n` role-change entries of `customer`, one millisecond apart, numbered 1
/// to `n` with the customer's sequence at `n`, as the writers store them,
/// written 25 to a batch.
async fn load(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    customer: &CustomerId,
    n: usize,
) -> Result<()> {
    let origin = billing::domain::audit::Origin::system("bench");
    let start = billing::domain::now() - chrono::Duration::milliseconds(n as i64);
    let user = UserId::random();
    let items: Vec<Item> = (0..n)
        .map(|i| {
            let mut entry = AuditEntry::new(Action::MemberRoleChanged, &origin, *customer)
                .member(user, Role::Admin)
                .changed("role", Some("user"), Some("admin"));
            entry.at = start + chrono::Duration::milliseconds(i as i64);
            serde_dynamo::to_item(AuditItem::new(&entry, i as u64 + 1))
        })
        .chain(std::iter::once(Ok(audit_sequence_item(customer, n as u64))))
        .collect::<std::result::Result<_, _>>()?;
    let batches: Vec<Vec<Item>> = items.chunks(25).map(<[Item]>::to_vec).collect();
    stream::iter(batches)
        .map(|batch| write_batch(client, table, batch))
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// One BatchWriteItem of puts, resending what DynamoDB leaves unprocessed.
async fn write_batch(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<Item>,
) -> Result<()> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    let mut requests = items
        .into_iter()
        .map(|item| {
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map(|put| WriteRequest::builder().put_request(put).build())
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    for _ in 0..20 {
        let out = client
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await?;
        requests = out
            .unprocessed_items
            .and_then(|mut left| left.remove(table))
            .unwrap_or_default();
        if requests.is_empty() {
            return Ok(());
        }
    }
    Err("BatchWriteItem left items unprocessed 20 times".into())
}
