//! `billing-dev`: run and feed the local stack.

mod local;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use billing::api::State;
use billing::auth::{issue_api_key, sign};
use billing::seed::{Fixtures, demo, seed};
use billing::store::Store;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "billing-dev",
    about = "Run and feed the billing admin API's local stack",
    version
)]
struct Cli {
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
    /// Issue an API key; prints {"apiKey", "apiSecret"}.
    ApiKey {
        /// The user the key acts as.
        #[arg(long)]
        user: String,
        /// A role to grant; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    /// Revoke an API key.
    RevokeApiKey {
        /// The key id (`apiKey`).
        key: String,
    },
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    billing::telemetry::init();
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("billing-dev: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), Error> {
    let config = local::config()?;
    match command {
        Command::Token {
            sub,
            roles,
            expires_in,
        } => {
            let key = local::setting("JWT_SIGNING_KEY").unwrap_or_default();
            println!(
                "{}",
                sign(key.as_bytes(), &config.jwt, &sub, roles, expires_in)?
            );
            Ok(())
        }
        Command::Serve { port } => {
            let sdk = local::sdk(&config).await;
            server::serve(State::build(&config, &sdk).await?, port).await?;
            Ok(())
        }
        other => {
            let sdk = local::sdk(&config).await;
            let store = Store::new(
                billing::aws::dynamodb(&sdk, config.dynamodb_endpoint.as_deref()),
                &config.table_name,
            );
            data_command(other, &store).await
        }
    }
}

async fn data_command(command: Command, store: &Store) -> Result<(), Error> {
    match command {
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
            let report = seed(store, &fixtures).await?;
            eprintln!(
                "seeded {} customers and {} members ({} already existed)",
                report.created, report.members, report.existing
            );
        }
        Command::ApiKey { user, roles } => {
            let issued = issue_api_key(&user, roles)?;
            store.put_api_key(&issued.key_id, &issued.record).await?;
            println!(
                "{}",
                serde_json::json!({ "apiKey": issued.key_id, "apiSecret": issued.secret })
            );
        }
        Command::RevokeApiKey { key } => {
            if !store.revoke_api_key(&key).await? {
                return Err(format!("no API key {key}").into());
            }
            eprintln!("revoked {key}");
        }
        Command::Token { .. } | Command::Serve { .. } => {}
    }
    Ok(())
}
