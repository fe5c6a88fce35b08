//! The three listings, one way: the page asked for (a number, or a sealed
//! cursor of this listing), one read of the store, the page's items and its
//! `page` object.

use std::future::Future;

use http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::views::{
    AuditList, AuditView, CustomerList, CustomerSummary, MemberList, MemberView, PageInfo,
};
use super::{Reply, State, customer_id};
use crate::domain::{SubscriptionStatus, TierName};
use crate::http::{Query, json};
use crate::store::{Listing, Page, PageAt, StoreError};

/// `GET /customers?page&limit&tierName&status&cursor`
pub async fn customers(state: &State, req: &Request) -> Reply {
    let query = Query::of(req);
    let tier = query.single("tierName")?.map(TierName::parse).transpose()?;
    let status = query
        .single("status")?
        .map(SubscriptionStatus::parse)
        .transpose()?;
    let listing = Listing::for_filters(tier, status);
    let read = |at| state.store.list_customers(&listing, at);
    list(state, &query, &listing.key(), read, |found, page| {
        let body = CustomerList {
            customers: found.iter().map(CustomerSummary::from).collect(),
            page,
        };
        json(StatusCode::OK, &body)
    })
    .await
}

/// `GET /customer/{customerID}/members?page&limit&cursor`
pub async fn members(state: &State, req: &Request) -> Reply {
    let id = customer_id(req)?;
    let read = |at| state.store.list_members(&id, at);
    list(
        state,
        &Query::of(req),
        &format!("MEMBERS#{id}"),
        read,
        |found, page| {
            let body = MemberList {
                members: found.iter().map(MemberView::from).collect(),
                page,
            };
            json(StatusCode::OK, &body)
        },
    )
    .await
}

/// `GET /customer/{customerID}/audit?page&limit&cursor`: newest first, also
/// for a deleted customer.
pub async fn audit(state: &State, req: &Request) -> Reply {
    let id = customer_id(req)?;
    let read = |at| state.store.list_audit(&id, at);
    list(
        state,
        &Query::of(req),
        &format!("AUDIT#{id}"),
        read,
        |found, page| {
            let body = AuditList {
                events: found.iter().map(AuditView::from).collect(),
                page,
            };
            json(StatusCode::OK, &body)
        },
    )
    .await
}

/// One page of the listing `scope` (cursors are sealed to it): where `query`
/// asks, read by `read`, answered as `answer` makes it of the items found
/// and the page object.
async fn list<T, Read, Found, Answer>(
    state: &State,
    query: &Query,
    scope: &str,
    read: Read,
    answer: Answer,
) -> Reply
where
    Read: FnOnce(PageAt) -> Found,
    Found: Future<Output = Result<Page<T>, StoreError>>,
    Answer: FnOnce(&[T], PageInfo) -> Response<Body>,
{
    let cursors = state.cursors.current().await;
    let (at, limit) = cursors.page_at(query, scope)?;
    let found = read(at).await?;
    let page = cursors.page_info(scope, &found, limit);
    Ok(answer(&found.items, page))
}
