//! Lambda for `POST /customer/{customerID}/member`: adds a member.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::runtime::run_endpoint(billing::api::Endpoint::AddMember).await
}
