//! Lambda for `GET /customer/{customerID}`: one customer's full record.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::runtime::run_endpoint(billing::api::Endpoint::GetCustomer).await
}
