//! Scheduled Lambda: how many customers are being deleted and how long the oldest
//! has been, as the `DeletingCustomers` and `OldestDeletionAgeSeconds` metrics.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    billing::runtime::run_deletion_monitor().await
}
