//! Cold start baseline: the smallest `lambda_http` function, answering 200 with
//! a fixed body. Not deployed; measured by `make bench` next to the functions.

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_: Request| async {
        Ok::<_, Error>(
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from(r#"{"hello":"world"}"#))?,
        )
    }))
    .await
}
