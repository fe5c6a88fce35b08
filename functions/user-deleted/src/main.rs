//! Lambda for the platform's `user.deleted` event: deletes the customer a user
//! owned, or removes the user's membership.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    billing::cleanup::run_user_deleted_lambda().await
}
