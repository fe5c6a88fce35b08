//! Lambda for the platform's `customer.created` and `customer.updated` events:
//! creates a customer with its owner's membership, or changes its name and tier.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    billing::sync::platform::run_lambda().await
}
