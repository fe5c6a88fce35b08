//! Lambda for `GET /customer/{customerID}/members`: lists a customer's members.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::runtime::run_endpoint(billing::api::Endpoint::ListMembers).await
}
