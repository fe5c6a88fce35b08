//! Lambda for `GET /customer/{customerID}`: one customer's full record.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::api::run_lambda(billing::http::Endpoint::GetCustomer).await
}
