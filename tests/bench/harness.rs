//! The handlers in process over a counting DynamoDB client, requests, timing and
//! seeding.

use std::ops::Range;
use std::time::{Duration, Instant};

use billing::api::{State, dispatch};
use billing::auth::JwtVerifier;
use billing::domain::{
    CustomerId, Member, NewCustomer, Role, SubscriptionStatus, TierName, Timestamp, UserId, now,
};
use billing::store::{Store, StoreError};
use billing_tests::app::{API, PUBLIC_KEY, jwt_settings, token};
use futures_util::stream::{self, StreamExt};
use http::{Method, StatusCode};
use lambda_http::Body;
use serde_json::Value;

use crate::counter::{Calls, Counter};
use crate::report::Latencies;

/// Any error, with its message.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Tiers the seeded customers spread over.
pub const TIERS: [&str; 3] = ["free", "pro", "enterprise"];
/// Statuses the seeded customers spread over (with `TIERS`: every pair, evenly).
pub const STATUSES: [SubscriptionStatus; 4] = [
    SubscriptionStatus::Active,
    SubscriptionStatus::PastDue,
    SubscriptionStatus::Trialing,
    SubscriptionStatus::Canceled,
];
/// Concurrent writes while seeding.
const SEED_CONCURRENCY: usize = 32;

/// The real handlers on one table, over the counting client.
pub struct App {
    /// The store on this table.
    pub store: Store,
    /// What the handlers share.
    pub state: State,
    /// Counts the client's calls.
    pub counter: Counter,
    /// `Authorization` header value of an admin.
    bearer: String,
}

/// One request to the API.
#[derive(Debug, Clone)]
pub struct Req {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

impl App {
    /// Creates `table` and the state the handlers run with.
    pub async fn new(
        client: &aws_sdk_dynamodb::Client,
        counter: &Counter,
        table: &str,
    ) -> Result<Self> {
        let store = Store::new(client.clone(), table);
        store.create_table().await?;
        let verifier = JwtVerifier::new(PUBLIC_KEY.as_bytes(), &jwt_settings())?;
        let admin = token(&uuid::Uuid::new_v4().to_string(), &["billing_admin"], 3600);
        Ok(Self {
            state: State::new(store.clone(), verifier, None)?,
            store,
            counter: counter.clone(),
            bearer: format!("Bearer {admin}"),
        })
    }

    /// A request below the API prefix, as an admin with a Bearer token.
    pub fn req(&self, method: Method, path: impl Into<String>) -> Req {
        Req {
            method,
            path: path.into(),
            headers: vec![("authorization".to_owned(), self.bearer.clone())],
            body: None,
        }
    }

    /// Sends one request through the router and handlers, as the local server does.
    pub async fn send(&self, req: &Req) -> Result<(StatusCode, String)> {
        let mut builder = http::Request::builder()
            .method(req.method.clone())
            .uri(format!("{API}{}", req.path));
        for (name, value) in &req.headers {
            builder = builder.header(name, value);
        }
        let bytes = match &req.body {
            Some(json) => {
                builder = builder.header("content-type", "application/json");
                serde_json::to_vec(json)?
            }
            None => Vec::new(),
        };
        let (parts, ()) = builder.body(())?.into_parts();
        let response = dispatch(&self.state, billing::http::lambda_request(parts, bytes)).await;
        let status = response.status();
        let body = match response.into_body() {
            Body::Text(text) => text,
            Body::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            _ => String::new(),
        };
        Ok((status, body))
    }

    /// Sends `n` requests made by `make` (given the run's index), each of which must
    /// answer `expect`, after `warmup` untimed ones.
    pub async fn measure(
        &self,
        n: usize,
        warmup: usize,
        expect: StatusCode,
        mut make: impl FnMut(usize) -> Req,
    ) -> Result<Sample> {
        let mut sample = Sample::default();
        for i in 0..warmup + n {
            let req = make(i);
            let before = self.counter.snapshot();
            let started = Instant::now();
            let (status, body) = self.send(&req).await?;
            let took = started.elapsed();
            let calls = self.counter.snapshot().since(&before);
            if status != expect {
                return Err(format!(
                    "{} {} answered {status}, expected {expect}: {body}",
                    req.method, req.path
                )
                .into());
            }
            if i >= warmup {
                sample.record(took, calls);
            }
        }
        Ok(sample)
    }
}

impl Req {
    /// With these headers instead of the Bearer token.
    pub fn auth(mut self, headers: &[(&str, &str)]) -> Self {
        self.headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self
    }

    /// With a JSON body.
    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// Timings and DynamoDB calls of repeated runs.
#[derive(Debug, Default)]
pub struct Sample {
    /// Time per run.
    pub latencies: Latencies,
    /// Calls of all runs together.
    pub total: Calls,
    /// Fewest and most calls in one run.
    pub calls_range: Option<(u64, u64)>,
}

impl Sample {
    /// Adds one run: its time and its calls.
    pub fn record(&mut self, took: Duration, calls: Calls) {
        self.latencies.push(took);
        self.calls_range = Some(match self.calls_range {
            None => (calls.calls, calls.calls),
            Some((lo, hi)) => (lo.min(calls.calls), hi.max(calls.calls)),
        });
        let total = &mut self.total;
        total.calls += calls.calls;
        total.attempts += calls.attempts;
        total.errors += calls.errors;
        total.items_read += calls.items_read;
        total.writes += calls.writes;
        total.capacity += calls.capacity;
        for (op, n) in calls.by_op {
            *total.by_op.entry(op).or_default() += n;
        }
    }

    /// Runs.
    pub fn n(&self) -> usize {
        self.latencies.len()
    }

    /// Calls per run: "1", or "3-5" when runs differ.
    pub fn calls_per_run(&self) -> String {
        match self.calls_range {
            Some((lo, hi)) if lo == hi => lo.to_string(),
            Some((lo, hi)) => format!("{lo}-{hi}"),
            None => "-".to_owned(),
        }
    }

    /// Operations per run, e.g. "1 GetItem + 1 Query".
    pub fn ops_per_run(&self) -> String {
        let n = self.n();
        let ops: Vec<String> = self
            .total
            .by_op
            .iter()
            .map(|(op, count)| format!("{} {op}", crate::report::per(*count as f64, n)))
            .collect();
        if ops.is_empty() {
            "-".to_owned()
        } else {
            ops.join(" + ")
        }
    }
}

/// Times `n` runs of a raw DynamoDB call (after one untimed run), counting calls.
pub async fn measure_raw(
    counter: &Counter,
    n: usize,
    mut call: impl AsyncFnMut(usize) -> Result<()>,
) -> Result<Sample> {
    let mut sample = Sample::default();
    for i in 0..=n {
        let before = counter.snapshot();
        let started = Instant::now();
        call(i).await?;
        let took = started.elapsed();
        if i > 0 {
            sample.record(took, counter.snapshot().since(&before));
        }
    }
    Ok(sample)
}

/// The `i`th seeded customer: distinct `createdAt` (one second apart), tiers and
/// statuses spread evenly.
pub fn new_customer(i: usize) -> Result<NewCustomer> {
    let start: Timestamp = serde_json::from_value(Value::from("2025-01-01T00:00:00Z"))?;
    Ok(NewCustomer {
        id: CustomerId::random(),
        name: format!("Bench customer {i}"),
        tier_name: TierName::parse(TIERS[i % TIERS.len()])?,
        tier_id: uuid::Uuid::from_u128(0xe000_0000_0000_4000_8000_0000_0000_0000 | (i % 3) as u128),
        subscription_status: STATUSES[i % STATUSES.len()],
        created_at: start + Duration::from_secs(i as u64),
        owner_user_id: UserId::random(),
        stripe_customer_id: None,
        stripe_subscription_id: None,
    })
}

/// `user_id` as a member with `role`, joined now.
pub fn member(user_id: UserId, role: Role) -> Member {
    Member {
        role_id: uuid::Uuid::new_v4(),
        user_id,
        role,
        joined_at: now(),
    }
}

/// What seeding took.
#[derive(Debug)]
pub struct Seeded {
    /// Wall time.
    pub took: Duration,
    /// DynamoDB calls, failed ones (transaction conflicts) included.
    pub calls: Calls,
}

/// Creates customers `range` (see [`new_customer`]) through the store, as the
/// service does (one transaction each, listing counters included),
/// `SEED_CONCURRENCY` at a time.
pub async fn seed_customers(app: &App, range: Range<usize>) -> Result<Seeded> {
    let before = app.counter.snapshot();
    let started = Instant::now();
    let (count, mut done) = (range.len(), 0);
    let mut creates = stream::iter(range)
        .map(|i| async move { create(&app.store, &new_customer(i)?).await })
        .buffer_unordered(SEED_CONCURRENCY);
    while let Some(created) = creates.next().await {
        created?;
        done += 1;
        if done % 2_000 == 0 && done < count {
            eprintln!(
                "bench: seeding: {done}/{count} customers in {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(Seeded {
        took: started.elapsed(),
        calls: app.counter.snapshot().since(&before),
    })
}

/// Creates a customer, retrying (bounded) when its listing counters stay
/// contended, or when DynamoDB Local gave up waiting for an item's lock (on a
/// loaded machine; DynamoDB answers a conflict, which the store retries).
async fn create(store: &Store, customer: &NewCustomer) -> Result<()> {
    let mut tries = 0;
    loop {
        match store
            .create_customer(customer, &billing::domain::audit::Origin::system("bench"))
            .await
        {
            Err(StoreError::Contention | StoreError::Dynamo(_)) if tries < 10 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100 * tries)).await;
            }
            Err(StoreError::CustomerExists) if tries > 0 => return Ok(()),
            other => return Ok(other?),
        }
    }
}

/// Creates one customer with `members` members (the first its owner, the others
/// role user); returns its id and the non-owner members' ids.
pub async fn customer_with_members(
    app: &App,
    i: usize,
    members: usize,
) -> Result<(CustomerId, Vec<UserId>)> {
    let customer = new_customer(i)?;
    create(&app.store, &customer).await?;
    if members == 0 {
        return Ok((customer.id, Vec::new()));
    }
    let users: Vec<UserId> = (1..members).map(|_| UserId::random()).collect();
    let all: Vec<Member> = std::iter::once(member(customer.owner_user_id, Role::Owner))
        .chain(users.iter().map(|u| member(*u, Role::User)))
        .collect();
    app.store
        .add_members(
            &customer.id,
            &all,
            &billing::domain::audit::Origin::system("bench"),
        )
        .await?;
    Ok((customer.id, users))
}
