//! The audit trail (`GET /customer/{customerID}/audit`), the membership events
//! the stream consumer publishes from it, and the writes of each audited change.

use std::collections::{BTreeMap, BTreeSet};

use billing::auth::issue_api_key;
use billing::cleanup::{Cleanup, UserCleanup};
use billing::domain::CustomerId;
use billing::events::Publisher;
use billing_tests::app::{Spec, TestApp, bearer, committed_transactions, request, token};
use billing_tests::sinks::{EventSink, StreamConsumer, settle};
use billing_tests::{Env, Reply};
use http::{Method, StatusCode};
use lambda_http::RequestExt;
use serde_json::{Value, json};

use crate::TestFn;

mod paging;
mod trail;
mod writes;

use paging::*;
use trail::*;
use writes::*;

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        every_change_is_audited_newest_first_by_whom_and_for_which_request,
        a_failed_change_leaves_no_audit_entry,
        api_key_and_platform_changes_name_their_actor,
        the_audit_trail_pages_like_other_listings,
        a_bulk_add_audits_each_member_once,
        membership_events_are_published_once_per_change,
        each_audited_change_is_one_transaction_of_known_size,
        a_deep_audit_page_at_10k_entries_reads_only_its_page,
        audit_numbers_stay_dense_when_changes_race,
        entries_from_before_numbering_list_below_the_numbered_ones,
    ]
}

/// The sorted keys of a JSON object.
pub fn keys_of(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v
        .as_object()
        .expect("a JSON object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// Every audit entry of a customer, newest first, through cursor pages of 100.
pub async fn audit_entries(app: &TestApp, customer: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut path = format!("/customer/{customer}/audit?limit=100");
    for _ in 0..100 {
        let reply = Box::pin(app.get(&path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
        entries.extend(reply.json["events"].as_array().expect("events").clone());
        match reply.json["next"].as_str() {
            Some(next) => path = format!("/customer/{customer}/audit?limit=100&cursor={next}"),
            None => {
                assert_eq!(
                    reply.json["items"],
                    json!(entries.len()),
                    "items counts them all"
                );
                return entries;
            }
        }
    }
    panic!("more than 100 pages of audit entries");
}

/// A caller with credentials of its own: a token's subject, or an API key.
pub struct Who {
    /// The token's subject, or the user the API key acts as.
    pub subject: String,
    /// The API key id (`ak_...`), for an API-key caller.
    pub key_id: Option<String>,
    headers: Vec<(&'static str, String)>,
}

impl Who {
    /// A `billing_admin` with a bearer token for `subject`.
    pub fn user(subject: &str) -> Self {
        Self {
            subject: subject.to_owned(),
            key_id: None,
            headers: vec![(
                "authorization",
                format!("Bearer {}", token(subject, &["billing_admin"], 600)),
            )],
        }
    }

    /// A `billing_admin` API key issued to `user`, stored in `app`'s table.
    pub async fn api_key(app: &TestApp, user: &str) -> Self {
        let key = issue_api_key(user, vec!["billing_admin".into()], None).expect("issue key");
        app.store
            .put_api_key(&key.key_id, &key.record)
            .await
            .expect("store key");
        Self {
            subject: user.to_owned(),
            key_id: Some(key.key_id.clone()),
            headers: vec![("api-key", key.key_id), ("api-secret", key.secret)],
        }
    }

    /// A request with a fresh Lambda request id.
    pub async fn send(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let id = uuid::Uuid::new_v4().to_string();
        self.send_as(app, &id, method, path, body, extra).await
    }

    /// `request` with a fresh Lambda request id and no other headers.
    pub async fn call(&self, app: &TestApp, (method, path, body): Request) -> Reply {
        self.send(app, method, &path, body, &[]).await
    }

    /// A request as Lambda delivers it with request id `request_id`; a JSON body
    /// gets `Content-Type: application/json`.
    pub async fn send_as(
        &self,
        app: &TestApp,
        request_id: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .chain(extra.iter().copied())
            .collect();
        let (builder, bytes) = request(method, path, &headers, body);
        let (parts, ()) = builder.body(()).expect("request").into_parts();
        let mut context = lambda_http::Context::default();
        context.request_id = request_id.to_owned();
        let req = billing::http::lambda_request(parts, bytes).with_lambda_context(context);
        // Boxed: the handlers' future is deep enough that a few more async
        // layers overflow the compiler's layout query depth (under clippy).
        Reply::from(Box::pin(billing::api::dispatch(&app.state, req)).await)
    }

    /// This caller as an audit entry's (or event's) `actor`.
    pub fn actor(&self) -> Value {
        match &self.key_id {
            Some(key) => json!({"type": "api_key", "keyID": key, "userID": self.subject}),
            None => json!({"type": "user", "subject": self.subject}),
        }
    }
}

/// A request: its method, path and JSON body.
pub type Request = (Method, String, Option<Value>);

/// Adds `user` to `customer` with `role`.
pub fn add_request(customer: &str, user: &str, role: Value) -> Request {
    (
        Method::POST,
        format!("/customer/{customer}/member"),
        Some(json!({"userID": user, "role": role})),
    )
}

/// Changes the role of `user` in `customer` to `role`.
pub fn role_request(customer: &str, user: &str, role: Value) -> Request {
    (
        Method::PATCH,
        format!("/customer/{customer}/member/{user}"),
        Some(json!({"role": role})),
    )
}

/// Removes `user` from `customer`.
pub fn remove_request(customer: &str, user: &str) -> Request {
    (
        Method::DELETE,
        format!("/customer/{customer}/member/{user}"),
        None,
    )
}

/// Deletes `customer`.
pub fn delete_request(customer: &str) -> Request {
    (Method::DELETE, format!("/customer/{customer}"), None)
}
