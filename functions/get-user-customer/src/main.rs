//! Lambda for `GET /user/{userID}/customer`: the customer a user belongs to.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::api::run_lambda(billing::http::Endpoint::GetUserCustomer).await
}
