//! Lambda for `DELETE /customer/{customerID}`: runs the deletion cascade.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::api::run_lambda(billing::http::Endpoint::DeleteCustomer).await
}
