//! Tables 3a and 3b: what listing customers costs as the table grows, with
//! every listing count change uncompacted and after compaction.

use aws_sdk_dynamodb::Client;
use http::{Method, StatusCode};

use crate::counter::Counter;
use billing::store::Listing;

use crate::harness::{App, Result, STATUSES, TIERS, new_customer, seed_customers};
use crate::report::{Table, per};

/// Timed requests per case (after one untimed).
const RUNS: usize = 10;

/// For each size (1k, 10k, then 100k with `large`), a fresh table: seeds it
/// through the store with nothing compacting the listing counts (every change
/// still in its listing's shards: the backlog a stopped stream consumer leaves),
/// lists it, compacts, and lists it again. Returns (backlog, compacted) tables.
pub async fn run(
    client: &Client,
    counter: &Counter,
    large: bool,
    sizes: Option<&[usize]>,
) -> Result<(Table, Table)> {
    let mut sizes = sizes.map_or_else(|| vec![1_000, 10_000], <[usize]>::to_vec);
    if large {
        sizes.push(100_000);
    }
    let columns = [
        "customers",
        "request",
        "calls",
        "items read",
        "capacity",
        "items",
        "returned",
        "p50 ms",
        "p95 ms",
    ];
    let mut backlog = Table::new(
        "3a. List customers with a backlog: every change since seeding uncompacted",
        &columns,
    );
    let mut steady = Table::new(
        "3b. List customers, steady state: the same tables after compaction",
        &columns,
    );
    let mut seeding = Vec::new();
    let mut compacting = Vec::new();
    for size in sizes {
        let name = format!("bench-list-{}", uuid::Uuid::new_v4().simple());
        let app = App::new(client, counter, &name).await?;
        let s = seed_customers(&app, 0..size).await?;
        let rate = size as f64 / s.took.as_secs_f64();
        eprintln!(
            "bench: seeded {size} customers in {:.1} s ({rate:.0}/s)",
            s.took.as_secs_f64()
        );
        seeding.push(format!(
            "{size}: {:.0} s, {rate:.0}/s, {} calls ({} failed and retried)",
            s.took.as_secs_f64(),
            s.calls.calls,
            s.calls.errors
        ));
        measure(&app, size, &mut backlog).await?;
        let started = std::time::Instant::now();
        let mut changes = 0;
        for pk in listings(size)? {
            changes += fold(&app, &pk).await?;
        }
        compacting.push(format!(
            "{size}: {changes} changes in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        measure(&app, size, &mut steady).await?;
    }
    let note = format!(
        "Per request, {RUNS} runs each. calls = DynamoDB calls; items read = ScannedCount summed \
         over them; capacity = read capacity units DynamoDB Local reported; items = the `items` \
         total in the response; returned = customers on the page. Customers spread evenly over \
         3 tiers x 4 statuses (pro+active = 1/12), one per second from 2025-01-01."
    );
    backlog.note(note.clone());
    backlog.note(format!(
        "Seeding through Store::create_customer (one TransactWriteItems each), 32 at a time, \
         nothing compacting: each listing's changes wait in its 8 shards of day counts (the \
         every-customer listing: as many changes as customers). {}.",
        seeding.join("; ")
    ));
    steady.note(note);
    steady.note(format!(
        "After Store::fold_index of every listing (shards into months, then each changed \
         day's fences): {}.",
        compacting.join("; ")
    ));
    Ok((backlog, steady))
}

/// The directories of every listing the first `size` generated customers are
/// in (a scan for pending changes would read the whole table).
pub fn listings(size: usize) -> Result<std::collections::BTreeSet<String>> {
    let mut pks = std::collections::BTreeSet::new();
    for i in 0..size.min(TIERS.len() * STATUSES.len()) {
        let c = new_customer(i)?;
        for l in Listing::of(&billing::domain::Customer::from(&c)) {
            pks.insert(l.index_pk());
        }
    }
    Ok(pks)
}

/// Compacts one listing's directory, again after an error: DynamoDB Local
/// answers a transaction that waited too long for an item's lock with an error
/// (on a loaded machine) where DynamoDB would succeed.
pub async fn fold(app: &App, pk: &str) -> Result<u64> {
    let mut tries = 0;
    loop {
        match app.store.fold_index(pk).await {
            Ok(n) => return Ok(n),
            Err(err) if tries < 5 => {
                tries += 1;
                eprintln!("bench: compacting {pk}: {err}; again");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// The cases of one table size, as rows of `table`.
async fn measure(app: &App, size: usize, table: &mut Table) -> Result<()> {
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
    Ok(())
}
