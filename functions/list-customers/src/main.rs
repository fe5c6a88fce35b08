//! Lambda for `GET /customers`: lists customers with filters and totals.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::runtime::run_endpoint(billing::api::Endpoint::ListCustomers).await
}
