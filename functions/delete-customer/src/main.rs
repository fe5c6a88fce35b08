//! Lambda for `DELETE /customer/{customerID}`: runs the deletion cascade.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::runtime::run_endpoint(billing::api::Endpoint::DeleteCustomer).await
}
