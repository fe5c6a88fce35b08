//! Cold start baseline: a bare `lambda_http` function that reads one customer
//! record with one DynamoDB `GetItem` (the SDK's defaults: `aws_config` default
//! chain and HTTPS client, no timeouts, no tracing, no authentication) and
//! answers 200 with it, 404 without it. Not deployed; measured by `make bench`
//! next to the functions (`TABLE_NAME`; the key from the `customerID` path
//! parameter, as `get-customer` reads it).

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{Body, Error, Request, RequestExt, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = aws_config::load_from_env().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = std::env::var("TABLE_NAME")?;
    let (client, table) = (&client, table.as_str());
    lambda_http::run(service_fn(move |req: Request| async move {
        let id = req
            .path_parameters_ref()
            .and_then(|p| p.first("customerID"))
            .unwrap_or_default()
            .to_lowercase();
        let out = client
            .get_item()
            .table_name(table)
            .key("PK", AttributeValue::S(format!("CUSTOMER#{id}")))
            .key("SK", AttributeValue::S("CUSTOMER".to_owned()))
            .send()
            .await?;
        let (status, body) = match out.item {
            Some(item) => (
                200,
                serde_json::json!({ "attributes": item.len() }).to_string(),
            ),
            None => (404, r#"{"error":"not found"}"#.to_owned()),
        };
        Ok::<_, Error>(
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(body))?,
        )
    }))
    .await
}
