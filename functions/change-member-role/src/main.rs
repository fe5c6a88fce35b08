//! Lambda for `PATCH /customer/{customerID}/member/{userID}`: changes a member's role.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::runtime::run_endpoint(billing::api::Endpoint::ChangeMemberRole).await
}
