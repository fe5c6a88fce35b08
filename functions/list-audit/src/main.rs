//! Lambda for `GET /customer/{customerID}/audit`: a customer's audit trail.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::api::run_lambda(billing::http::Endpoint::ListAudit).await
}
