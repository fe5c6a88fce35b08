//! Lambda for `PATCH /customer/{customerID}/member/{userID}`: changes a member's role.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::api::run_lambda(billing::http::Endpoint::ChangeMemberRole).await
}
