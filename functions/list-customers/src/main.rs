//! Lambda for `GET /customers`: lists customers with filters and totals.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::api::run_lambda(billing::http::Endpoint::ListCustomers).await
}
