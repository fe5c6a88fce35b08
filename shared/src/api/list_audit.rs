use http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::State;
use super::views::{AuditList, AuditView};
use crate::domain::CustomerId;
use crate::error::ApiError;
use crate::http::{Query, json, path_param};

/// `GET /customer/{customerID}/audit?page&limit&cursor`: newest first, also
/// for a deleted customer.
pub async fn run(state: &State, req: &Request) -> Result<Response<Body>, ApiError> {
    let id = CustomerId::parse(&path_param(req, "customerID")?)?;
    let query = Query::of(req);
    let scope = format!("AUDIT#{id}");
    let cursors = state.cursors.current().await;
    let (at, limit) = cursors.page_at(&query, &scope)?;
    let found = state.store.list_audit(&id, at).await?;
    let body = AuditList {
        events: found.items.iter().map(AuditView::from).collect(),
        page: cursors.page_info(&scope, &found, limit),
    };
    Ok(json(StatusCode::OK, &body))
}
