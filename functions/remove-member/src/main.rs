//! Lambda for `DELETE /customer/{customerID}/member/{userID}`: removes a member.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::runtime::run_endpoint(billing::api::Endpoint::RemoveMember).await
}
