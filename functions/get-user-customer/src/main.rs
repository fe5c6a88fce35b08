//! Lambda for `GET /user/{userID}/customer`: the customer a user belongs to.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::runtime::run_endpoint(billing::api::Endpoint::GetUserCustomer).await
}
