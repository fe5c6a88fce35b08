//! Lambda for the platform's `user.deleted` event: deletes the customer a user
//! owned, or removes the user's membership.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    billing::runtime::run_user_deleted().await
}
