use http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::State;
use super::views::{CustomerList, CustomerSummary};
use crate::domain::{SubscriptionStatus, TierName};
use crate::error::ApiError;
use crate::http::{Query, json};
use crate::store::Listing;

/// `GET /customers?page&limit&tierName&status&cursor`
pub async fn run(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    let query = Query::of(req);
    let tier = query.single("tierName")?.map(TierName::parse).transpose()?;
    let status = query
        .single("status")?
        .map(SubscriptionStatus::parse)
        .transpose()?;
    let listing = Listing::for_filters(tier, status);
    let scope = listing.key();
    let cursors = state.cursors.current().await;
    let (at, limit) = cursors.page_at(&query, &scope)?;
    let found = state.store.list_customers(&listing, at).await?;
    let body = CustomerList {
        customers: found.items.iter().map(CustomerSummary::from).collect(),
        page: cursors.page_info(&scope, &found, limit),
    };
    Ok(json(StatusCode::OK, &body))
}
