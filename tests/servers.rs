//! Starting and stopping the local servers the tests use.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// How long a server may take to accept connections.
const STARTUP: Duration = Duration::from_secs(90);

/// One running server, stopped by PID on `stop` or drop.
pub struct Server {
    name: &'static str,
    child: Child,
    /// Its base URL on loopback.
    pub url: String,
}

impl Server {
    /// Runs `script PORT` from `infra/` and waits until the port accepts connections.
    pub fn start(name: &'static str, script: &str, log_dir: &Path) -> Self {
        let port = free_port();
        let log =
            std::fs::File::create(log_dir.join(format!("{name}.log"))).expect("create server log");
        let child = Command::new(repo_root().join("infra").join(script))
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let mut server = Self {
            name,
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + STARTUP;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "{name} exited during startup ({status}); see {}",
                    log_dir.join(format!("{name}.log")).display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not listen within {STARTUP:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Stops the server: SIGTERM to its PID, then SIGKILL if it lingers.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: `pid` is our own child, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} ignored SIGTERM; killing", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The servers and clients every test shares.
pub struct Env {
    servers: Mutex<Vec<Server>>,
    /// DynamoDB Local's URL.
    pub dynamodb_url: String,
    /// moto's URL (Secrets Manager, EventBridge, SQS).
    pub moto_url: String,
    /// localstripe's URL.
    pub stripe_url: String,
    /// SDK configuration with fixed local credentials.
    pub sdk: SdkConfig,
    /// The runtime every test runs on.
    pub runtime: tokio::runtime::Runtime,
    /// Where server logs go.
    pub log_dir: PathBuf,
}

impl Env {
    /// Installs what is missing and starts the servers.
    pub fn start() -> Self {
        let root = repo_root();
        let status = Command::new(root.join("infra/install.sh"))
            .status()
            .expect("run infra/install.sh");
        assert!(status.success(), "infra/install.sh failed");
        let log_dir = root.join("target/test-logs");
        std::fs::create_dir_all(&log_dir).expect("create target/test-logs");
        let dynamodb = Server::start("dynamodb-local", "run-dynamodb-local.sh", &log_dir);
        let moto = Server::start("moto", "run-moto.sh", &log_dir);
        let stripe = Server::start("localstripe", "run-localstripe.sh", &log_dir);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let sdk = runtime.block_on(
            aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                    "local", "local", None, None, "tests",
                ))
                .load(),
        );
        Self {
            dynamodb_url: dynamodb.url.clone(),
            moto_url: moto.url.clone(),
            stripe_url: stripe.url.clone(),
            servers: Mutex::new(vec![dynamodb, moto, stripe]),
            sdk,
            runtime,
            log_dir,
        }
    }

    /// Stops every server, each by its PID.
    pub fn stop(&self) {
        let mut servers = self
            .servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        servers.iter_mut().for_each(Server::stop);
    }

    /// Stripe at localstripe.
    pub fn payments(&self) -> billing::payments::Payments {
        self.payments_at(&self.stripe_url)
    }

    /// Stripe at any URL (a fault server, a closed port).
    pub fn payments_at(&self, url: &str) -> billing::payments::Payments {
        let key = secrecy::SecretString::from("sk_test_local");
        billing::payments::Payments::new(url, &key).expect("stripe client")
    }

    /// The Stripe customer as localstripe holds it; `None` once deleted.
    pub async fn stripe_customer(&self, id: &str) -> Option<serde_json::Value> {
        let (status, body) = self.stripe_get(&format!("/v1/customers/{id}")).await;
        (status == 200).then_some(body)
    }

    /// Subscriptions of a Stripe customer that are not canceled, the customer deleted
    /// or not. localstripe answers 404 to a listing by a deleted customer (and keeps
    /// that customer's subscriptions active), so every subscription is listed, page
    /// by page, and filtered here.
    pub async fn live_subscriptions(&self, customer: &str) -> Vec<serde_json::Value> {
        let mut live = Vec::new();
        let mut after = String::new();
        loop {
            let (status, body) = self
                .stripe_get(&format!("/v1/subscriptions?status=all&limit=100{after}"))
                .await;
            assert_eq!(status, 200, "list subscriptions: {body}");
            let page = body["data"].as_array().cloned().unwrap_or_default();
            let last = page
                .last()
                .and_then(|s| s["id"].as_str())
                .map(str::to_owned);
            live.extend(
                page.into_iter()
                    .filter(|s| s["customer"] == customer && s["status"] != "canceled"),
            );
            match (body["has_more"].as_bool(), last) {
                (Some(true), Some(last)) => after = format!("&starting_after={last}"),
                _ => return live,
            }
        }
    }

    /// One call to localstripe with the test key (blocking: from sync code or
    /// a test's own task).
    pub fn stripe_call(&self, method: &str, path: &str) -> (u16, serde_json::Value) {
        crate::net::request(
            &self.stripe_url,
            method,
            path,
            &[("Authorization", "Bearer sk_test_local")],
            None,
        )
    }

    /// Points localstripe's webhook `id` at `url`, signed with `secret`, for
    /// `events` (none: off).
    pub fn register_stripe_webhook(&self, id: &str, url: &str, secret: &str, events: &[&str]) {
        let body = serde_json::json!({"url": url, "secret": secret, "events": events}).to_string();
        let (status, reply) = crate::net::request(
            &self.stripe_url,
            "POST",
            &format!("/_config/webhooks/{id}"),
            &[("Content-Type", "application/json")],
            Some(&body),
        );
        assert_eq!(status, 200, "{reply}");
    }

    async fn stripe_get(&self, path: &str) -> (u16, serde_json::Value) {
        let (base, path) = (self.stripe_url.clone(), path.to_owned());
        tokio::task::spawn_blocking(move || {
            crate::net::request(
                &base,
                "GET",
                &path,
                &[("Authorization", "Bearer sk_test_local")],
                None,
            )
        })
        .await
        .expect("localstripe request")
    }

    /// A DynamoDB client for DynamoDB Local. Without the functions' operation
    /// timeouts (`billing::aws::dynamodb_timeouts`, 3 s per attempt, 6 s per call):
    /// DynamoDB Local queues conflicting transactions, and under the suite's
    /// concurrent races (4 test threads) some take seconds, which those timeouts
    /// would turn into `database_error`s that DynamoDB itself would not cause.
    pub fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        self.dynamodb_client_at(&self.dynamodb_url)
    }

    /// [`Env::dynamodb_client`] with another endpoint (a fault proxy in front
    /// of DynamoDB Local).
    pub fn dynamodb_client_at(&self, url: &str) -> aws_sdk_dynamodb::Client {
        let timeouts = billing::aws::TimeoutConfig::builder()
            .connect_timeout(billing::aws::DYNAMODB_CONNECT_TIMEOUT)
            .build();
        billing::aws::dynamodb_with_timeouts(&self.sdk, Some(url), timeouts)
    }
}

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A port free on loopback right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}
