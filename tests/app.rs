//! A fresh table per test and a client that calls the handlers in process.

use billing::api::{State, dispatch};
use billing::auth::{JwtSettings, JwtVerifier, sign};
use billing::seed::{Fixtures, seed};
use billing::store::Store;
use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;

use crate::Env;

/// Development key pair, as `billing-dev` uses it.
pub const PUBLIC_KEY: &str = include_str!("../infra/dev-keys/jwt-ed25519.pub.pem");
/// Private half.
pub const PRIVATE_KEY: &str = include_str!("../infra/dev-keys/jwt-ed25519.pem");
/// The API's path prefix.
pub const API: &str = billing::api::PREFIX;

/// Token settings the tests sign and verify with.
pub fn jwt_settings() -> JwtSettings {
    JwtSettings::new("https://auth.billing.test", "billing-admin-api")
}

/// The verifier of the development key.
pub fn dev_verifier() -> JwtVerifier {
    JwtVerifier::new(PUBLIC_KEY.as_bytes(), &jwt_settings()).expect("dev public key")
}

/// One test's application: its own table, the real handlers.
pub struct TestApp {
    /// The state the handlers run with.
    pub state: State,
    /// The store on this test's table.
    pub store: Store,
    payments: billing::payments::Payments,
    admin: String,
    _table: std::sync::Arc<TableGuard>,
}

/// Deletes a test's table when the last [`TestApp`] on it is dropped: DynamoDB
/// Local reads every table's description on each request, so a suite that kept
/// its hundred tables would slow down as it runs.
struct TableGuard(Store);

impl Drop for TableGuard {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (client, table) = (self.0.client().clone(), self.0.table_name().to_owned());
        runtime.spawn(async move {
            let _ = client.delete_table().table_name(table).send().await;
        });
    }
}

/// A response, with its body parsed as JSON (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub json: Value,
}

impl TestApp {
    /// A new table with its indexes (its stream off), and an admin token.
    pub async fn new(env: &Env) -> Self {
        Self::with_verifier(env, dev_verifier()).await
    }

    /// A new table with its stream on, for the tests that consume it.
    ///
    /// Only they get one: DynamoDB Local keeps every stream's records in one
    /// table and scans it for each request's table description, so every
    /// record written anywhere in the suite would slow every later request.
    pub async fn with_stream(env: &Env) -> Self {
        Self::build(env, dev_verifier(), true).await
    }

    /// A new table (its stream off), with tokens verified by `verifier`.
    pub async fn with_verifier(env: &Env, verifier: JwtVerifier) -> Self {
        Self::build(env, verifier, false).await
    }

    async fn build(env: &Env, verifier: JwtVerifier, stream: bool) -> Self {
        let table = format!("t-{}", uuid::Uuid::new_v4().simple());
        let store = Store::new(env.dynamodb_client(), table);
        store.create_table().await.expect("create table");
        if !stream {
            let off = aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(false)
                .build()
                .expect("stream specification");
            store
                .client()
                .update_table()
                .table_name(store.table_name())
                .stream_specification(off)
                .send()
                .await
                .expect("turn the stream off");
        }
        let admin = token(&uuid::Uuid::new_v4().to_string(), &["billing_admin"], 600);
        Self {
            state: State::new(store.clone(), verifier, Some(env.payments())).expect("randomness"),
            payments: env.payments(),
            _table: std::sync::Arc::new(TableGuard(store.clone())),
            store,
            admin,
        }
    }

    /// The same table and admin, with handlers whose deletion cascade is `cascade`
    /// (another Stripe, another time budget).
    pub fn with_cascade(&self, cascade: billing::cascade::Cascade) -> Self {
        let mut state = self.state.clone();
        state.cascade = cascade;
        Self {
            state,
            store: self.store.clone(),
            payments: self.payments.clone(),
            admin: self.admin.clone(),
            _table: self._table.clone(),
        }
    }

    /// The tests' Stripe (localstripe).
    pub fn payments(&self) -> &billing::payments::Payments {
        &self.payments
    }

    /// Stripe's webhook endpoint over this table, signed with `secret`, reading
    /// the tests' localstripe.
    pub fn webhooks(&self, secret: &str) -> billing::sync::webhook::Webhooks {
        use billing::sync::signature::{Secrets, WebhookSecrets};
        let secrets = Secrets::parse(&secrecy::SecretString::from(secret)).expect("secret");
        billing::sync::webhook::Webhooks::new(
            self.store.clone(),
            WebhookSecrets::Fixed(secrets),
            self.payments.clone(),
        )
    }

    /// The same table and admin, with handlers (the store and the deletion
    /// cascade) that reach the table through `client` (a fault proxy).
    pub fn through(&self, client: aws_sdk_dynamodb::Client) -> Self {
        let store = Store::new(client, self.store.table_name().to_owned());
        let mut app = self.with_cascade(billing::cascade::Cascade::new(
            store.clone(),
            Some(self.payments.clone()),
        ));
        app.state.store = store;
        app
    }

    /// Seeds fixtures given as JSON (without Stripe objects).
    pub async fn seed(&self, fixtures: Value) {
        self.seed_with(fixtures, false).await;
    }

    async fn seed_with(&self, fixtures: Value, stripe: bool) {
        let fixtures: Fixtures = serde_json::from_value(fixtures).expect("fixtures JSON");
        let payments = stripe.then_some(&self.payments);
        seed(&self.store, payments, &fixtures).await.expect("seed");
    }

    /// A request as an admin.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {}", self.admin);
        self.call(method, path, &[("authorization", auth.as_str())], body)
            .await
    }

    /// `GET` as an admin.
    pub async fn get(&self, path: &str) -> Reply {
        self.admin(Method::GET, path, None).await
    }

    /// Asserts that the customer `id` and its members are not found (404).
    pub async fn assert_customer_not_found(&self, id: &str) {
        assert_eq!(
            self.get(&format!("/customer/{id}")).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            self.get(&format!("/customer/{id}/members")).await.status,
            StatusCode::NOT_FOUND
        );
    }

    /// A request with the given headers; a JSON body gets `Content-Type: application/json`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let (builder, bytes) = request(method, path, headers, body);
        self.raw(builder, bytes).await
    }

    /// A request built by the caller, body as given.
    pub async fn raw(&self, builder: http::request::Builder, body: Vec<u8>) -> Reply {
        let (parts, ()) = builder.body(()).expect("request").into_parts();
        let response = dispatch(&self.state, billing::http::lambda_request(parts, body)).await;
        Reply::from(response)
    }

    /// Writes `item` into the table as it is, around the store (what another
    /// version of the service, or a fault, left there).
    pub async fn put_raw(&self, item: billing::store::table::Item) {
        self.store
            .client()
            .put_item()
            .table_name(self.store.table_name())
            .set_item(Some(item))
            .send()
            .await
            .expect("PutItem");
    }

    /// Deletes these items (their `PK` and `SK`) from the table, around the store.
    pub async fn delete_raw(&self, items: impl IntoIterator<Item = billing::store::table::Item>) {
        for item in items {
            let key = ["PK", "SK"].map(|k| (k.to_owned(), item[k].clone())).into();
            self.store
                .client()
                .delete_item()
                .table_name(self.store.table_name())
                .set_key(Some(key))
                .send()
                .await
                .expect("DeleteItem");
        }
    }
}

impl From<http::Response<lambda_http::Body>> for Reply {
    fn from(response: http::Response<lambda_http::Body>) -> Self {
        let (parts, body) = response.into_parts();
        let json = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).expect("JSON body")
        };
        Self {
            status: parts.status,
            headers: parts.headers,
            json,
        }
    }
}

impl Reply {
    /// Asserts an error in the platform convention and returns its code.
    pub fn error_code(&self) -> &str {
        let error = &self.json["error"];
        let id = error["error_id"].as_str().expect("error_id");
        assert_eq!(
            self.headers["x-error-id"], id,
            "x-error-id matches the body"
        );
        assert_eq!(
            self.headers["x-error"],
            error["message"].as_str().expect("message")
        );
        assert_eq!(self.headers["content-type"], "application/json");
        let severity = match self.status.as_u16() {
            400..=499 => "WARNING",
            500 | 501 => "ERROR",
            _ => "CRITICAL",
        };
        assert_eq!(error["type"], severity);
        error["code"].as_str().expect("code")
    }
}

/// A request to the API's `path` with the given headers, and its body: a JSON
/// body gets `Content-Type: application/json`.
pub fn request(
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (http::request::Builder, Vec<u8>) {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("{API}{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let bytes = match body {
        Some(json) => {
            builder = builder.header("content-type", "application/json");
            serde_json::to_vec(&json).expect("serialize body")
        }
        None => Vec::new(),
    };
    (builder, bytes)
}

/// The size (`actions`) of every transaction committed while `work` ran.
pub async fn committed_transactions<F: std::future::Future>(work: F) -> (F::Output, Vec<u64>) {
    let logs = billing::telemetry::LogLines::default();
    let out = logs.scope(work).await;
    let sizes = logs
        .lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| {
            v["fields"]["message"] == "transaction done" || v["message"] == "transaction done"
        })
        .filter_map(|v| {
            let span = v["span"].clone();
            (span["outcome"] == "ok")
                .then(|| span["actions"].as_u64())
                .flatten()
        })
        .collect();
    (out, sizes)
}

/// An `Authorization` header's value: a bearer token for `sub` with `roles`,
/// valid for a minute.
pub fn bearer(sub: &str, roles: &[&str]) -> String {
    format!("Bearer {}", token(sub, roles, 60))
}

/// A token signed with the development key.
pub fn token(sub: &str, roles: &[&str], expires_in: u64) -> String {
    let roles = roles.iter().map(|r| (*r).to_owned()).collect();
    sign(
        PRIVATE_KEY.as_bytes(),
        &jwt_settings(),
        sub,
        roles,
        expires_in,
    )
    .expect("sign token")
}

/// A customer seeded by [`TestApp::customer`].
#[derive(Debug, Clone)]
pub struct Seeded {
    /// Customer id.
    pub id: String,
    /// Owner user id.
    pub owner: String,
    /// Non-owner members, in the order they joined.
    pub members: Vec<String>,
    /// The Stripe customer (`cus_...`), for [`TestApp::customer_with_stripe`].
    pub stripe_id: String,
}

/// What [`TestApp::customer`] creates.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Tier name.
    pub tier: &'static str,
    /// Subscription status.
    pub status: &'static str,
    /// `createdAt`.
    pub created_at: String,
    /// Non-owner members to add (role `user`, the first `admin`).
    pub members: usize,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            tier: "pro",
            status: "active",
            created_at: "2026-02-03T09:14:22Z".into(),
            members: 0,
        }
    }
}

impl Spec {
    /// The default customer with `members` members besides its owner.
    pub fn with_members(members: usize) -> Self {
        Self {
            members,
            ..Self::default()
        }
    }
}

impl TestApp {
    /// Begins the deletion of `customer` (as a test), leaving it `deleting`.
    pub async fn begin_deletion(&self, customer: &str) {
        self.store
            .begin_deletion(
                &billing::domain::CustomerId::parse(customer).expect("customer id"),
                &crate::by_test(),
            )
            .await
            .expect("begin the deletion");
    }

    /// Seeds one customer with an owner and `spec.members` more members.
    pub async fn customer(&self, spec: Spec) -> Seeded {
        self.seeded(spec, false).await
    }

    /// Like [`TestApp::customer`], with a Stripe customer and subscription in localstripe.
    pub async fn customer_with_stripe(&self, spec: Spec) -> Seeded {
        let mut seeded = self.seeded(spec, true).await;
        let id = billing::domain::CustomerId::parse(&seeded.id).expect("id");
        let stored = self
            .store
            .find_customer(&id)
            .await
            .expect("read")
            .expect("seeded");
        seeded.stripe_id = stored
            .stripe_customer_id
            .expect("seeding created a Stripe customer");
        seeded
    }

    async fn seeded(&self, spec: Spec, stripe: bool) -> Seeded {
        let id = uuid::Uuid::new_v4().to_string();
        let owner = uuid::Uuid::new_v4().to_string();
        let members: Vec<String> = (0..spec.members)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect();
        let mut listed = vec![serde_json::json!({"userID": owner, "role": "owner"})];
        listed.extend(members.iter().enumerate().map(|(i, m)| {
            serde_json::json!({"userID": m, "role": if i == 0 { "admin" } else { "user" }})
        }));
        self.seed_with(
            serde_json::json!({"customers": [{
                "id": id, "name": format!("Customer {id}"), "tierName": spec.tier,
                "tierID": "e1f2a3b4-5633-4b16-bbf0-5ca22ef8ea2e", "subscriptionStatus": spec.status,
                "createdAt": spec.created_at, "ownerUserID": owner, "members": listed,
            }]}),
            stripe,
        )
        .await;
        Seeded {
            id,
            owner,
            members,
            stripe_id: String::new(),
        }
    }
}
