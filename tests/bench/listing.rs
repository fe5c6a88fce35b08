//! Table 3: what listing customers costs as the table grows.

use aws_sdk_dynamodb::Client;
use http::{Method, StatusCode};

use crate::counter::Counter;
use crate::harness::{App, Result, seed_customers};
use crate::report::{Table, per};

/// Timed requests per case (after one untimed).
const RUNS: usize = 10;

/// Seeds 1k, then 10k (then 100k with `large`) customers into one table and lists
/// them at each size; returns the report and the table's name.
pub async fn run(client: &Client, counter: &Counter, large: bool) -> Result<(Table, String)> {
    let name = format!("bench-list-{}", uuid::Uuid::new_v4().simple());
    let app = App::new(client, counter, &name).await?;
    let mut sizes = vec![1_000, 10_000];
    if large {
        sizes.push(100_000);
    }
    let mut table = Table::new(
        "3. List customers: cost vs table size",
        &[
            "customers",
            "request",
            "calls",
            "items read",
            "capacity",
            "items",
            "returned",
            "p50 ms",
            "p95 ms",
        ],
    );
    let mut seeded = 0;
    let mut seeding = Vec::new();
    for size in sizes {
        let s = seed_customers(&app, seeded..size).await?;
        let rate = (size - seeded) as f64 / s.took.as_secs_f64();
        eprintln!(
            "bench: seeded customers {seeded}..{size} in {:.1} s ({rate:.0}/s)",
            s.took.as_secs_f64()
        );
        seeding.push(format!(
            "{seeded}..{size}: {:.0} s, {rate:.0}/s, {} calls ({} failed and retried)",
            s.took.as_secs_f64(),
            s.calls.calls,
            s.calls.errors
        ));
        seeded = size;
        let past_end = size / 100 + 1;
        let cases = [
            ("page 1, limit 10".to_owned(), "".to_owned()),
            ("page 1, limit 100".to_owned(), "?limit=100".to_owned()),
            (
                "page 10, limit 100".to_owned(),
                "?page=10&limit=100".to_owned(),
            ),
            (
                "page 50, limit 100".to_owned(),
                "?page=50&limit=100".to_owned(),
            ),
            (
                "page 100, limit 100".to_owned(),
                "?page=100&limit=100".to_owned(),
            ),
            (
                format!("page {past_end}, limit 100 (first past the end)"),
                format!("?page={past_end}&limit=100"),
            ),
            (
                "tierName=pro&status=active, page 1, limit 10".to_owned(),
                "?tierName=pro&status=active".to_owned(),
            ),
            (
                "tierName=pro&status=active, page 5, limit 10".to_owned(),
                "?tierName=pro&status=active&page=5".to_owned(),
            ),
        ];
        for (label, query) in cases {
            let path = format!("/customers{query}");
            let sample = app
                .measure(RUNS, 1, StatusCode::OK, |_| app.req(Method::GET, &path))
                .await?;
            let (_, body) = app.send(&app.req(Method::GET, &path)).await?;
            let body: serde_json::Value = serde_json::from_str(&body)?;
            let returned = body["customers"].as_array().map_or(0, Vec::len);
            let n = sample.n();
            eprintln!(
                "bench: {size} customers, {label}: p50 {} ms",
                sample.latencies.ms(50.0)
            );
            table.row(vec![
                size.to_string(),
                label,
                sample.calls_per_run(),
                per(sample.total.items_read as f64, n),
                format!("{:.1}", sample.total.capacity / n.max(1) as f64),
                body["items"].to_string(),
                returned.to_string(),
                sample.latencies.ms(50.0),
                sample.latencies.ms(95.0),
            ]);
        }
    }
    table.note(format!(
        "Per request, {RUNS} runs each. calls = DynamoDB calls; items read = ScannedCount summed \
         over them; capacity = read capacity units DynamoDB Local reported; items = the `items` \
         total in the response (a counter item read by the same first Query); returned = \
         customers on the page. Customers spread evenly over 3 tiers x 4 statuses \
         (pro+active = 1/12)."
    ));
    table.note(format!(
        "Seeding through Store::create_customer (one TransactWriteItems each), 32 at a time: {}.",
        seeding.join("; ")
    ));
    Ok((table, name))
}
