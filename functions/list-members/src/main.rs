//! Lambda for `GET /customer/{customerID}/members`: lists a customer's members.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::api::run_lambda(billing::http::Endpoint::ListMembers).await
}
