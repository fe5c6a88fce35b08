//! Lambda for `POST /customer/{customerID}/member`: adds a member.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::api::run_lambda(billing::http::Endpoint::AddMember).await
}
