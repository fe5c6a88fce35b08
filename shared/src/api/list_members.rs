use http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::State;
use super::views::{MemberList, MemberView};
use crate::domain::CustomerId;
use crate::error::ApiError;
use crate::http::{Query, json, path_param};

/// `GET /customer/{customerID}/members?page&limit&cursor`
pub async fn run(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    let id = CustomerId::parse(&path_param(req, "customerID")?)?;
    let query = Query::of(req);
    let scope = format!("MEMBERS#{id}");
    let cursors = state.cursors.current().await;
    let (at, limit) = cursors.page_at(&query, &scope)?;
    let found = state.store.list_members(&id, at).await?;
    let body = MemberList {
        members: found.items.iter().map(MemberView::from).collect(),
        page: cursors.page_info(&scope, &found, limit),
    };
    Ok(json(StatusCode::OK, &body))
}
