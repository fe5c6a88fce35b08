//! Scheduled Lambda: compares every customer with Stripe, reports the drift
//! and, with `RECONCILE_REPAIR=true`, repairs it.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    billing::runtime::run_reconcile().await
}
