//! Lambda for `POST /api/billing/v1/webhooks/stripe`: Stripe's subscription and
//! customer events, verified by their signature, answered with Stripe's current state.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::runtime::run_webhook().await
}
