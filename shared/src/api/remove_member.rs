use lambda_http::{Body, Request, Response};

use super::State;
use crate::domain::audit::Origin;
use crate::domain::{CustomerId, UserId};
use crate::error::ApiError;
use crate::http::{no_content, path_param};

/// `DELETE /customer/{customerID}/member/{userID}`
pub async fn run(
    state: &State,
    req: &Request,
    origin: &Origin,
) -> Result<Response<Body>, ApiError> {
    let id = CustomerId::parse(&path_param(req, "customerID")?)?;
    let user = UserId::parse(&path_param(req, "userID")?)?;
    state.store.remove_member(&id, &user, origin).await?;
    Ok(no_content())
}
