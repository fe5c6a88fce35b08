//! The benchmark (`make bench`): the warm-path cost of token verification per
//! algorithm, DynamoDB round trips per request, latency of each endpoint next to
//! its raw DynamoDB call, the cost of a Stripe webhook per event, list cost vs
//! table size, and the cold start of the function binaries next to two
//! baselines. Starts DynamoDB Local (and localstripe) itself and stops them by PID.
//!
//! Usage: `cargo run -p billing-tests --bin bench [--release] -- [--large] [--no-cold-start] [--cold-start-only] [--tokens-only] [--webhook-only] [--writes-only] [--listing-only] [--scale N] [--reconcile N,...] [--audit N]`

// The handlers' futures (deadlines, spans) nest deeper than the default limit allows.
#![recursion_limit = "256"]

mod audit;
mod cold_start;
mod endpoints;
mod harness;
mod listing;
mod reconcile;
mod report;
mod scale;
mod tokens;
mod webhook;
mod writes;

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use billing_tests::counter;
use billing_tests::servers::{Server, repo_root};

use crate::counter::Counter;
use crate::harness::{App, Result};

const USAGE: &str =
    "usage: bench [--large] [--no-cold-start] [--cold-start-only] [--tokens-only] [--webhook-only] [--writes-only] [--listing-only] [--scale N]
  --large          also list at 100,000 customers (seeding takes minutes)
  --scale N        only the listings at N customers and the concurrent writers
                   (`make bench-scale`: 100,000)
  --reconcile N,.. only the reconciliation's peak memory at N Stripe
                   subscriptions each (`make bench-scale`: 10,000 and 100,000)
  --no-cold-start  skip the cold start of the function binaries and baselines
  --cold-start-only  only the cold start (its own DynamoDB Local and table)
  --tokens-only    only the token verification section (no DynamoDB)
  --webhook-only   only the Stripe webhook's cost per event (DynamoDB Local, localstripe)
  --writes-only    only the writes per mutation (DynamoDB Local)
  --listing-only   only the list cost tables, with a backlog and compacted (DynamoDB Local)
  --list-sizes N,.. the customers of the list cost tables (default 1000,10000)
  --audit N        only a customer's audit trail pages at N entries (`make bench-scale`: 10,000)";

/// Command-line options.
#[derive(Debug)]
struct Args {
    large: bool,
    cold_start: bool,
    cold_start_only: bool,
    tokens_only: bool,
    webhook_only: bool,
    writes_only: bool,
    listing_only: bool,
    list_sizes: Option<Vec<usize>>,
    scale: Option<usize>,
    reconcile: Option<Vec<usize>>,
    audit: Option<usize>,
}

impl Args {
    fn parse(args: impl Iterator<Item = String>) -> std::result::Result<Option<Self>, String> {
        let mut parsed = Self {
            large: false,
            cold_start: true,
            cold_start_only: false,
            tokens_only: false,
            webhook_only: false,
            writes_only: false,
            listing_only: false,
            list_sizes: None,
            scale: None,
            reconcile: None,
            audit: None,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--scale" => {
                    let n = args.next().and_then(|n| n.parse().ok());
                    parsed.scale = Some(n.ok_or("--scale takes a number of customers")?);
                }
                "--reconcile" => {
                    let sizes: Option<Vec<usize>> = args
                        .next()
                        .and_then(|n| n.split(',').map(|n| n.parse().ok()).collect());
                    parsed.reconcile =
                        Some(sizes.ok_or("--reconcile takes numbers of subscriptions: N,N")?);
                }
                "--audit" => {
                    let n = args.next().and_then(|n| n.parse().ok());
                    parsed.audit = Some(n.ok_or("--audit takes a number of entries")?);
                }
                "--large" => parsed.large = true,
                "--no-cold-start" => parsed.cold_start = false,
                "--cold-start-only" => parsed.cold_start_only = true,
                "--tokens-only" => parsed.tokens_only = true,
                "--webhook-only" => parsed.webhook_only = true,
                "--writes-only" => parsed.writes_only = true,
                "--listing-only" => parsed.listing_only = true,
                "--list-sizes" => {
                    let sizes: Option<Vec<usize>> = args
                        .next()
                        .and_then(|n| n.split(',').map(|n| n.parse().ok()).collect());
                    parsed.list_sizes = Some(sizes.ok_or("--list-sizes takes numbers: N,N")?);
                }
                "-h" | "--help" => return Ok(None),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(Some(parsed))
    }
}

fn main() -> ExitCode {
    // One reconciliation in a process of its own, measured (see reconcile.rs).
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, how, table, dynamodb, stripe] = argv.as_slice()
        && flag == "--reconcile-child"
    {
        let outcome = tokio::runtime::Runtime::new()
            .map_err(Into::into)
            .and_then(|rt| {
                rt.block_on(async {
                    let (client, _) = client(dynamodb).await;
                    reconcile::child(client, how, table, stripe).await
                })
            });
        return match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("bench: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("bench: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    stop_children_on_abort();
    let root = repo_root();
    match Command::new(root.join("infra/install.sh")).status() {
        Ok(status) if status.success() => {}
        other => {
            eprintln!("bench: infra/install.sh failed: {other:?}");
            return ExitCode::FAILURE;
        }
    }
    let log_dir = root.join("target/bench-logs");
    // The handlers' metrics (EMF lines) stay out of the tables: they go to a
    // file, counted; the webhook section reads its own through
    // `metrics::Capture`, which takes precedence.
    let emf = log_dir.join("metrics.jsonl");
    let emf_lines = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    match std::fs::create_dir_all(&log_dir).and_then(|()| std::fs::File::create(&emf)) {
        Ok(file) => {
            let file = std::sync::Mutex::new(file);
            let lines = emf_lines.clone();
            billing::telemetry::metrics::set_sink(move |line| {
                use std::io::Write;
                lines.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Ok(mut f) = file.lock() {
                    let _ = writeln!(f, "{line}");
                }
            });
        }
        Err(err) => {
            eprintln!("bench: {}: {err}", emf.display());
            return ExitCode::FAILURE;
        }
    }
    let runtime = match std::fs::create_dir_all(&log_dir).and_then(|()| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }) {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("bench: {err}");
            return ExitCode::FAILURE;
        }
    };

    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "billing bench: {profile} build, DynamoDB Local in memory on loopback; relative numbers, \
         not AWS latencies"
    );
    // Sections 1-2 and 3-4 each get a fresh DynamoDB Local: every write into one gets
    // slower after large transactions (member batches, cascades): seeding 1k customers
    // fell from about 50/s to 6/s after sections 1-2 on the same server.
    // The sections that run alone, each on its own DynamoDB Local.
    let alone = if args.cold_start_only {
        Some(with_dynamodb(
            &runtime,
            &log_dir,
            "dynamodb-local-cold-start",
            async |url| {
                let (client, counter) = client(url).await;
                cold_start::run(&client, &counter, url, &log_dir)
                    .await?
                    .print();
                Ok(())
            },
        ))
    } else if args.webhook_only {
        Some(webhooks(&runtime, &log_dir))
    } else if let Some(n) = args.audit {
        Some(with_dynamodb(
            &runtime,
            &log_dir,
            "dynamodb-local-audit",
            async |url| {
                let (client, counter) = client(url).await;
                audit::run(&client, &counter, n).await?.print();
                Ok(())
            },
        ))
    } else if args.listing_only {
        Some(with_dynamodb(
            &runtime,
            &log_dir,
            "dynamodb-local-listing",
            async |url| {
                let (client, counter) = client(url).await;
                let (backlog, steady) =
                    listing::run(&client, &counter, args.large, args.list_sizes.as_deref()).await?;
                steady.print();
                backlog.print();
                Ok(())
            },
        ))
    } else if args.writes_only {
        Some(with_dynamodb(
            &runtime,
            &log_dir,
            "dynamodb-local-writes",
            async |url| {
                let (client, counter) = client(url).await;
                let table = format!("bench-writes-{}", uuid::Uuid::new_v4().simple());
                let app = App::new(&client, &counter, &table).await?;
                writes::run(&app).await?.print();
                Ok(())
            },
        ))
    } else if let Some(sizes) = &args.reconcile {
        Some(with_dynamodb(
            &runtime,
            &log_dir,
            "dynamodb-local-reconcile",
            async |url| {
                let (client, counter) = client(url).await;
                reconcile::run(&client, &counter, url, sizes).await?.print();
                Ok(())
            },
        ))
    } else {
        args.scale.map(|n| {
            with_dynamodb(&runtime, &log_dir, "dynamodb-local-scale", async |url| {
                let (client, counter) = client(url).await;
                for table in scale::run(&client, &counter, n).await? {
                    table.print();
                }
                Ok(())
            })
        })
    };
    if let Some(outcome) = alone {
        eprintln!(
            "bench: {} metric lines in {}",
            emf_lines.load(std::sync::atomic::Ordering::Relaxed),
            emf.display()
        );
        return finish(runtime, outcome);
    }
    let outcome = runtime
        .block_on(tokens::run())
        .map(|table| table.print())
        .and_then(|()| {
            if args.tokens_only {
                return Ok(());
            }
            with_dynamodb(
                &runtime,
                &log_dir,
                "dynamodb-local-endpoints",
                async |url| {
                    let (client, counter) = client(url).await;
                    let table = format!("bench-endpoints-{}", uuid::Uuid::new_v4().simple());
                    let app = App::new(&client, &counter, &table).await?;
                    let (calls, latency) = endpoints::run(&app, &client).await?;
                    calls.print();
                    latency.print();
                    writes::run(&app).await?.print();
                    Ok(())
                },
            )
        })
        .and_then(|()| {
            if args.tokens_only {
                return Ok(());
            }
            webhooks(&runtime, &log_dir)
        })
        .and_then(|()| {
            if args.tokens_only {
                return Ok(());
            }
            with_dynamodb(&runtime, &log_dir, "dynamodb-local-listing", async |url| {
                let (client, counter) = client(url).await;
                let (backlog, steady) =
                    listing::run(&client, &counter, args.large, args.list_sizes.as_deref()).await?;
                steady.print();
                backlog.print();
                if args.cold_start {
                    cold_start::run(&client, &counter, url, &log_dir)
                        .await?
                        .print();
                }
                Ok(())
            })
        });
    eprintln!(
        "bench: {} metric lines in {}",
        emf_lines.load(std::sync::atomic::Ordering::Relaxed),
        emf.display()
    );
    finish(runtime, outcome)
}

/// Stops the runtime and turns the outcome into the exit code.
fn finish(runtime: tokio::runtime::Runtime, outcome: Result<()>) -> ExitCode {
    runtime.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench: {err} ({err:?})");
            ExitCode::FAILURE
        }
    }
}

/// Starts a DynamoDB Local, runs `work` against its URL (until done, or SIGINT or
/// SIGTERM), then stops the server by its PID.
fn with_dynamodb(
    runtime: &tokio::runtime::Runtime,
    log_dir: &Path,
    name: &'static str,
    work: impl AsyncFnOnce(&str) -> Result<()>,
) -> Result<()> {
    let mut server = Server::start(name, "run-dynamodb-local.sh", log_dir);
    eprintln!("bench: {name} at {}", server.url);
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = work(&server.url) => result,
            signal = interrupted() => Err(format!("interrupted by {signal}").into()),
        }
    });
    server.stop();
    outcome
}

/// The Stripe webhook section, on its own DynamoDB Local and localstripe
/// (stopped by PID).
fn webhooks(runtime: &tokio::runtime::Runtime, log_dir: &Path) -> Result<()> {
    let mut stripe = Server::start("localstripe-webhooks", "run-localstripe.sh", log_dir);
    eprintln!("bench: localstripe-webhooks at {}", stripe.url);
    let outcome = with_dynamodb(runtime, log_dir, "dynamodb-local-webhooks", async |url| {
        let (client, counter) = client(url).await;
        let table = format!("bench-webhooks-{}", uuid::Uuid::new_v4().simple());
        let app = App::new(&client, &counter, &table).await?;
        webhook::run(&app, &stripe.url).await?.print();
        Ok(())
    });
    stripe.stop();
    outcome
}

/// A DynamoDB client for `url` whose calls a new [`Counter`] counts.
async fn client(url: &str) -> (aws_sdk_dynamodb::Client, Counter) {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "bench"))
        .load()
        .await;
    let counter = Counter::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(url)
            .interceptor(counter.clone())
            .build(),
    );
    (client, counter)
}

/// Resolves on SIGINT or SIGTERM, with its name.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// With `panic = "abort"` (the release profile) no destructor runs on a panic, so
/// `Server`'s drop would not stop DynamoDB Local: a panic hook sends SIGTERM to this
/// process's own children instead, each by its PID.
fn stop_children_on_abort() {
    if !cfg!(panic = "abort") {
        return;
    }
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        for pid in own_children() {
            // SAFETY: `pid` is a child of this process that has not been reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }));
}

/// PIDs whose parent is this process, from /proc/<pid>/stat.
fn own_children() -> Vec<libc::pid_t> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: libc::pid_t = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
            (ppid == me).then_some(pid)
        })
        .collect()
}
