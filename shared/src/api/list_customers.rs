use http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::State;
use super::views::{CustomerList, CustomerSummary};
use crate::domain::{PageRequest, SubscriptionStatus, TierName, pages};
use crate::error::ApiError;
use crate::http::{Query, json};
use crate::store::Listing;

/// `GET /customers?page&limit&tierName&status`
pub async fn run(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    let query = Query::of(req);
    let page = PageRequest::parse(query.single("page")?, query.single("limit")?)?;
    let tier = query.single("tierName")?.map(TierName::parse).transpose()?;
    let status = query
        .single("status")?
        .map(SubscriptionStatus::parse)
        .transpose()?;
    let found = state
        .store
        .list_customers(&Listing::for_filters(tier, status), page)
        .await?;
    let body = CustomerList {
        customers: found.items.iter().map(CustomerSummary::from).collect(),
        items: found.total,
        pages: pages(found.total, page.limit),
    };
    Ok(json(StatusCode::OK, &body))
}
