//! Stripe webhook: cost per event. Each delivery goes through the real handler
//! (signature, parsing, lookup, Stripe's current state, the store) against
//! DynamoDB Local and localstripe; the Stripe state it finds is set up, untimed,
//! before it. Counted per delivery: Stripe calls (`StripeCalls` metrics), the
//! DynamoDB calls and the write actions they send.

use std::time::Instant;

use billing::domain::{CustomerId, NewCustomer, SubscriptionStatus, TierName, UserId, now};
use billing::payments::Payments;
use billing::sync::signature::{Secrets, WebhookSecrets, header};
use billing::sync::webhook::{PATH, Webhooks};
use billing::telemetry::metrics::Capture;
use http::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{App, Result, Sample};
use crate::report::{Table, per};

/// Timed deliveries per case.
const N: usize = 30;
/// Untimed deliveries before each case's timed ones.
const WARMUP: usize = 2;
/// The endpoint secret the deliveries are signed with.
const SECRET: &str = "whsec_bench";
/// localstripe's key.
const STRIPE_KEY: &str = "sk_test_local";

/// The handler over the bench's table, and the Stripe it reads.
struct Bench<'a> {
    app: &'a App,
    hooks: Webhooks,
    payments: Payments,
    stripe_url: &'a str,
    /// The tier every customer is billed on first, and its id.
    pro: (TierName, Uuid),
}

/// One case measured, and what the previous design cost for it.
struct Row {
    case: &'static str,
    outcome: &'static str,
    sample: Sample,
    stripe_calls: f64,
    /// Stripe calls / GetItem / write actions of the previous design.
    before: &'static str,
}

/// Runs every case against `app`'s table and the localstripe at `stripe_url`.
pub async fn run(app: &App, stripe_url: &str) -> Result<Table> {
    let secrets = Secrets::parse(&SecretString::from(SECRET)).ok_or("webhook secret")?;
    let payments = Payments::new(stripe_url, &SecretString::from(STRIPE_KEY))?;
    let bench = Bench {
        app,
        hooks: Webhooks::new(
            app.store.clone(),
            WebhookSecrets::Fixed(secrets),
            payments.clone(),
        ),
        payments,
        stripe_url,
        pro: (TierName::parse("pro")?, Uuid::new_v4()),
    };
    let enterprise = bench.plan("enterprise").await?;
    let mut rows = Vec::new();
    let mut applied = Vec::new();

    let mut row = Row::new(
        "status change (canceled in Stripe)",
        "applied",
        "0 / 2 / 13",
    );
    for i in 0..WARMUP + N {
        let (cus, sub) = bench.billed("active").await?;
        bench.delete(&format!("/v1/subscriptions/{sub}")).await?;
        let event = sub_event("customer.subscription.deleted", &cus, &sub, "canceled");
        bench.deliver(&mut row, i, &event).await?;
        applied.push(event);
    }
    rows.push(row);

    let mut row = Row::new("status + tier (new plan)", "applied", "0 / 2 / 16");
    for i in 0..WARMUP + N {
        let (cus, old) = bench.billed("past_due").await?;
        let form = format!("customer={cus}&items[0][plan]={enterprise}");
        let new = bench.stripe("POST", "/v1/subscriptions", &form).await?;
        let new = new["id"].as_str().ok_or("subscription id")?;
        bench.delete(&format!("/v1/subscriptions/{old}")).await?;
        let event = sub_event("customer.subscription.created", &cus, new, "active");
        bench.deliver(&mut row, i, &event).await?;
    }
    rows.push(row);

    let mut row = Row::new("Stripe as the record shows it", "unchanged", "0 / 2 / 2");
    for i in 0..WARMUP + N {
        let (cus, sub) = bench.billed("active").await?;
        let event = sub_event("customer.subscription.updated", &cus, &sub, "active");
        bench.deliver(&mut row, i, &event).await?;
    }
    rows.push(row);

    let mut row = Row::new("redelivery", "duplicate", "0 / 2 / 0");
    for (i, event) in applied.iter().enumerate() {
        bench.deliver(&mut row, i, event).await?;
    }
    rows.push(row);

    let mut row = Row::new("customer.deleted", "applied", "0 / 2 / n/a");
    for i in 0..WARMUP + N {
        let (cus, _) = bench.billed("active").await?;
        bench.delete(&format!("/v1/customers/{cus}")).await?;
        let event = json!({
            "id": format!("evt_{}", Uuid::new_v4().simple()), "object": "event",
            "type": "customer.deleted", "created": now().timestamp(),
            "data": {"object": {"id": cus, "object": "customer", "deleted": true}},
        });
        bench.deliver(&mut row, i, &event).await?;
    }
    rows.push(row);

    let mut row = Row::new("unknown Stripe customer", "unknown_customer", "0 / 1 / 0");
    for i in 0..WARMUP + N {
        let cus = format!("cus_{}", Uuid::new_v4().simple());
        let event = sub_event(
            "customer.subscription.updated",
            &cus,
            "sub_unknown",
            "active",
        );
        bench.deliver(&mut row, i, &event).await?;
    }
    rows.push(row);

    Ok(table(rows))
}

impl Row {
    fn new(case: &'static str, outcome: &'static str, before: &'static str) -> Self {
        Self {
            case,
            outcome,
            sample: Sample::default(),
            stripe_calls: 0.0,
            before,
        }
    }
}

impl Bench<'_> {
    /// The Stripe plan of `tier` (created through a throwaway Stripe customer).
    async fn plan(&self, tier: &str) -> Result<String> {
        let tier_id = Uuid::new_v4();
        self.payments
            .create_customer(
                &CustomerId::random(),
                "plan maker",
                &TierName::parse(tier)?,
                tier_id,
                true,
            )
            .await?;
        Ok(format!("tier-{tier}-{}", tier_id.simple()))
    }

    /// A customer of ours billed on pro in localstripe (an active subscription),
    /// linked to it, whose record says `recorded`: `(cus_..., sub_...)`.
    async fn billed(&self, recorded: &str) -> Result<(String, String)> {
        let id = CustomerId::random();
        let (tier_name, tier_id) = self.pro.clone();
        let name = format!("Bench customer {id}");
        let created = self
            .payments
            .create_customer(&id, &name, &tier_name, tier_id, true)
            .await?;
        let sub = created.subscription.ok_or("no subscription")?;
        let customer = NewCustomer {
            id,
            name,
            tier_name,
            tier_id,
            subscription_status: SubscriptionStatus::parse(recorded)?,
            created_at: now(),
            owner_user_id: UserId::random(),
            stripe_customer_id: Some(created.customer.clone()),
            stripe_subscription_id: Some(sub.clone()),
        };
        let origin = billing::domain::audit::Origin::system("bench");
        self.app.store.create_customer(&customer, &origin).await?;
        Ok((created.customer, sub))
    }

    /// One form request to localstripe (off the runtime's threads).
    async fn stripe(&self, method: &'static str, path: &str, form: &str) -> Result<Value> {
        let (url, path, form) = (self.stripe_url.to_owned(), path.to_owned(), form.to_owned());
        let (status, body) = tokio::task::spawn_blocking(move || {
            let auth = format!("Bearer {STRIPE_KEY}");
            let headers = [
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ];
            billing_tests::net::request(&url, method, &path, &headers, Some(&form))
        })
        .await?;
        if status != 200 {
            return Err(format!("localstripe {method}: {status} {body}").into());
        }
        Ok(body)
    }

    /// Deletes (or cancels) the localstripe object at `path`.
    async fn delete(&self, path: &str) -> Result<()> {
        self.stripe("DELETE", path, "").await.map(drop)
    }

    /// Delivers `event` signed as Stripe would; the `i`th delivery of `row`,
    /// recorded after the warmup. Fails unless it answers 200 with the row's outcome.
    async fn deliver(&self, row: &mut Row, i: usize, event: &Value) -> Result<()> {
        let body = event.to_string();
        let signature = header(
            &SecretString::from(SECRET),
            now().timestamp(),
            body.as_bytes(),
        );
        let (parts, ()) = http::Request::builder()
            .method(Method::POST)
            .uri(PATH)
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(())?
            .into_parts();
        let req = billing::http::lambda_request(parts, body.into_bytes());
        let capture = Capture::new();
        let before = self.app.counter.snapshot();
        let started = Instant::now();
        let response = capture.scope(self.hooks.handle(&req)).await;
        let took = started.elapsed();
        let calls = self.app.counter.snapshot().since(&before);
        let answer: Value = serde_json::from_slice(response.body().as_ref())?;
        if response.status() != StatusCode::OK || answer["outcome"] != row.outcome {
            return Err(format!("{}: {} {answer}", row.case, response.status()).into());
        }
        if i >= WARMUP {
            row.sample.record(took, calls);
            row.stripe_calls += capture
                .documents()
                .iter()
                .filter_map(|d| d["StripeCalls"].as_f64())
                .sum::<f64>();
        }
        Ok(())
    }
}

/// A subscription event as Stripe sends it.
fn sub_event(kind: &str, customer: &str, sub: &str, status: &str) -> Value {
    json!({
        "id": format!("evt_{}", Uuid::new_v4().simple()), "object": "event",
        "type": kind, "created": now().timestamp(),
        "data": {"object": {
            "id": sub, "object": "subscription", "customer": customer, "status": status,
            "items": {"object": "list", "data": [{"id": "si_1", "price": {"id": "price_1"}}]},
        }},
    })
}

fn table(rows: Vec<Row>) -> Table {
    let mut table = Table::new(
        "Stripe webhook: cost per event",
        &[
            "event",
            "outcome",
            "Stripe calls",
            "DynamoDB calls",
            "GetItem",
            "write actions",
            "p50 ms",
            "before: Stripe / GetItem / writes",
        ],
    );
    for row in rows {
        let n = row.sample.n();
        let gets = row.sample.total.by_op.get("GetItem").copied().unwrap_or(0);
        table.row(vec![
            row.case.to_owned(),
            row.outcome.to_owned(),
            per(row.stripe_calls, n),
            row.sample.ops_per_run(),
            per(gets as f64, n),
            per(row.sample.total.writes as f64, n),
            row.sample.latencies.ms(50.0),
            row.before.to_owned(),
        ]);
    }
    table.note(format!(
        "Per delivery, {N} timed after {WARMUP} untimed each; the handler in process \
         (signature, lookup, Stripe, store), DynamoDB Local and localstripe on loopback."
    ));
    table.note(
        "before: the previous design applied the event's own snapshot, never reading \
         Stripe (lookup + record read, then the transaction); its customer.deleted writes \
         were not recorded (n/a); its unknown customer read the lookup only (from its code).",
    );
    table
}
