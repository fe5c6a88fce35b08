//! Table 4: cold start of a function binary, under a tiny Lambda Runtime API
//! emulator on loopback.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use billing_tests::app::{PUBLIC_KEY, jwt_settings, token};
use billing_tests::servers::repo_root;
use tokio::sync::mpsc;

use crate::harness::Result;
use crate::report::{Latencies, Table};

/// The function measured.
const FUNCTION: &str = "list-customers";
/// Cold starts measured.
const RUNS: usize = 10;
/// Longest wait for any one step of a run.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Invocations per run: the first is cold, the second warm.
const INVOCATIONS: usize = 2;
const NEXT: &str = "/2018-06-01/runtime/invocation/next";

/// What the function did, and when the emulator saw it.
#[derive(Debug)]
enum Hit {
    /// Asked for the next invocation.
    Next,
    /// Posted an invocation's response.
    Response(String),
    /// Posted an init or invocation error.
    Error(String),
}

/// The emulator: events to hand out, and a channel of what the function did.
struct Emulator {
    events: Mutex<VecDeque<(String, String)>>,
    hits: mpsc::UnboundedSender<(Instant, Hit)>,
}

/// Times `RUNS` cold starts of the `list-customers` binary next to this one.
pub async fn run(dynamodb_url: &str, table: &str, log_dir: &Path) -> Result<Table> {
    let binary = build()?;
    let size = std::fs::metadata(&binary)?.len() as f64 / 1_048_576.0;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let emulator = Arc::new(Emulator {
        events: Mutex::new(VecDeque::new()),
        hits: tx,
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let runtime_api = listener.local_addr()?;
    let router = axum::Router::new()
        .fallback(runtime_api_handler)
        .with_state(emulator.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let log = std::fs::File::create(log_dir.join(format!("{FUNCTION}.log")))?;
    let admin = token(&uuid::Uuid::new_v4().to_string(), &["billing_admin"], 3600);
    let event = event(&admin)?;
    let settings = jwt_settings();
    let env = [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", FUNCTION.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("TABLE_NAME", table.to_owned()),
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_url.to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
        ("JWT_ISSUER", settings.issuer.clone()),
        ("JWT_AUDIENCE", settings.audience.clone()),
        ("JWT_PUBLIC_KEY", PUBLIC_KEY.to_owned()),
    ];

    let mut init = Latencies::default();
    let mut first = Latencies::default();
    let mut to_first = Latencies::default();
    let mut warm = Latencies::default();
    let result: Result<()> = async {
        for run in 0..RUNS {
            while rx.try_recv().is_ok() {}
            {
                let mut events = emulator
                    .events
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                events.clear();
                for i in 0..INVOCATIONS {
                    events.push_back((format!("bench-{run}-{i}"), event.clone()));
                }
            }
            let spawned = Instant::now();
            let mut child = tokio::process::Command::new(&binary)
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log.try_clone()?)
                .kill_on_drop(true)
                .spawn()?;
            // Next, Response, Next, Response, then the idle Next it waits in.
            let mut times = Vec::with_capacity(2 * INVOCATIONS + 1);
            while times.len() < 2 * INVOCATIONS + 1 {
                let (at, hit) = tokio::select! {
                    hit = rx.recv() => hit.ok_or("runtime API emulator stopped")?,
                    status = child.wait() => {
                        return Err(format!("{FUNCTION} exited early ({}); see {}",
                            status?, log_dir.join(format!("{FUNCTION}.log")).display()).into());
                    }
                    () = tokio::time::sleep(STEP_TIMEOUT) => {
                        return Err(format!("{FUNCTION} did nothing for {STEP_TIMEOUT:?}").into());
                    }
                };
                match hit {
                    Hit::Next if times.len() % 2 == 0 => {}
                    Hit::Response(body) if times.len() % 2 == 1 => {
                        if !body.contains("\"statusCode\":200") {
                            return Err(format!("{FUNCTION} answered: {body}").into());
                        }
                    }
                    Hit::Error(body) => return Err(format!("{FUNCTION} failed: {body}").into()),
                    other => return Err(format!("unexpected {other:?}").into()),
                }
                times.push(at);
            }
            child.start_kill()?;
            child.wait().await?;
            init.push(times[0] - spawned);
            first.push(times[1] - times[0]);
            to_first.push(times[1] - spawned);
            warm.push(times[3] - times[2]);
        }
        Ok(())
    }
    .await;
    server.abort();
    result?;

    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let mut table = Table::new(
        format!(
            "4. Cold start of {FUNCTION} ({profile} build, {size:.1} MiB), {RUNS} process starts (ms)"
        ),
        &["step", "p50", "p95", "min", "max"],
    );
    for (step, l) in [
        ("spawn -> first /next (init done)", &init),
        ("first invocation: /next -> response", &first),
        ("spawn -> first response", &to_first),
        ("second (warm) invocation: /next -> response", &warm),
    ] {
        table.row(vec![
            step.to_owned(),
            l.ms(50.0),
            l.ms(95.0),
            l.ms(0.0),
            l.ms(100.0),
        ]);
    }
    table.note(
        "Runtime API emulator on 127.0.0.1; event: events/list-customers.json (API Gateway \
         HTTP API v2) with a fresh Bearer token; DynamoDB Local for the table. Init includes the SDK config, the \
         clients and the JWT key (given in the environment, no Secrets Manager call).",
    );
    Ok(table)
}

/// Builds the function with this binary's profile when run through cargo (so the
/// binary measured is current), and returns its path next to this binary.
fn build() -> Result<PathBuf> {
    let dir = std::env::current_exe()?
        .parent()
        .ok_or("bench binary has no directory")?
        .to_path_buf();
    if let Some(cargo) = std::env::var_os("CARGO") {
        eprintln!("bench: building {FUNCTION}");
        let mut command = std::process::Command::new(cargo);
        command.args(["build", "--quiet", "-p", FUNCTION]);
        if !cfg!(debug_assertions) {
            command.arg("--release");
        }
        let status = command.status()?;
        if !status.success() {
            return Err(format!("cargo build -p {FUNCTION} failed ({status})").into());
        }
    }
    let binary = dir.join(FUNCTION);
    if !binary.is_file() {
        return Err(format!("{} not found; cargo build -p {FUNCTION}", binary.display()).into());
    }
    Ok(binary)
}

/// The API Gateway event `sam local invoke -e` uses for the function
/// (`events/list-customers.json`), with a valid admin token.
fn event(admin: &str) -> Result<String> {
    let path = repo_root().join("events").join(format!("{FUNCTION}.json"));
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let mut event: serde_json::Value = serde_json::from_str(&text)?;
    event["headers"]["authorization"] = format!("Bearer {admin}").into();
    Ok(event.to_string())
}

/// The Runtime API: hands out queued events on `/next` (and then holds the request
/// open, as Lambda does between invocations) and records responses and errors.
async fn runtime_api_handler(State(emulator): State<Arc<Emulator>>, req: Request) -> Response {
    let at = Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    if method == http::Method::GET && path == NEXT {
        let _ = emulator.hits.send((at, Hit::Next));
        let next = emulator
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front();
        let Some((id, event)) = next else {
            return std::future::pending().await;
        };
        return Response::builder()
            .header("lambda-runtime-aws-request-id", id)
            .header("lambda-runtime-deadline-ms", deadline_ms())
            .header(
                "lambda-runtime-invoked-function-arn",
                format!("arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"),
            )
            .header(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000",
            )
            .header("content-type", "application/json")
            .body(Body::from(event))
            .unwrap_or_default();
    }
    if method == http::Method::POST {
        let body = axum::body::to_bytes(req.into_body(), 6 * 1024 * 1024)
            .await
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&body).into_owned();
        let hit = if path.ends_with("/response") {
            Hit::Response(body)
        } else {
            Hit::Error(format!("{path}: {body}"))
        };
        let _ = emulator.hits.send((at, hit));
        return Response::builder()
            .status(202)
            .body(Body::from(r#"{"status":"OK"}"#))
            .unwrap_or_default();
    }
    Response::builder()
        .status(404)
        .body(Body::empty())
        .unwrap_or_default()
}

/// Five minutes from now, in epoch milliseconds.
fn deadline_ms() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (now + Duration::from_secs(300)).as_millis().to_string()
}
