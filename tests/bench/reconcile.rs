//! `--reconcile N,...` (part of `make bench-scale`): the reconciliation's peak
//! memory and time at N Stripe customers and subscriptions, against a synthetic
//! Stripe on loopback that generates its list pages on the fly (Stripe-sized
//! objects, `has_more`/`starting_after`), and a table of up to [`OURS`]
//! customers linked to the first of them (one in a thousand drifted; the other
//! Stripe customers are no customer of ours). Loading 100,000 customers into
//! DynamoDB Local takes far longer than the measurement, and what grows with
//! Stripe's lists is what is measured.
//!
//! Each run is a child process of this binary (`--reconcile-child`), so its peak
//! resident set (`VmHWM`) is the reconciliation's alone: `stream` runs
//! `Reconciler::run`; `lists` only holds both lists as the reconciliation did
//! before it streamed them (every page's objects kept as JSON), for comparison.

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

use billing::domain::{CustomerId, NewCustomer, SubscriptionStatus, TierName, UserId};

use crate::counter::Counter;
use crate::harness::{App, Result, STATUSES, TIERS};
use crate::report::Table;

/// Customers per `load_customers` call, and calls at once.
const LOAD_CHUNK: usize = 2_000;
const LOAD_CONCURRENCY: usize = 4;
/// One customer in this many is drifted (its status is not Stripe's).
const DRIFT_EVERY: usize = 1_000;
/// Customers of ours at most, whatever the Stripe objects.
const OURS: usize = 10_000;
/// Unix time of the first generated object.
const EPOCH: i64 = 1_735_689_600;

/// Measures each size in `sizes` both ways; one table.
pub async fn run(
    client: &Client,
    counter: &Counter,
    dynamodb: &str,
    sizes: &[usize],
) -> Result<Table> {
    let mut table = Table::new(
        "6. Reconcile: peak memory by Stripe objects (synthetic Stripe, release build)",
        &[
            "Stripe subscriptions",
            "ours",
            "how",
            "peak RSS MiB",
            "of which at start",
            "seconds",
            "checked",
            "drifted",
            "spilled MiB",
        ],
    );
    // One table per number of customers of ours.
    let mut tables: Vec<(usize, String)> = Vec::new();
    for &n in sizes {
        let stripe = SyntheticStripe::start(n).await?;
        let ours = n.min(OURS);
        let name = match tables.iter().find(|(count, _)| *count == ours) {
            Some((_, name)) => name.clone(),
            None => {
                let name = format!("bench-reconcile-{}", uuid::Uuid::new_v4().simple());
                let app = App::new(client, counter, &name).await?;
                let loading = Instant::now();
                load(&app, ours).await?;
                eprintln!(
                    "bench: reconcile: {ours} customers loaded in {:.0} s",
                    loading.elapsed().as_secs_f64()
                );
                tables.push((ours, name.clone()));
                name
            }
        };
        for how in ["lists", "stream"] {
            let out = spawn_child(how, &name, dynamodb, &stripe.url)?;
            eprintln!("bench: reconcile: {n} Stripe subscriptions, {how}: {out}");
            let mib = |k: &str| format!("{:.1}", out[k].as_f64().unwrap_or(0.0) / 1024.0);
            table.row(vec![
                n.to_string(),
                ours.to_string(),
                match how {
                    "lists" => "both lists held (before)".to_owned(),
                    _ => "streamed, partitioned (now)".to_owned(),
                },
                mib("peakKiB"),
                mib("startKiB"),
                format!("{:.1}", out["seconds"].as_f64().unwrap_or(0.0)),
                out["checked"]
                    .as_u64()
                    .map_or("-".into(), |n| n.to_string()),
                out["drifted"]
                    .as_u64()
                    .map_or("-".into(), |n| n.to_string()),
                match how {
                    "lists" => "-".to_owned(),
                    _ => format!(
                        "{:.1}",
                        out["spilledBytes"].as_f64().unwrap_or(0.0) / (1024.0 * 1024.0)
                    ),
                },
            ]);
        }
        stripe.stop();
    }
    table.note(
        "Peak RSS (VmHWM) of a child process doing only that run, its clients included \
         ('at start': before the first call). The synthetic Stripe answers at once: against \
         Stripe, the two list walks (one call per 100 objects each, at once) take the time.",
    );
    Ok(table)
}

/// The child's side: runs `how` on `table` with Stripe at `stripe` and prints
/// one JSON line of what it measured.
pub async fn child(client: Client, how: &str, table: &str, stripe: &str) -> Result<()> {
    let key = secrecy::SecretString::from("sk_test_bench");
    let payments = billing::payments::Payments::new(stripe, &key)?;
    let start = peak_kib();
    let began = Instant::now();
    let (checked, drifted, spilled) = match how {
        "stream" => {
            let store = billing::store::Store::new(client, table);
            let report = billing::sync::reconcile::Reconciler::new(store, payments)
                .run(false)
                .await?;
            (report.checked, report.drifted, report.spilled_bytes)
        }
        _ => {
            let (customers, subscriptions) = tokio::try_join!(
                async {
                    let (mut all, mut after) = (Vec::new(), None);
                    loop {
                        let page = payments.customers_page(after.as_deref()).await?;
                        all.extend(page.data);
                        match page.next {
                            Some(next) => after = Some(next),
                            None => return Ok::<_, billing::payments::PaymentsError>(all),
                        }
                    }
                },
                payments.all_subscriptions()
            )?;
            // Held until measured: what the reconciliation held for its walk.
            let peak = peak_kib();
            drop((customers, subscriptions));
            println!(
                "{}",
                json!({"peakKiB": peak, "startKiB": start,
                    "seconds": began.elapsed().as_secs_f64()})
            );
            return Ok(());
        }
    };
    println!(
        "{}",
        json!({"peakKiB": peak_kib(), "startKiB": start, "seconds": began.elapsed().as_secs_f64(),
            "checked": checked, "drifted": drifted, "spilledBytes": spilled})
    );
    Ok(())
}

/// Runs this binary as `--reconcile-child HOW TABLE DYNAMODB STRIPE`; its
/// JSON line.
fn spawn_child(how: &str, table: &str, dynamodb: &str, stripe: &str) -> Result<Value> {
    let out = Command::new(std::env::current_exe()?)
        .args(["--reconcile-child", how, table, dynamodb, stripe])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "reconcile child ({how}) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let line = String::from_utf8_lossy(&out.stdout);
    Ok(serde_json::from_str(
        line.lines().last().unwrap_or_default(),
    )?)
}

/// This process's peak resident set, KiB (`VmHWM`).
fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The `i`th customer of ours: linked to `cus_i`/`sub_i`, in step with them
/// but for one in [`DRIFT_EVERY`].
fn ours(i: usize) -> Result<NewCustomer> {
    let status = status(i);
    Ok(NewCustomer {
        id: customer_id(i),
        name: format!("Reconciled customer {i}"),
        tier_name: TierName::parse(TIERS[i % TIERS.len()])?,
        tier_id: tier_id(i),
        subscription_status: match i % DRIFT_EVERY {
            0 if status == SubscriptionStatus::Active => SubscriptionStatus::PastDue,
            0 => SubscriptionStatus::Active,
            _ => status,
        },
        created_at: chrono::DateTime::from_timestamp(EPOCH + i as i64, 0).unwrap_or_default(),
        owner_user_id: UserId::random(),
        stripe_customer_id: Some(format!("cus_{i:010}")),
        stripe_subscription_id: Some(format!("sub_{i:010}")),
    })
}

fn customer_id(i: usize) -> CustomerId {
    CustomerId::from(uuid::Uuid::from_u128(
        0xc100_0000_0000_4000_8000_0000_0000_0000 | i as u128,
    ))
}

fn tier_id(i: usize) -> uuid::Uuid {
    uuid::Uuid::from_u128(0xe000_0000_0000_4000_8000_0000_0000_0000 | (i % TIERS.len()) as u128)
}

fn status(i: usize) -> SubscriptionStatus {
    STATUSES[i % STATUSES.len()]
}

/// Loads customers `0..n` (see [`ours`]).
async fn load(app: &App, n: usize) -> Result<()> {
    let chunks: Vec<Vec<NewCustomer>> = (0..n)
        .collect::<Vec<_>>()
        .chunks(LOAD_CHUNK)
        .map(|c| c.iter().map(|&i| ours(i)).collect::<Result<Vec<_>>>())
        .collect::<Result<_>>()?;
    let mut loads = stream::iter(chunks)
        .map(|chunk| async move { app.store.load_customers(&chunk).await })
        .buffer_unordered(LOAD_CONCURRENCY);
    while let Some(loaded) = loads.next().await {
        loaded?;
    }
    Ok(())
}

/// A Stripe whose customers and subscriptions are generated from their index.
struct SyntheticStripe {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl SyntheticStripe {
    async fn start(n: usize) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let n = Arc::new(n);
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let n = *n;
            async move { answer(n, req.uri()) }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, task })
    }

    fn stop(self) {
        self.task.abort();
    }
}

/// The answer to one request: a list page of customers or subscriptions, or a
/// customer.
fn answer(n: usize, uri: &http::Uri) -> axum::response::Response {
    let query: Vec<(&str, &str)> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let param = |k: &str| query.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    let limit: usize = param("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
    // Objects are listed by index; `starting_after` names the last one read.
    let from = param("starting_after")
        .and_then(|id| id.get(4..))
        .and_then(|i| i.parse::<usize>().ok())
        .map_or(0, |i| i + 1);
    let to = (from + limit).min(n);
    let page = |object: fn(usize) -> Value| {
        json!({"object": "list", "url": uri.path(), "has_more": to < n,
            "data": (from..to).map(object).collect::<Vec<_>>()})
    };
    let body = match uri.path() {
        "/v1/customers" => page(stripe_customer),
        "/v1/subscriptions" => page(subscription),
        path => match path
            .strip_prefix("/v1/customers/cus_")
            .and_then(|i| i.parse::<usize>().ok())
        {
            Some(i) if i < n => stripe_customer(i),
            _ => {
                let mut response = axum::response::Response::new(axum::body::Body::from(
                    r#"{"error":{"type":"invalid_request_error","code":"resource_missing"}}"#,
                ));
                *response.status_mut() = http::StatusCode::NOT_FOUND;
                return response;
            }
        },
    };
    axum::response::Response::new(axum::body::Body::from(body.to_string()))
}

/// The `i`th Stripe customer, with the fields Stripe returns (about 1 KB).
fn stripe_customer(i: usize) -> Value {
    json!({
        "id": format!("cus_{i:010}"), "object": "customer", "address": null, "balance": 0,
        "created": EPOCH + i as i64, "currency": "usd", "default_source": null,
        "delinquent": false, "description": null, "discount": null,
        "email": format!("billing+{i}@example.com"), "invoice_prefix": format!("B{i:07X}"),
        "invoice_settings": {"custom_fields": null, "default_payment_method": format!("pm_{i:024}"),
            "footer": null, "rendering_options": null},
        "livemode": false, "metadata": {"customerID": customer_id(i).to_string()},
        "name": format!("Reconciled customer {i}"), "next_invoice_sequence": 7, "phone": null,
        "preferred_locales": ["en"], "shipping": null, "tax_exempt": "none", "test_clock": null
    })
}

/// The `i`th subscription (of `cus_i`), with the fields Stripe returns, its
/// item's price and plan carrying the tier (about 3 KB).
fn subscription(i: usize) -> Value {
    let tier = TIERS[i % TIERS.len()];
    let metadata = json!({"tierName": tier, "tierID": tier_id(i).to_string()});
    let created = EPOCH + i as i64;
    let plan = json!({
        "id": format!("price_{tier}_monthly"), "object": "plan", "active": true,
        "aggregate_usage": null, "amount": 1000, "amount_decimal": "1000",
        "billing_scheme": "per_unit", "created": EPOCH, "currency": "usd", "interval": "month",
        "interval_count": 1, "livemode": false, "metadata": metadata, "nickname": null,
        "product": format!("prod_{tier}"), "tiers_mode": null, "transform_usage": null,
        "trial_period_days": null, "usage_type": "licensed"
    });
    let price = json!({
        "id": format!("price_{tier}_monthly"), "object": "price", "active": true,
        "billing_scheme": "per_unit", "created": EPOCH, "currency": "usd",
        "custom_unit_amount": null, "livemode": false, "lookup_key": null, "metadata": metadata,
        "nickname": null, "product": format!("prod_{tier}"),
        "recurring": {"aggregate_usage": null, "interval": "month", "interval_count": 1,
            "trial_period_days": null, "usage_type": "licensed"},
        "tax_behavior": "unspecified", "tiers_mode": null, "transform_quantity": null,
        "type": "recurring", "unit_amount": 1000, "unit_amount_decimal": "1000"
    });
    json!({
        "id": format!("sub_{i:010}"), "object": "subscription", "application": null,
        "application_fee_percent": null,
        "automatic_tax": {"enabled": false, "liability": null},
        "billing_cycle_anchor": created, "billing_thresholds": null, "cancel_at": null,
        "cancel_at_period_end": false, "canceled_at": null,
        "cancellation_details": {"comment": null, "feedback": null, "reason": null},
        "collection_method": "charge_automatically", "created": created, "currency": "usd",
        "current_period_end": created + 2_592_000, "current_period_start": created,
        "customer": format!("cus_{i:010}"), "days_until_due": null,
        "default_payment_method": format!("pm_{i:024}"), "default_source": null,
        "default_tax_rates": [], "description": null, "discount": null, "discounts": [],
        "ended_at": null,
        "items": {"object": "list", "data": [{
            "id": format!("si_{i:014}"), "object": "subscription_item",
            "billing_thresholds": null, "created": created, "discounts": [], "metadata": {},
            "plan": plan, "price": price, "quantity": 1,
            "subscription": format!("sub_{i:010}"), "tax_rates": []
        }], "has_more": false, "total_count": 1,
            "url": format!("/v1/subscription_items?subscription=sub_{i:010}")},
        "latest_invoice": format!("in_{i:024}"), "livemode": false, "metadata": {},
        "next_pending_invoice_item_invoice": null, "on_behalf_of": null,
        "pause_collection": null,
        "payment_settings": {"payment_method_options": null, "payment_method_types": null,
            "save_default_payment_method": "off"},
        "pending_invoice_item_interval": null, "pending_setup_intent": null,
        "pending_update": null, "schedule": null, "start_date": created,
        "status": status(i).as_str(), "test_clock": null, "transfer_data": null,
        "trial_end": null,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": null
    })
}
