//! Lambda for `GET /console` and `GET /console/{proxy+}`: the operators' console.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    billing::telemetry::init();
    let settings = console::Settings::from_env()?;
    let settings = &settings;
    billing::runtime::serve_http(|req| {
        let response = console::respond(settings, req.uri().path());
        async move { response }
    })
    .await
}
