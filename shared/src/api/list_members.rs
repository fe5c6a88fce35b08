use http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::State;
use super::views::{MemberList, MemberView};
use crate::domain::{CustomerId, PageRequest, pages};
use crate::error::ApiError;
use crate::http::{Query, json, path_param};

/// `GET /customer/{customerID}/members?page&limit`
pub async fn run(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    let id = CustomerId::parse(&path_param(req, "customerID")?)?;
    let query = Query::of(req);
    let page = PageRequest::parse(query.single("page")?, query.single("limit")?)?;
    let found = state.store.list_members(&id, page).await?;
    let body = MemberList {
        members: found.items.iter().map(MemberView::from).collect(),
        items: found.total,
        pages: pages(found.total, page.limit),
    };
    Ok(json(StatusCode::OK, &body))
}
