//! Lambda behind API Gateway's `$default` route: 404 and 405 in the error convention.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::runtime::run_route_not_found().await
}
