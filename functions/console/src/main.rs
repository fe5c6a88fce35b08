//! Lambda for `GET /console` and `GET /console/{proxy+}`: the operators' console.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::telemetry::init();
    let settings = console::Settings::from_env()?;
    lambda_http::run(lambda_http::service_fn(|req: lambda_http::Request| {
        let response = console::respond(&settings, req.uri().path());
        async move { Ok::<_, std::convert::Infallible>(response) }
    }))
    .await
}
