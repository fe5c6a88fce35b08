//! Lambda for the platform's `customer.created` and `customer.updated` events:
//! creates a customer with its owner's membership, or changes its name and tier.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    billing::runtime::run_platform_customer().await
}
