//! The local HTTP server: routes every request into the Lambdas' own handlers
//! (the admin endpoints, the console and, when its secret is set, the Stripe
//! webhook).

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State as AxumState;
use billing::api::{State, dispatch};
use billing::http::ApiError;
use billing::sync::webhook::{self, Webhooks};
use lambda_http::Body;
use tokio::sync::Notify;

/// Largest body read from a socket; the handlers apply their own, smaller limit.
const READ_LIMIT: usize = 1024 * 1024;

/// What the server routes to.
struct Handlers {
    admin: State,
    hooks: Option<Webhooks>,
    console: console::Settings,
}

/// How long requests in flight may go on once Ctrl-C or SIGTERM arrived.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Serves on `127.0.0.1:port` until Ctrl-C or SIGTERM, then lets the requests
/// in flight finish for up to [`STOP_GRACE`].
pub async fn serve(
    admin: State,
    hooks: Option<Webhooks>,
    console: console::Settings,
    port: u16,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(Arc::new(Handlers {
            admin,
            hooks,
            console,
        }));
    tracing::info!(address = %listener.local_addr()?, "listening");
    let stopping = Arc::new(Notify::new());
    let signalled = Arc::clone(&stopping);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown().await;
        signalled.notify_one();
    });
    tokio::select! {
        served = server.into_future() => served,
        () = async {
            stopping.notified().await;
            tokio::time::sleep(STOP_GRACE).await;
        } => {
            tracing::warn!("requests still in flight after the grace period were cut off");
            Ok(())
        }
    }
}

async fn handle(
    AxumState(handlers): AxumState<Arc<Handlers>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let response = if console::serves(&parts.method, parts.uri.path()) {
        console::respond(&handlers.console, parts.uri.path())
    } else {
        api(&handlers, parts, body).await
    };
    let (parts, body) = response.into_parts();
    let body = match body {
        Body::Text(text) => axum::body::Body::from(text),
        Body::Binary(bytes) => axum::body::Body::from(bytes),
        _ => axum::body::Body::empty(),
    };
    axum::response::Response::from_parts(parts, body)
}

/// The API's answer: the webhook's or an admin endpoint's.
async fn api(
    handlers: &Handlers,
    parts: axum::http::request::Parts,
    body: axum::body::Body,
) -> lambda_http::Response<Body> {
    match axum::body::to_bytes(body, READ_LIMIT).await {
        Ok(bytes) => {
            let req = billing::http::lambda_request(parts, bytes.to_vec());
            match &handlers.hooks {
                Some(hooks) if req.uri().path() == webhook::PATH => hooks.handle(&req).await,
                _ => dispatch(&handlers.admin, req).await,
            }
        }
        Err(_) => ApiError::Body {
            code: "body_too_large",
            message: "the body exceeds 16 KiB",
        }
        .into_response(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
