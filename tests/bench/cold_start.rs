//! Table 4: cold start of the function binaries next to two baselines built with
//! the same profile (a `lambda_http` hello world and a bare `lambda_http` +
//! aws-sdk-dynamodb `GetItem` function, `tests/baselines`), under a tiny Lambda
//! Runtime API emulator on loopback.
//!
//! Every binary is built on its own (`cargo build -p <package>`), as cargo-lambda
//! builds each function, so that each links only the `billing-shared` features
//! it enables: building them together would unify the features.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use billing::domain::{CustomerId, UserId};
use billing_tests::app::{PUBLIC_KEY, jwt_settings, token};
use billing_tests::servers::repo_root;
use tokio::sync::mpsc;

use crate::counter::Counter;
use crate::harness::{App, Result, customer_with_members};
use crate::report::{Latencies, Table};

/// Cold starts measured per binary (the binaries take turns, run by run, so
/// that a busy machine slows them alike; the p50 of many runs is stable).
const RUNS: usize = 30;
/// Longest wait for any one step of a run.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Invocations per run: the first is cold, the second warm.
const INVOCATIONS: usize = 2;
const NEXT: &str = "/2018-06-01/runtime/invocation/next";
/// The customer and user ids of the sample events (`events/*.json`), replaced by
/// the bench's own.
const SAMPLE_CUSTOMER: &str = "a1b2c3d4-5633-4b16-bbf0-5ca22ef8ea2e";
const SAMPLE_USER: &str = "ea04845b-d127-4bd6-ae1b-b5ef40a3a7a7";
/// Customers seeded for the listing (besides those the functions read, delete
/// and add members to).
const LISTED: usize = 12;
/// Members of the customer `get-customer` and `list-members` read.
const MEMBERS: usize = 10;

/// The read functions: the targets below apply to them.
const READS: [&str; 3] = ["get-customer", "list-customers", "list-members"];
/// Targets (issue 9): init at most 1.5x the hello world's, spawn to first
/// response at most 0.8x the bare GetItem function's, binary at most 8 MiB.
const INIT_VS_HELLO: f64 = 1.5;
const COLD_VS_GETITEM: f64 = 0.8;
const MAX_MIB: f64 = 8.0;

const HELLO: &str = "baseline-hello";
const GETITEM: &str = "baseline-getitem";

/// One binary measured: what it is built from, the event of each invocation and
/// the status it must answer.
struct Subject {
    binary: &'static str,
    package: &'static str,
    /// `events/<sample>.json`.
    sample: &'static str,
    status: u16,
    /// Customer id per invocation (`None`: the sample's path has none).
    customers: Box<dyn Fn(usize) -> Option<CustomerId>>,
    /// A fresh user id per invocation in the body (`add-member`).
    fresh_user: bool,
    /// Variables besides the common ones.
    env: Vec<(&'static str, String)>,
    /// The binary, once built.
    path: PathBuf,
}

/// What one binary did over the runs.
#[derive(Default)]
struct Timings {
    size_mib: f64,
    init: Latencies,
    first: Latencies,
    cold: Latencies,
    warm: Latencies,
}

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

/// Times `RUNS` cold starts of each function and baseline, in a table of their
/// own on `dynamodb_url`.
pub async fn run(
    client: &aws_sdk_dynamodb::Client,
    counter: &Counter,
    dynamodb_url: &str,
    log_dir: &Path,
) -> Result<Table> {
    let table = format!("bench-cold-{}", uuid::Uuid::new_v4().simple());
    let app = App::new(client, counter, &table).await?;
    let seed = |i: usize, members: usize| customer_with_members(&app, 1_000_000 + i, members);
    for i in 0..LISTED {
        seed(i, 1).await?;
    }
    let (read, _) = seed(LISTED, MEMBERS).await?;
    let (joined, _) = seed(LISTED + 1, 1).await?;
    let mut doomed = Vec::with_capacity(RUNS * INVOCATIONS);
    for i in 0..RUNS * INVOCATIONS {
        doomed.push(seed(LISTED + 2 + i, 0).await?.0);
    }
    let doomed = Arc::new(doomed);
    let same = |id: CustomerId| -> Box<dyn Fn(usize) -> Option<CustomerId>> {
        Box::new(move |_| Some(id))
    };
    let subject = |binary, package, sample, status, customers| Subject {
        binary,
        package,
        sample,
        status,
        customers,
        fresh_user: false,
        env: Vec::new(),
        path: PathBuf::new(),
    };
    // A function: its package, binary and sample event share its name.
    let function = |name, status, customers| subject(name, name, name, status, customers);
    let mut subjects = vec![
        subject(HELLO, "baselines", "get-customer", 200, same(read)),
        subject(GETITEM, "baselines", "get-customer", 200, same(read)),
        function("get-customer", 200, same(read)),
        function("list-customers", 200, Box::new(|_| None)),
        function("list-members", 200, same(read)),
        Subject {
            // As in AWS, with Stripe configured (its client is built at init);
            // the customers have no Stripe customer, so no Stripe call is made.
            env: vec![
                ("STRIPE_SECRET_KEY", "sk_test_bench".to_owned()),
                ("STRIPE_API_BASE", "http://127.0.0.1:9".to_owned()),
            ],
            ..function(
                "delete-customer",
                204,
                Box::new(move |n| doomed.get(n).copied()),
            )
        },
        Subject {
            fresh_user: true,
            ..function("add-member", 201, same(joined))
        },
    ];
    let mut timings: Vec<Timings> = Vec::new();
    for subject in &mut subjects {
        subject.path = build(subject.binary, subject.package)?;
        timings.push(Timings {
            size_mib: std::fs::metadata(&subject.path)?.len() as f64 / 1_048_576.0,
            ..Timings::default()
        });
    }

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

    let admin = token(&uuid::Uuid::new_v4().to_string(), &["billing_admin"], 3600);
    let settings = jwt_settings();
    let common = [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("TABLE_NAME", table.clone()),
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_url.to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
        ("JWT_ISSUER", settings.issuer.clone()),
        ("JWT_AUDIENCE", settings.audience.clone()),
        ("JWT_PUBLIC_KEY", PUBLIC_KEY.to_owned()),
        ("CURSOR_KEY", "bench-cursor-key-0123456789abcdef".to_owned()),
    ];

    let result: Result<()> = async {
        for run in 0..RUNS {
            for (subject, timing) in subjects.iter().zip(&mut timings) {
                let events = (0..INVOCATIONS)
                    .map(|i| {
                        let n = run * INVOCATIONS + i;
                        Ok((format!("bench-{run}-{i}"), event(subject, n, &admin)?))
                    })
                    .collect::<Result<VecDeque<_>>>()?;
                let log = std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(log_dir.join(format!("{}.log", subject.binary)))?;
                let env = common
                    .iter()
                    .map(|(k, v)| (*k, v.as_str()))
                    .chain([("AWS_LAMBDA_FUNCTION_NAME", subject.binary)])
                    .chain(subject.env.iter().map(|(k, v)| (*k, v.as_str())));
                let times = start_once(&emulator, &mut rx, subject, events, env, log)
                    .await
                    .map_err(|e| {
                        format!(
                            "{e}; see {}",
                            log_dir.join(format!("{}.log", subject.binary)).display()
                        )
                    })?;
                timing.init.push(times[0]);
                timing.first.push(times[1]);
                timing.cold.push(times[0] + times[1]);
                timing.warm.push(times[2]);
            }
        }
        Ok(())
    }
    .await;
    server.abort();
    result?;
    Ok(report(&subjects, &timings))
}

/// One process start: spawns the subject's binary, hands it `events` and
/// returns spawn -> first `/next` (init), the first invocation and the second
/// (warm) one.
async fn start_once<'a>(
    emulator: &Emulator,
    rx: &mut mpsc::UnboundedReceiver<(Instant, Hit)>,
    subject: &Subject,
    events: VecDeque<(String, String)>,
    env: impl Iterator<Item = (&'a str, &'a str)>,
    log: std::fs::File,
) -> Result<[Duration; 3]> {
    let name = subject.binary;
    while rx.try_recv().is_ok() {}
    *emulator
        .events
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = events;
    let spawned = Instant::now();
    let mut child = tokio::process::Command::new(&subject.path)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?;
    // Next, Response, Next, Response, then the idle Next it waits in.
    let mut times = Vec::with_capacity(2 * INVOCATIONS + 1);
    let expected = format!("\"statusCode\":{}", subject.status);
    while times.len() < 2 * INVOCATIONS + 1 {
        let (at, hit) = tokio::select! {
            hit = rx.recv() => hit.ok_or("runtime API emulator stopped")?,
            status = child.wait() => {
                return Err(format!("{name} exited early ({})", status?).into());
            }
            () = tokio::time::sleep(STEP_TIMEOUT) => {
                return Err(format!("{name} did nothing for {STEP_TIMEOUT:?}").into());
            }
        };
        match hit {
            Hit::Next if times.len() % 2 == 0 => {}
            Hit::Response(body) if times.len() % 2 == 1 => {
                if !body.contains(&expected) {
                    return Err(format!("{name} answered: {body}").into());
                }
            }
            Hit::Error(body) => return Err(format!("{name} failed: {body}").into()),
            other => return Err(format!("{name}: unexpected {other:?}").into()),
        }
        times.push(at);
    }
    child.start_kill()?;
    child.wait().await?;
    Ok([times[0] - spawned, times[1] - times[0], times[3] - times[2]])
}

/// The table: per binary, its size and p50s, and the ratios to the baselines.
fn report(subjects: &[Subject], timings: &[Timings]) -> Table {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let p50 = |l: &Latencies| l.percentile(50.0).unwrap_or_default().as_secs_f64();
    let of = |name: &str| {
        subjects
            .iter()
            .position(|s| s.binary == name)
            .map(|i| &timings[i])
    };
    let hello_init = of(HELLO).map(|t| p50(&t.init)).unwrap_or_default();
    let getitem_cold = of(GETITEM).map(|t| p50(&t.cold)).unwrap_or_default();
    let ratio = |v: f64, base: f64| {
        if base > 0.0 {
            format!("{:.2}", v / base)
        } else {
            "-".to_owned()
        }
    };
    let mut table = Table::new(
        format!(
            "4. Cold start ({profile} build), {RUNS} process starts per binary, p50 (ms) unless noted"
        ),
        &[
            "binary",
            "MiB",
            "init",
            "1st invocation",
            "cold",
            "cold p95",
            "warm",
            "init/hello",
            "cold/GetItem",
            "targets",
        ],
    );
    let mut misses = Vec::new();
    for (subject, t) in subjects.iter().zip(timings) {
        let (init, cold) = (p50(&t.init), p50(&t.cold));
        let targets = if READS.contains(&subject.binary) {
            let mut missed = Vec::new();
            if hello_init > 0.0 && init > INIT_VS_HELLO * hello_init {
                missed.push("init");
            }
            if getitem_cold > 0.0 && cold > COLD_VS_GETITEM * getitem_cold {
                missed.push("cold");
            }
            if t.size_mib > MAX_MIB {
                missed.push("size");
            }
            if missed.is_empty() {
                "met".to_owned()
            } else {
                misses.push(format!("{} ({})", subject.binary, missed.join(", ")));
                format!("missed: {}", missed.join(", "))
            }
        } else {
            String::new()
        };
        table.row(vec![
            subject.binary.to_owned(),
            format!("{:.1}", t.size_mib),
            t.init.ms(50.0),
            t.first.ms(50.0),
            t.cold.ms(50.0),
            t.cold.ms(95.0),
            t.warm.ms(50.0),
            ratio(init, hello_init),
            ratio(cold, getitem_cold),
            targets,
        ]);
    }
    table.note(format!(
        "init: spawn -> first /next; 1st invocation: /next -> response; cold: spawn -> first \
         response (init + 1st invocation, per run); warm: the second invocation. Targets for \
         the read functions ({}): init <= {INIT_VS_HELLO}x {HELLO}, cold <= \
         {COLD_VS_GETITEM}x {GETITEM}, binary <= {MAX_MIB} MiB.",
        READS.join(", ")
    ));
    table.note(format!(
        "Runtime API emulator on 127.0.0.1; events: events/<endpoint>.json (API Gateway HTTP \
         API v2) with a fresh Bearer token and the bench's own ids; DynamoDB Local for the \
         table (plain HTTP, no TLS handshake). The functions' JWT key is in the environment \
         (no Secrets Manager call); delete-customer also builds its Stripe client. {HELLO}: \
         lambda_http answering 200; {GETITEM}: lambda_http + aws-config defaults + one \
         GetItem (tests/baselines). Each binary built alone, same profile."
    ));
    if !misses.is_empty() {
        table.note(format!("Targets missed: {}.", misses.join("; ")));
    }
    table
}

/// Builds `package` with this binary's profile when run through cargo (so the
/// binary measured is current), and returns the path of `binary` next to this one.
fn build(binary: &str, package: &str) -> Result<PathBuf> {
    let dir = std::env::current_exe()?
        .parent()
        .ok_or("bench binary has no directory")?
        .to_path_buf();
    if let Some(cargo) = std::env::var_os("CARGO") {
        eprintln!("bench: building {binary}");
        let mut command = std::process::Command::new(cargo);
        command.args(["build", "--quiet", "-p", package, "--bin", binary]);
        if !cfg!(debug_assertions) {
            command.arg("--release");
        }
        let status = command.status()?;
        if !status.success() {
            return Err(
                format!("cargo build -p {package} --bin {binary} failed ({status})").into(),
            );
        }
    }
    let path = dir.join(binary);
    if !path.is_file() {
        return Err(format!(
            "{} not found; cargo build -p {package} --bin {binary}",
            path.display()
        )
        .into());
    }
    Ok(path)
}

/// The sample event of `subject` (`events/<sample>.json`, what `sam local
/// invoke -e` uses) for its `n`th invocation: a valid admin token, the
/// invocation's customer, a fresh user where it adds one.
fn event(subject: &Subject, n: usize, admin: &str) -> Result<String> {
    let path = repo_root()
        .join("events")
        .join(format!("{}.json", subject.sample));
    let mut text =
        std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    if let Some(id) = (subject.customers)(n) {
        text = text.replace(SAMPLE_CUSTOMER, &id.to_string());
    }
    if subject.fresh_user {
        text = text.replace(SAMPLE_USER, &UserId::random().to_string());
    }
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
        // The event is taken before the `/next` is reported: a process's idle
        // `/next` reported first could take the next run's event once the
        // bench, told of it, has queued that run's events.
        let next = emulator
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front();
        let _ = emulator.hits.send((at, Hit::Next));
        let Some((id, event)) = next else {
            return std::future::pending().await;
        };
        return Response::builder()
            .header("lambda-runtime-aws-request-id", id)
            .header("lambda-runtime-deadline-ms", deadline_ms())
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:bench",
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
