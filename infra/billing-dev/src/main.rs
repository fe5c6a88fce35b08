//! `billing-dev`: run and feed the local stack.

mod reconcile;
mod reindex;
mod remote;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use billing::auth::{issue_api_key, sign};
use billing::runtime::Deps;
use billing::seed::{Fixtures, demo, seed};
use billing::store::Store;
use billing::sync::platform::{CUSTOMER_CREATED, CUSTOMER_UPDATED, Platform, PlatformError};
use billing_dev::import::{self, Source};
use billing_dev::local;
use billing_dev::stream::{self, StreamPoller};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "billing-dev",
    about = "Run and feed the billing admin API's local stack",
    version
)]
struct Cli {
    /// Act on this table of a deployed stack in AWS instead of the local
    /// stack, with the standard AWS credential chain (environment, profiles,
    /// SSO). Only the API key commands, reindex, import and reconcile run this
    /// way (Stripe, for `import --stripe` and reconcile: STRIPE_SECRET_KEY and
    /// optionally STRIPE_API_BASE from the environment).
    #[arg(long, global = true, value_name = "TABLE")]
    aws_table: Option<String>,
    /// AWS region for --aws-table (else the credential chain's region).
    #[arg(long, global = true, requires = "aws_table")]
    region: Option<String>,
    /// DynamoDB endpoint for --aws-table; without it, an endpoint set in the
    /// environment (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_DYNAMODB) is refused.
    #[arg(long, global = true, requires = "aws_table")]
    endpoint_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the six endpoints on 127.0.0.1 through the Lambdas' handlers.
    Serve {
        /// Port to listen on.
        #[arg(long, env = "PORT", default_value_t = 3000)]
        port: u16,
    },
    /// Create the table (no-op when it exists).
    CreateTable,
    /// Seed customers and members.
    Seed {
        /// The built-in demo data set.
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        demo: bool,
        /// A fixtures file: {"customers": [...]}.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Print a JWT the local stack accepts.
    Token {
        /// Subject (user UUID).
        #[arg(long)]
        sub: String,
        /// A role to grant; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        expires_in: u64,
    },
    /// Issue an API key; prints {"apiKey", "apiSecret", "expiresAt"}.
    ApiKey {
        /// The user the key acts as, and is listed and revoked by.
        #[arg(long)]
        user: String,
        /// A role to grant; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Lifetime in seconds, at most API_KEY_MAX_DAYS days (default 90);
        /// without it, that maximum.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        expires_in: Option<u64>,
    },
    /// List the API keys without their secrets: a JSON array of
    /// {apiKey, userID (the user who holds it: its creator), roles, createdAt,
    /// expiresAt, revokedAt}.
    ListApiKeys,
    /// Run the stream consumer: poll the table's stream and feed the Lambda's handler.
    ConsumeStream {
        /// Seconds between polls.
        #[arg(long, default_value_t = 1)]
        interval: u64,
    },
    /// Revoke an API key, or with --user every key of a user.
    RevokeApiKey {
        /// The key id (`apiKey`).
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        key: Option<String>,
        /// Revoke every key this user holds (issued with `api-key --user`);
        /// prints their ids.
        #[arg(long, value_name = "SUB")]
        user: Option<String>,
    },
    /// Re-project the table into the listings: give every active customer its
    /// entry and count in each listing it belongs to (once), fold the counts,
    /// and drop the counters of the listing indexes the listings replaced.
    /// Safe while the table serves requests; rerun it to resume.
    Reindex {
        /// Save the scan's position here after every page, and resume from it
        /// when the file exists (deleted when the scan completes).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Import customers with their members: each created with its owner in one
    /// transaction, then its other members. Existing customers are skipped and
    /// counted, invalid records reported and counted; resumable with
    /// --checkpoint, and safe to rerun.
    #[command(group(
        clap::ArgGroup::new("source")
            .required(true)
            .args(["ndjson", "fixtures", "stripe"])
    ))]
    Import {
        /// One fixtures-format customer object per line.
        #[arg(long)]
        ndjson: Option<PathBuf>,
        /// A fixtures file: {"customers": [...]}.
        #[arg(long)]
        fixtures: Option<PathBuf>,
        /// Stripe's customers tagged metadata[customerID] and
        /// metadata[ownerUserID], with their current subscription's status,
        /// tier and id.
        #[arg(long)]
        stripe: bool,
        /// Save progress here and resume from it when the file exists (deleted
        /// when the import completes).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Customers in flight.
        #[arg(long, default_value_t = import::DEFAULT_CONCURRENCY as u16,
              value_parser = clap::value_parser!(u16).range(1..=256))]
        concurrency: u16,
    },
    /// Compare every customer with Stripe: one JSON line per drifted customer
    /// on stdout, a summary on stderr.
    Reconcile {
        /// Repair the drift (as Stripe has it).
        #[arg(long)]
        repair: bool,
    },
    /// Hand a platform customer event to its handler against the local table,
    /// as EventBridge would deliver it; prints the outcome (exit 1 when it is
    /// rejected, with the reason).
    SendEvent {
        /// The event's detail-type.
        #[arg(value_parser = [CUSTOMER_CREATED, CUSTOMER_UPDATED])]
        kind: String,
        /// The event's detail, JSON.
        #[arg(long)]
        detail: String,
        /// The event's id (to replay one); a fresh UUID otherwise.
        #[arg(long)]
        id: Option<String>,
    },
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Import { .. } | Command::Reconcile { .. } | Command::SendEvent { .. }
    ) {
        // Their stdout is their report: logs go to stderr, metrics (EMF
        // lines) nowhere.
        use billing::telemetry::{env_filter, subscriber};
        let filter = env_filter(std::env::var("RUST_LOG").ok().as_deref(), None);
        let _ = tracing::subscriber::set_global_default(subscriber(filter, std::io::stderr));
        billing::telemetry::metrics::set_sink(|_| {});
    } else {
        billing::telemetry::init();
    }
    let outcome = match cli.aws_table {
        Some(table) => {
            let target = remote::Target {
                table,
                region: cli.region,
                endpoint: cli.endpoint_url,
            };
            remote_keys(&target, cli.command).await
        }
        None => run(cli.command).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("billing-dev: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The API key commands against a deployed stack's table.
async fn remote_keys(target: &remote::Target, command: Command) -> Result<(), Error> {
    let store = match command {
        Command::ApiKey { .. } | Command::ListApiKeys | Command::RevokeApiKey { .. } => (
            target.store().await?,
            billing::config::api_key_max_days(|name| std::env::var(name).ok())?,
        ),
        Command::Reindex { checkpoint } => {
            return reindex::run(&target.store().await?, checkpoint.as_deref()).await;
        }
        command @ Command::Import { stripe, .. } => {
            let payments = if stripe {
                Some(remote_payments()?)
            } else {
                None
            };
            return run_import(&target.store().await?, payments.as_ref(), command).await;
        }
        Command::Reconcile { repair } => {
            let payments = remote_payments()?;
            return reconcile::run(&target.store().await?, &payments, repair).await;
        }
        _ => {
            return Err(
                "--aws-table runs only api-key, list-api-keys, revoke-api-key, reindex, \
                 import and reconcile"
                    .into(),
            );
        }
    };
    let (store, max_days) = store;
    keys(&store, max_days, command).await
}

/// Issues, lists or revokes API keys; keys live at most `max_days`.
async fn keys(store: &Store, max_days: u32, command: Command) -> Result<(), Error> {
    match command {
        Command::ApiKey {
            user,
            roles,
            expires_in,
        } => {
            let max_seconds = u64::from(max_days) * 86_400;
            let lifetime = expires_in.unwrap_or(max_seconds);
            if lifetime > max_seconds {
                return Err(format!(
                    "--expires-in {lifetime} is longer than the longest API key lifetime, \
                     {max_days} days ({max_seconds} s; API_KEY_MAX_DAYS)"
                )
                .into());
            }
            let expires_at =
                billing::domain::now() + chrono::Duration::seconds(i64::try_from(lifetime)?);
            let issued = issue_api_key(&user, roles, Some(expires_at))?;
            store.put_api_key(&issued.key_id, &issued.record).await?;
            println!(
                "{}",
                serde_json::json!({
                    "apiKey": issued.key_id,
                    "apiSecret": issued.secret,
                    "expiresAt": billing::domain::time::to_seconds(&expires_at),
                })
            );
        }
        Command::ListApiKeys => {
            println!(
                "{}",
                serde_json::to_string_pretty(&store.list_api_keys().await?)?
            );
        }
        Command::RevokeApiKey {
            key: Some(key),
            user: None,
        } => {
            if !store.revoke_api_key(&key).await? {
                return Err(format!("no API key {key}").into());
            }
            eprintln!("revoked {key}");
        }
        Command::RevokeApiKey {
            key: None,
            user: Some(user),
        } => {
            let revoked = store.revoke_user_api_keys(&user).await?;
            println!("{}", serde_json::to_string_pretty(&revoked)?);
            eprintln!("revoked {} API keys of {user}", revoked.len());
        }
        _ => return Err("not an API key command".into()),
    }
    Ok(())
}

async fn run(command: Command) -> Result<(), Error> {
    let config = local::config()?;
    if let Command::Token {
        sub,
        roles,
        expires_in,
    } = &command
    {
        if local::setting("JWT_JWKS_URL").is_some() {
            return Err(
                "JWT_JWKS_URL is set: tokens come from that identity provider, not from billing-dev"
                    .into(),
            );
        }
        let key = local::setting("JWT_SIGNING_KEY").unwrap_or_default();
        let jwt = &config.auth.as_ref().ok_or("JWT_ISSUER is required")?.jwt;
        println!(
            "{}",
            sign(key.as_bytes(), jwt, sub, roles.clone(), *expires_in)?
        );
        return Ok(());
    }
    let sdk = local::sdk(&config).await;
    let deps = Deps::new(config.clone(), sdk.clone());
    let store = deps.store();
    match command {
        Command::Serve { port } => {
            // The webhook needs its secret and Stripe (which it reads).
            let hooks = match config.stripe_webhook_secret.is_some() && config.stripe.is_some() {
                true => Some(billing::sync::webhook::Webhooks::new(
                    store.clone(),
                    deps.webhook_secrets().await?,
                    deps.required_payments().await?,
                )),
                false => None,
            };
            let console = console::Settings::from_env()?;
            // Cursors sealed under the configured key, else a key of this process.
            let state = deps.api(config.cursor_key.is_some()).await?;
            server::serve(state, hooks, console, port).await?
        }
        Command::ConsumeStream { interval } => {
            consume_stream(&deps, &sdk, &config, interval).await?
        }
        Command::CreateTable => {
            if store.table_exists().await? {
                eprintln!("table {} exists", store.table_name());
            } else {
                store.create_table().await?;
                eprintln!("table {} created", store.table_name());
            }
        }
        Command::Seed { file, .. } => {
            let fixtures: Fixtures = match file {
                Some(path) => serde_json::from_slice(&std::fs::read(&path)?)
                    .map_err(|e| format!("{}: {e}", path.display()))?,
                None => demo(),
            };
            let report = seed(&store, deps.payments().await?.as_ref(), &fixtures).await?;
            eprintln!(
                "seeded {} customers and {} members ({} already existed)",
                report.created, report.members, report.existing
            );
        }
        command
        @ (Command::ApiKey { .. } | Command::ListApiKeys | Command::RevokeApiKey { .. }) => {
            keys(&store, config.api_key_max_days, command).await?
        }
        Command::Reindex { checkpoint } => reindex::run(&store, checkpoint.as_deref()).await?,
        command @ Command::Import { .. } => {
            run_import(&store, deps.payments().await?.as_ref(), command).await?
        }
        Command::Reconcile { repair } => {
            let payments = deps
                .payments()
                .await?
                .ok_or("reconcile needs Stripe settings")?;
            reconcile::run(&store, &payments, repair).await?
        }
        Command::SendEvent { kind, detail, id } => {
            let region = config.region.clone();
            send_event(
                &deps.platform().await?,
                region.as_deref(),
                &kind,
                &detail,
                id,
            )
            .await?
        }
        Command::Token { .. } => {}
    }
    Ok(())
}

/// Stripe for a deployed stack's table: `STRIPE_SECRET_KEY` (and
/// `STRIPE_API_BASE`, default Stripe itself) from the environment.
fn remote_payments() -> Result<billing::payments::Payments, Error> {
    let key = std::env::var("STRIPE_SECRET_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .ok_or("STRIPE_SECRET_KEY is required to reach Stripe")?;
    let base = std::env::var("STRIPE_API_BASE")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "https://api.stripe.com".to_owned());
    Ok(billing::payments::Payments::new(
        &base,
        &secrecy::SecretString::from(key),
    )?)
}

/// Runs `billing-dev import` with a progress bar on stderr; prints each
/// problem and a summary.
async fn run_import(
    store: &Store,
    payments: Option<&billing::payments::Payments>,
    command: Command,
) -> Result<(), Error> {
    let Command::Import {
        ndjson,
        fixtures,
        stripe,
        checkpoint,
        concurrency,
    } = command
    else {
        return Err("not an import".into());
    };
    let source = match (ndjson, fixtures, stripe) {
        (Some(path), _, _) => Source::Ndjson(path),
        (None, Some(path), _) => Source::Fixtures(path),
        _ => Source::Stripe,
    };
    let template = match source {
        Source::Stripe => "{elapsed_precise} {pos} Stripe customers ({per_sec}) {msg}",
        _ => "{elapsed_precise} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left) {msg}",
    };
    let progress = indicatif::ProgressBar::new(0)
        .with_style(indicatif::ProgressStyle::with_template(template)?.progress_chars("=> "));
    let options = import::Options {
        checkpoint,
        concurrency: usize::from(concurrency),
    };
    let outcome = import::import(store, payments, &source, &options, &progress).await;
    progress.finish_and_clear();
    let report = outcome?;
    for problem in &report.problems {
        eprintln!("import: {}: {}", problem.record, problem.reason);
    }
    let resumed = match report.resumed_at {
        0 => String::new(),
        n => format!(" (resumed after {n})"),
    };
    eprintln!(
        "import: {} records{resumed} in {:.1} s ({:.0} customers/s): {} created, {} existing, \
         {} invalid, {} skipped; {} members added, {} left out (member elsewhere)",
        report.records,
        report.elapsed.as_secs_f64(),
        report.rate(),
        report.created,
        report.existing,
        report.invalid,
        report.skipped,
        report.members,
        report.member_conflicts,
    );
    Ok(())
}

/// Wraps `detail` in an EventBridge envelope from the platform and hands it
/// to the platform events' handler.
async fn send_event(
    platform: &Platform,
    region: Option<&str>,
    kind: &str,
    detail: &str,
    id: Option<String>,
) -> Result<(), Error> {
    let detail: serde_json::Value =
        serde_json::from_str(detail).map_err(|e| format!("--detail is not JSON: {e}"))?;
    let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let event = serde_json::json!({
        "version": "0",
        "id": id,
        "detail-type": kind,
        "source": billing::sync::platform::SOURCE,
        "account": "000000000000",
        "time": billing::domain::time::to_seconds(&billing::domain::now()),
        "region": region.unwrap_or("us-east-1"),
        "resources": [],
        "detail": detail,
    });
    match platform.on_event(&event).await {
        Ok(outcome) => {
            println!(
                "{}",
                serde_json::json!({"id": id, "outcome": outcome.as_str()})
            );
            Ok(())
        }
        Err(PlatformError::Rejected(reason)) => {
            Err(format!("event {id} rejected: {reason}").into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Consumes the table's stream until SIGTERM/Ctrl-C (see [`stream::consume`]).
async fn consume_stream(
    deps: &Deps,
    sdk: &aws_config::SdkConfig,
    config: &billing::config::Config,
    interval: u64,
) -> Result<(), Error> {
    let mut builder = aws_sdk_dynamodbstreams::config::Builder::from(sdk);
    if let Some(url) = &config.dynamodb_endpoint {
        builder = builder.endpoint_url(url);
    }
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(builder.build());
    let stop = server::shutdown();
    tokio::pin!(stop);
    let store = deps.store();
    let poller = tokio::select! {
        opened = StreamPoller::open(store.client(), streams, &config.table_name) => opened?,
        () = &mut stop => return Ok(()),
    };
    let cleanup = deps.cleanup().await?;
    // Metrics of this process are the stream consumer's, as in AWS.
    billing::telemetry::metrics::set_function("cleanup-stream");
    tracing::info!(table = %config.table_name, "consuming the table's stream");
    stream::consume(poller, &cleanup, Duration::from_secs(interval.max(1)), stop).await;
    Ok(())
}
