//! Stripe's lists, read whole by the reconciliation and the import: every
//! customer, every subscription, one customer and its subscriptions, each call
//! bounded by [`READ_BUDGET`].

use std::collections::HashMap;
use std::time::Duration;

use stripe::StripeRequest;
use stripe_client_core::{RequestBuilder, StripeMethod};

use super::client::{Payments, PaymentsError, checked};
use crate::deadline::Deadline;
use crate::domain::StripeIdKind;

/// Objects per page of a Stripe list: Stripe's maximum.
pub const LIST_PAGE: u32 = 100;

/// Time one list or retrieve call may take, all attempts and backoff included
/// ([`super::ATTEMPTS`] of [`super::ATTEMPT_TIMEOUT`] fit).
const READ_BUDGET: Duration = Duration::from_secs(20);

/// A Stripe customer as listed: only what reconciliation and imports read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeCustomer {
    /// `cus_...`.
    pub id: String,
    /// Its name, when it has one.
    pub name: Option<String>,
    /// Its metadata (string values only).
    pub metadata: HashMap<String, String>,
    /// Whether Stripe reports it deleted.
    pub deleted: bool,
    /// When it was created (unix seconds; 0 when not given).
    pub created: i64,
}

impl StripeCustomer {
    /// A Stripe customer known only by its id (Stripe just listed its
    /// subscriptions): no name, no metadata, not deleted.
    pub fn known(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            name: None,
            metadata: HashMap::new(),
            deleted: false,
            created: 0,
        }
    }

    /// Reads the fields kept from a customer object; `None` without an `id`.
    pub fn from_json(object: &serde_json::Value) -> Option<Self> {
        let id = object.get("id")?.as_str()?.to_owned();
        let metadata = object
            .get("metadata")
            .and_then(serde_json::Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            id,
            name: object
                .get("name")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            metadata,
            deleted: object
                .get("deleted")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
            created: object
                .get("created")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0),
        })
    }
}

/// One page of a Stripe list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage<T> {
    /// The objects, in Stripe's order.
    pub data: Vec<T>,
    /// The id to continue after (`starting_after`) when more pages follow.
    pub next: Option<String>,
}

impl Payments {
    /// One page of every Stripe customer (`GET /v1/customers`), up to
    /// [`LIST_PAGE`], after the customer `after`; bounded by [`READ_BUDGET`].
    pub async fn customers_page(
        &self,
        after: Option<&str>,
    ) -> Result<ListPage<StripeCustomer>, PaymentsError> {
        let page = self
            .list("/customers", None, after, "list customers")
            .await?;
        Ok(ListPage {
            data: page
                .data
                .iter()
                .filter_map(StripeCustomer::from_json)
                .collect(),
            next: page.next,
        })
    }

    /// One page of every subscription in any status (`GET /v1/subscriptions?status=all`),
    /// up to [`LIST_PAGE`], after the subscription `after`, as raw objects
    /// (read them with `sync::stripe_events::subscription`).
    pub async fn subscriptions_page(
        &self,
        after: Option<&str>,
    ) -> Result<ListPage<serde_json::Value>, PaymentsError> {
        self.list("/subscriptions", Some("all"), after, "list subscriptions")
            .await
    }

    /// Every subscription in any status, all pages, as raw objects.
    pub async fn all_subscriptions(&self) -> Result<Vec<serde_json::Value>, PaymentsError> {
        every_page(|after| async move { self.subscriptions_page(after.as_deref()).await }).await
    }

    /// One Stripe customer (`GET /v1/customers/{id}`); `None` when Stripe
    /// does not know it. A deleted customer comes back with `deleted`.
    pub async fn stripe_customer(&self, id: &str) -> Result<Option<StripeCustomer>, PaymentsError> {
        // Anything but a Stripe customer id names no customer (and must not
        // change the path).
        if StripeIdKind::Customer.check(id).is_err() {
            return Ok(None);
        }
        let request = Retrieve {
            path: format!("/customers/{id}"),
        };
        let found = self
            .send(
                &request,
                Deadline::after(READ_BUDGET),
                "retrieve customer",
                &mut 0,
            )
            .await?;
        Ok(found.map(json).as_ref().and_then(StripeCustomer::from_json))
    }

    /// Every subscription of the Stripe customer `customer` in any status
    /// (`GET /v1/subscriptions?customer=…&status=all`), as raw objects: one
    /// call for up to [`LIST_PAGE`] of them (a customer has a handful), one
    /// more per further page. `None` when Stripe does not know the customer,
    /// or it is deleted.
    pub async fn subscriptions_of(
        &self,
        customer: &str,
    ) -> Result<Option<Vec<serde_json::Value>>, PaymentsError> {
        let operation = "list customer subscriptions";
        let customer = checked(StripeIdKind::Customer, customer, operation)?;
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let query = ListQuery {
                limit: LIST_PAGE,
                starting_after: after.as_deref(),
                status: Some("all"),
                customer: Some(customer),
            };
            let Some(page) = self.list_query("/subscriptions", query, operation).await? else {
                return Ok(None);
            };
            all.extend(page.data);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(Some(all)),
            }
        }
    }

    /// One page of a list at `path`, as JSON objects.
    async fn list(
        &self,
        path: &'static str,
        status: Option<&'static str>,
        after: Option<&str>,
        operation: &'static str,
    ) -> Result<ListPage<serde_json::Value>, PaymentsError> {
        let query = ListQuery {
            limit: LIST_PAGE,
            starting_after: after,
            status,
            customer: None,
        };
        // Boxed: the walks over every page would otherwise need a higher
        // `recursion_limit` to lay out their futures.
        Ok(Box::pin(self.list_query(path, query, operation))
            .await?
            .unwrap_or(ListPage {
                data: Vec::new(),
                next: None,
            }))
    }

    /// One page of the list at `path` that `query` asks for; `None` when Stripe
    /// answers that what it filters on is missing.
    async fn list_query(
        &self,
        path: &'static str,
        query: ListQuery<'_>,
        operation: &'static str,
    ) -> Result<Option<ListPage<serde_json::Value>>, PaymentsError> {
        let request = List { path, query };
        let Some(page) = self
            .send(&request, Deadline::after(READ_BUDGET), operation, &mut 0)
            .await?
        else {
            return Ok(None);
        };
        let data: Vec<serde_json::Value> = page.data.into_iter().map(json).collect();
        let next = match page.has_more {
            true => data
                .last()
                .and_then(|o| o.get("id"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            false => None,
        };
        Ok(Some(ListPage { data, next }))
    }
}

/// The objects of every page `page` reads, from the first (`None`) on.
async fn every_page<T, F, Fut>(mut page: F) -> Result<Vec<T>, PaymentsError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<ListPage<T>, PaymentsError>>,
{
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let read = page(after.take()).await?;
        all.extend(read.data);
        match read.next {
            Some(next) => after = Some(next),
            None => return Ok(all),
        }
    }
}

/// A JSON value as `serde_json` reads it (async-stripe's requests decode with
/// miniserde).
fn json(value: miniserde::json::Value) -> serde_json::Value {
    serde_json::from_str(&miniserde::json::to_string(&value)).unwrap_or(serde_json::Value::Null)
}

/// `GET` a list: `limit`, `starting_after` and, for subscriptions, `status`.
struct List<'a> {
    path: &'static str,
    query: ListQuery<'a>,
}

#[derive(serde::Serialize)]
struct ListQuery<'a> {
    limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    starting_after: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer: Option<&'a str>,
}

/// A list page, its objects left as JSON.
#[derive(miniserde::Deserialize)]
struct RawList {
    data: Vec<miniserde::json::Value>,
    has_more: bool,
}

impl StripeRequest for List<'_> {
    type Output = RawList;

    fn build(&self) -> RequestBuilder {
        RequestBuilder::new(StripeMethod::Get, self.path).query(&self.query)
    }
}

/// `GET` one object, left as JSON.
struct Retrieve {
    path: String,
}

impl StripeRequest for Retrieve {
    type Output = miniserde::json::Value;

    fn build(&self) -> RequestBuilder {
        RequestBuilder::new(StripeMethod::Get, self.path.clone())
    }
}
