//! The `main` of every API endpoint's function: the package's name is the
//! function's, and the route table (`billing::api::ROUTES`) says which endpoint
//! it serves. Each endpoint's `functions/<name>/Cargo.toml` builds this file.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::runtime::run_function(env!("CARGO_PKG_NAME")).await
}
