//! Lambda for `DELETE /customer/{customerID}/member/{userID}`: removes a member.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::api::run_lambda(billing::http::Endpoint::RemoveMember).await
}
