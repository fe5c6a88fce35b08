//! Lambda on the table's DynamoDB stream: finishes deletion cascades whose request
//! died and publishes `customer.deleted` when a customer record is removed.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    billing::runtime::run_stream_consumer().await
}
