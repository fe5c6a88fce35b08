//! Lambda for `GET /customer/{customerID}/audit`: a customer's audit trail.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::runtime::run_endpoint(billing::api::Endpoint::ListAudit).await
}
