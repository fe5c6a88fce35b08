//! `billing-dev`: run and feed the local stack.

mod reindex;
mod remote;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use billing::api::State;
use billing::auth::{issue_api_key, sign};
use billing::cleanup::Cleanup;
use billing::seed::{Fixtures, demo, seed};
use billing::startup::Dependencies;
use billing::store::Store;
use billing_dev::local;
use billing_dev::stream::StreamPoller;
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
    /// SSO). Only the API key commands and reindex run this way.
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
        /// The user the key acts as.
        #[arg(long)]
        user: String,
        /// A role to grant; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Lifetime in seconds; without it the key lives until revoked.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_KEY_LIFETIME))]
        expires_in: Option<u64>,
    },
    /// List the API keys without their secrets: a JSON array of
    /// {apiKey, userID, roles, createdAt, expiresAt, revokedAt}.
    ListApiKeys,
    /// Run the stream consumer: poll the table's stream and feed the Lambda's handler.
    ConsumeStream {
        /// Seconds between polls.
        #[arg(long, default_value_t = 1)]
        interval: u64,
    },
    /// Revoke an API key.
    RevokeApiKey {
        /// The key id (`apiKey`).
        key: String,
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
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Longest API key lifetime `--expires-in` accepts: ten years.
const MAX_KEY_LIFETIME: u64 = 10 * 366 * 86_400;

#[tokio::main]
async fn main() -> ExitCode {
    billing::telemetry::init();
    let cli = Cli::parse();
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
        Command::ApiKey { .. } | Command::ListApiKeys | Command::RevokeApiKey { .. } => {
            target.store().await?
        }
        Command::Reindex { checkpoint } => {
            return reindex::run(&target.store().await?, checkpoint.as_deref()).await;
        }
        _ => {
            return Err(
                "--aws-table runs only api-key, list-api-keys, revoke-api-key and reindex".into(),
            );
        }
    };
    keys(&store, command).await
}

/// Issues, lists or revokes API keys.
async fn keys(store: &Store, command: Command) -> Result<(), Error> {
    match command {
        Command::ApiKey {
            user,
            roles,
            expires_in,
        } => {
            let expires_at = expires_in
                .map(|secs| i64::try_from(secs).map(chrono::Duration::seconds))
                .transpose()?
                .map(|lifetime| billing::domain::now() + lifetime);
            let issued = issue_api_key(&user, roles, expires_at)?;
            store.put_api_key(&issued.key_id, &issued.record).await?;
            println!(
                "{}",
                serde_json::json!({
                    "apiKey": issued.key_id,
                    "apiSecret": issued.secret,
                    "expiresAt": expires_at.as_ref().map(billing::domain::time::to_seconds),
                })
            );
        }
        Command::ListApiKeys => {
            println!(
                "{}",
                serde_json::to_string_pretty(&store.list_api_keys().await?)?
            );
        }
        Command::RevokeApiKey { key } => {
            if !store.revoke_api_key(&key).await? {
                return Err(format!("no API key {key}").into());
            }
            eprintln!("revoked {key}");
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
    let deps = Dependencies::build(&config, &sdk).await?;
    let store = deps.store.clone();
    match command {
        Command::Serve { port } => {
            let hooks = deps.webhook_secrets.clone().map(|secrets| {
                billing::sync::webhook::Webhooks::new(deps.store.clone(), secrets)
            });
            server::serve(State::try_from(deps)?, hooks, port).await?
        }
        Command::ConsumeStream { interval } => {
            consume_stream(deps, &sdk, &config, interval).await?
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
            let report = seed(&store, deps.payments.as_ref(), &fixtures).await?;
            eprintln!(
                "seeded {} customers and {} members ({} already existed)",
                report.created, report.members, report.existing
            );
        }
        command
        @ (Command::ApiKey { .. } | Command::ListApiKeys | Command::RevokeApiKey { .. }) => {
            keys(&store, command).await?
        }
        Command::Reindex { checkpoint } => reindex::run(&store, checkpoint.as_deref()).await?,
        Command::Token { .. } => {}
    }
    Ok(())
}

/// Polls until SIGTERM/Ctrl-C; a batch that fails is retried on the next poll.
async fn consume_stream(
    deps: Dependencies,
    sdk: &aws_config::SdkConfig,
    config: &billing::config::Config,
    interval: u64,
) -> Result<(), Error> {
    let mut builder = aws_sdk_dynamodbstreams::config::Builder::from(sdk);
    if let Some(url) = &config.dynamodb_endpoint {
        builder = builder.endpoint_url(url);
    }
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(builder.build());
    let mut poller = StreamPoller::open(deps.store.client(), streams, &config.table_name).await?;
    let cleanup = Cleanup::from(deps);
    // Metrics of this process are the stream consumer's, as in AWS.
    billing::telemetry::metrics::set_function("cleanup-stream");
    let mut pending = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(interval.max(1)));
    tracing::info!(table = %config.table_name, "consuming the table's stream");
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = server::shutdown() => return Ok(()),
        }
        match poller.poll().await {
            Ok(events) => pending.extend(events),
            Err(err) => tracing::warn!(error = %err, "stream poll failed"),
        }
        while let Some(event) = pending.first() {
            if let Err(err) = cleanup.on_stream(event).await {
                tracing::warn!(error = %err, "stream batch failed; retrying on the next poll");
                break;
            }
            pending.remove(0);
        }
    }
}
