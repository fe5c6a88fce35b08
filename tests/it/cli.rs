//! The `billing-dev` binary, black box: table, seeding, credentials and the real
//! HTTP server, as `make dev` and a second shell use them.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use billing_tests::Env;
use billing_tests::servers::free_port;
use serde_json::{Value, json};

use crate::TestFn;

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        cli_seeds_mints_credentials_and_serves_http,
        cli_rejects_invalid_fixtures,
        cli_manages_api_keys_of_a_deployed_table,
        cli_serves_tokens_of_a_jwks_provider,
        seeded_statuses_stay_under_the_webhook_and_reconcile_without_drift,
    ]
}

/// The `billing-dev` binary beside this test binary.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/debug");
    dir.join("billing-dev")
}

/// `billing-dev` with a fresh table on the test's DynamoDB Local; defaults otherwise.
fn cli(env: &Env, table: &str) -> Command {
    let mut cmd = Command::new(binary());
    cmd.env_clear()
        .env("TABLE_NAME", table)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &env.dynamodb_url)
        .env("STRIPE_API_BASE", &env.stripe_url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run billing-dev");
    assert!(
        out.status.success(),
        "billing-dev failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The JSON a successful run of `cmd` prints.
fn run_json(cmd: &mut Command) -> Value {
    serde_json::from_slice(&run(cmd).stdout).expect("JSON")
}

/// `billing-dev serve` on a free port, once it accepts connections (killed
/// if it does not within 30 s).
async fn serve(mut command: Command) -> (u16, std::process::Child) {
    let port = free_port();
    let mut server = command
        .args(["serve", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let _ = server.kill();
            panic!("serve did not listen");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (port, server)
}

/// One request to the server on `port`.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    billing_tests::net::request(
        &format!("http://127.0.0.1:{port}"),
        method,
        path,
        headers,
        None,
    )
}

async fn cli_seeds_mints_credentials_and_serves_http(env: &'static Env) {
    let table = format!("cli-{}", uuid::Uuid::new_v4().simple());
    run(cli(env, &table).arg("create-table"));
    run(cli(env, &table).arg("create-table")); // idempotent
    let fixtures = std::env::temp_dir().join(format!("{table}.json"));
    let owner = "5f35d2c4-5633-4b16-bbf0-5ca22ef8ea2e";
    std::fs::write(
        &fixtures,
        json!({"customers": [{"id": "a1b2c3d4-5633-4b16-bbf0-5ca22ef8ea2e", "name": "Acme Corp", "tierName": "pro",
            "tierID": "e1f2a3b4-5633-4b16-bbf0-5ca22ef8ea2e", "subscriptionStatus": "active",
            "createdAt": "2026-02-03T09:14:22Z", "ownerUserID": owner,
            "members": [{"userID": owner, "role": "owner"}, {"userID": "9de7068a-2422-46c1-b718-4a95a91cd559", "role": 1}]}]})
        .to_string(),
    )
    .expect("write fixtures");
    run(cli(env, &table).arg("seed").arg("--file").arg(&fixtures));
    run(cli(env, &table).args(["seed", "--demo"]));
    let _ = std::fs::remove_file(&fixtures);

    let token = String::from_utf8(
        run(cli(env, &table).args(["token", "--sub", owner, "--role", "billing_admin"])).stdout,
    )
    .unwrap();
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "prints only a JWT");
    let viewer = String::from_utf8(
        run(cli(env, &table).args(["token", "--sub", owner, "--role", "viewer"])).stdout,
    )
    .unwrap();
    let key: Value =
        run_json(cli(env, &table).args(["api-key", "--user", owner, "--role", "billing_admin"]));
    let (api_key, api_secret) = (
        key["apiKey"].as_str().unwrap().to_owned(),
        key["apiSecret"].as_str().unwrap().to_owned(),
    );

    let (port, mut server) = serve(cli(env, &table)).await;
    let bearer = format!("Bearer {token}");
    let base = billing_tests::app::API;
    let (status, body) = http(
        port,
        "GET",
        &format!("{base}/customers?limit=100"),
        &[("Authorization", &bearer)],
    );
    assert_eq!(status, 200);
    assert_eq!(body["items"], 25, "1 fixture + 24 demo customers");
    let (status, body) = http(
        port,
        "GET",
        &format!("{base}/customer/a1b2c3d4-5633-4b16-bbf0-5ca22ef8ea2e/members"),
        &[("api-key", &api_key), ("api-secret", &api_secret)],
    );
    assert_eq!((status, body["items"].as_u64()), (200, Some(2)));
    assert_eq!(body["members"][1]["role"], "admin");
    let (status, _) = http(
        port,
        "GET",
        &format!("{base}/customers"),
        &[("Authorization", &format!("Bearer {}", viewer.trim()))],
    );
    assert_eq!(status, 403);
    let (status, body) = http(
        port,
        "DELETE",
        &format!("{base}/customer/a1b2c3d4-5633-4b16-bbf0-5ca22ef8ea2e"),
        &[("Authorization", &bearer)],
    );
    assert_eq!((status, body), (204, Value::Null));
    let (status, body) = http(
        port,
        "PUT",
        &format!("{base}/customers"),
        &[("Authorization", &bearer)],
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );

    run(cli(env, &table).args(["revoke-api-key", &api_key]));
    let (status, _) = http(
        port,
        "GET",
        &format!("{base}/customers"),
        &[("api-key", &api_key), ("api-secret", &api_secret)],
    );
    assert_eq!(status, 401);

    // SIGTERM stops the server cleanly.
    // SAFETY: the PID is our own child, not reaped yet.
    unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.try_wait().expect("wait serve") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = server.kill();
            panic!("serve ignored SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "serve exits 0 on SIGTERM: {status}");
}

async fn cli_rejects_invalid_fixtures(env: &'static Env) {
    let table = format!("cli-{}", uuid::Uuid::new_v4().simple());
    run(cli(env, &table).arg("create-table"));
    let fixtures = std::env::temp_dir().join(format!("{table}.json"));
    std::fs::write(&fixtures, r#"{"customers": [{"id": "not-a-uuid"}]}"#).unwrap();
    let out = cli(env, &table)
        .arg("seed")
        .arg("--file")
        .arg(&fixtures)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&fixtures);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(".json"),
        "names the file"
    );
}

/// `billing-dev --aws-table` as an operator runs it after `sam deploy`: a named
/// profile of the standard credential chain, no local defaults.
async fn cli_manages_api_keys_of_a_deployed_table(env: &'static Env) {
    let table = format!("cli-{}", uuid::Uuid::new_v4().simple());
    run(cli(env, &table).arg("create-table"));
    let dir = std::env::temp_dir().join(format!("aws-{table}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("config"), "[profile ops]\nregion = us-east-1\n").unwrap();
    std::fs::write(
        dir.join("credentials"),
        "[ops]\naws_access_key_id = AKIDOPERATOR\naws_secret_access_key = operator-secret\n",
    )
    .unwrap();
    let operator_on = |profile: &str, table: &str| {
        let mut cmd = Command::new(binary());
        cmd.env_clear()
            .env("AWS_CONFIG_FILE", dir.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("credentials"))
            .env("AWS_PROFILE", profile)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .args(["--aws-table", table]);
        cmd
    };
    let operator = |profile: &str| operator_on(profile, &table);
    let remote = |args: &[&str]| {
        let mut cmd = operator("ops");
        cmd.args(["--endpoint-url", &env.dynamodb_url]).args(args);
        cmd
    };
    let user = "5f35d2c4-5633-4b16-bbf0-5ca22ef8ea2e";
    // `api-key` for `user` with `role`, lasting `expires_in` seconds if given.
    let api_key = |user: &str, role: &str, expires_in: Option<&str>| {
        let mut cmd = remote(&["api-key", "--user", user, "--role", role]);
        if let Some(seconds) = expires_in {
            cmd.args(["--expires-in", seconds]);
        }
        cmd
    };
    // Seconds from now to an issued key's `expiresAt`.
    let lifetime_of = |issued: &Value| {
        chrono::DateTime::parse_from_rfc3339(issued["expiresAt"].as_str().expect("expiresAt"))
            .unwrap()
            .timestamp()
            - billing::domain::now().timestamp()
    };

    // GIVEN two keys, one expiring in an hour and one given no lifetime
    let issued: Value = run_json(&mut api_key(user, "billing_admin", Some("3600")));
    let expiring = issued["apiKey"].as_str().expect("apiKey").to_owned();
    assert!(issued["apiSecret"].as_str().is_some_and(|s| s.len() >= 40));
    let expires_at = issued["expiresAt"].as_str().expect("expiresAt");
    let lifetime = lifetime_of(&issued);
    assert!((3590..=3600).contains(&lifetime), "{lifetime}");
    let forever: Value = run_json(&mut api_key(user, "support", None));
    // THEN the second lives the longest a key may: API_KEY_MAX_DAYS, 90 days
    let ninety_days = 90 * 86_400;
    assert!((ninety_days - 10..=ninety_days).contains(&lifetime_of(&forever)));
    // AND a longer lifetime is refused, naming the limit
    let out = api_key(user, "support", Some("7776001")).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("API_KEY_MAX_DAYS") && stderr.contains("90 days"),
        "{stderr}"
    );
    // AND with API_KEY_MAX_DAYS=1 two days are refused, one is the default
    let out = api_key(user, "support", Some("172800"))
        .env("API_KEY_MAX_DAYS", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 days"));
    let day: Value = run_json(api_key(user, "support", None).env("API_KEY_MAX_DAYS", "1"));
    assert!((86_390..=86_400).contains(&lifetime_of(&day)));
    // AND a key of another user
    let other = "9de7068a-2422-46c1-b718-4a95a91cd559";
    let others: Value = run_json(&mut api_key(other, "billing_admin", None));

    // WHEN they are listed, THEN every field but the secret is shown
    let listed = run(&mut remote(&["list-api-keys"])).stdout;
    let text = String::from_utf8(listed).unwrap();
    for secret in [&issued["apiSecret"], &forever["apiSecret"]] {
        assert!(!text.contains(secret.as_str().unwrap()), "no secret listed");
    }
    assert!(
        !text.to_lowercase().contains("hash"),
        "no secret hash listed"
    );
    let keys: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(keys.len(), 4);
    let entry = keys
        .iter()
        .find(|k| k["apiKey"] == expiring.as_str())
        .unwrap();
    assert_eq!(entry["userID"], user);
    assert_eq!(entry["roles"], json!(["billing_admin"]));
    assert_eq!(entry["expiresAt"], expires_at);
    assert!(entry["createdAt"].as_str().is_some());
    assert_eq!(entry["revokedAt"], Value::Null);

    // AND a revoked key is listed as revoked
    run(&mut remote(&["revoke-api-key", &expiring]));
    let keys: Vec<Value> =
        serde_json::from_slice(&run(&mut remote(&["list-api-keys"])).stdout).unwrap();
    let entry = keys
        .iter()
        .find(|k| k["apiKey"] == expiring.as_str())
        .unwrap();
    assert!(entry["revokedAt"].as_str().is_some());

    // WHEN every key of the user is revoked
    let out = run(&mut remote(&["revoke-api-key", "--user", user]));
    let mut revoked: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    revoked.sort();
    let mut expected = vec![
        forever["apiKey"].as_str().unwrap().to_owned(),
        day["apiKey"].as_str().unwrap().to_owned(),
    ];
    expected.sort();
    // THEN exactly their unrevoked keys are, the other user's stays live
    assert_eq!(revoked, expected);
    let keys: Vec<Value> =
        serde_json::from_slice(&run(&mut remote(&["list-api-keys"])).stdout).unwrap();
    for key in &keys {
        assert_eq!(key["revokedAt"].is_string(), key["userID"] == user, "{key}");
    }
    assert!(keys.iter().any(|k| k["apiKey"] == others["apiKey"]));
    // AND a second run finds nothing left to revoke
    let out = run(&mut remote(&["revoke-api-key", "--user", user]));
    assert_eq!(
        serde_json::from_slice::<Vec<String>>(&out.stdout).unwrap(),
        Vec::<String>::new()
    );
    // AND neither a key nor --user, or both, is a usage error
    assert!(
        !remote(&["revoke-api-key"])
            .output()
            .unwrap()
            .status
            .success()
    );
    assert!(
        !remote(&["revoke-api-key", &expiring, "--user", user])
            .output()
            .unwrap()
            .status
            .success()
    );

    // An endpoint in the environment is refused rather than silently used.
    let out = operator("ops")
        .env("AWS_ENDPOINT_URL_DYNAMODB", &env.dynamodb_url)
        .arg("list-api-keys")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AWS_ENDPOINT_URL_DYNAMODB"));
    // No credentials: a clear error, no fallback to the local stack's.
    let out = operator("nobody")
        .args(["--region", "us-east-1", "--endpoint-url", &env.dynamodb_url])
        .arg("list-api-keys")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("credentials"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nor without a region.
    let out = operator("nobody")
        .args(["--endpoint-url", &env.dynamodb_url, "list-api-keys"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("region"));
    // A table that does not exist is named.
    let out = operator_on("ops", "no-such-table")
        .args(["--endpoint-url", &env.dynamodb_url])
        .arg("list-api-keys")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-table"), "{stderr}");
    // Only the key commands run against AWS.
    let out = remote(&["seed", "--demo"]).output().unwrap();
    assert!(!out.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `make dev` with `JWT_JWKS_URL`: the server verifies that provider's tokens
/// and no longer accepts the development key's.
async fn cli_serves_tokens_of_a_jwks_provider(env: &'static Env) {
    use billing_tests::jwks::{JwksServer, SigningKey};
    let table = format!("cli-{}", uuid::Uuid::new_v4().simple());
    run(cli(env, &table).arg("create-table"));
    let key = SigningKey::load("rsa-1", "dev-idp", jsonwebtoken::Algorithm::RS256, true);
    let jwks = JwksServer::start(&[&key], None).await;
    let with_jwks = |cmd: &mut Command| {
        cmd.env("JWT_JWKS_URL", &jwks.url)
            .env("JWT_ISSUER", "https://idp.dev.test")
            .env("JWT_AUDIENCE", "billing-admin-api")
            .env("JWT_ROLES_CLAIM", "realm_access.roles");
    };
    let mut token_cmd = cli(env, &table);
    with_jwks(&mut token_cmd);
    let out = token_cmd
        .args(["token", "--sub", "u", "--role", "billing_admin"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "no dev tokens with a JWKS provider");
    let dev_token = String::from_utf8(
        run(cli(env, &table).args(["token", "--sub", "u", "--role", "billing_admin"])).stdout,
    )
    .unwrap();

    let mut command = cli(env, &table);
    with_jwks(&mut command);
    let (port, mut server) = serve(command).await;
    let now = billing::domain::now().timestamp();
    let claims = |roles: &[&str]| {
        json!({"sub": "u", "iss": "https://idp.dev.test", "aud": ["account", "billing-admin-api"],
            "iat": now, "exp": now + 300, "realm_access": {"roles": roles}})
    };
    let cases = [
        (key.sign(&claims(&["billing_admin"])), 200),
        (key.sign(&claims(&["offline_access"])), 403),
        (dev_token.trim().to_owned(), 401),
    ];
    let path = format!("{}/customers", billing_tests::app::API);
    for (token, want) in cases {
        let path = path.clone();
        let (status, _) = tokio::task::spawn_blocking(move || {
            http(
                port,
                "GET",
                &path,
                &[("Authorization", &format!("Bearer {token}"))],
            )
        })
        .await
        .expect("request");
        assert_eq!(status, want);
    }
    assert_eq!(jwks.fetches(), 1, "one fetch, then the cache");
    let _ = server.kill();
    let _ = server.wait();
}

/// A server process, killed (by its PID) and reaped when dropped, the test
/// failing or not.
struct StopOnDrop(std::process::Child);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The webhook secret of the seeding test's server and localstripe webhook.
const WEBHOOK_SECRET: &str = "whsec_fixtures_test";

/// The statuses a fixture can name and the subscription's Stripe then holds.
const SEEDED: [&str; 7] = [
    "active",
    "trialing",
    "past_due",
    "unpaid",
    "canceled",
    "incomplete",
    "paused",
];

/// A loopback relay between localstripe and the server's webhook: forwards
/// each delivery as it came (body and signature) and notes the Stripe customer
/// it is about once the server has answered. Stopped by the test.
struct Relay {
    url: String,
    answered: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: String) -> Self {
        let answered = Arc::new(Mutex::new(Vec::new()));
        let seen = answered.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (target, seen) = (target.clone(), seen.clone());
            async move {
                let signature = req
                    .headers()
                    .get("stripe-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                    .await
                    .unwrap_or_default();
                let body = String::from_utf8_lossy(&body).into_owned();
                let about: Value = serde_json::from_str(&body).unwrap_or_default();
                let about = about["data"]["object"]["customer"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let (status, _) = tokio::task::spawn_blocking(move || {
                    billing_tests::net::request(
                        &format!("http://{target}"),
                        "POST",
                        billing::sync::webhook::PATH,
                        &[
                            ("Content-Type", "application/json"),
                            ("Stripe-Signature", &signature),
                        ],
                        Some(&body),
                    )
                })
                .await
                .expect("relay");
                seen.lock().unwrap().push(about);
                axum::http::StatusCode::from_u16(status).unwrap_or_default()
            }
        });
        let (url, task) = billing_tests::net::serve(app).await;
        Self {
            url,
            answered,
            task,
        }
    }

    /// Deliveries answered so far about any of `customers`.
    fn answered_about(&self, customers: &[String]) -> usize {
        let answered = self.answered.lock().unwrap();
        answered.iter().filter(|c| customers.contains(c)).count()
    }
}

/// Points localstripe's webhook `id` at `url` for the subscription events
/// (none: off).
fn register_webhook(env: &Env, id: &str, url: Option<&str>) {
    let events: &[&str] = match url {
        Some(_) => &[
            "customer.subscription.created",
            "customer.subscription.updated",
            "customer.subscription.deleted",
            "customer.subscription.paused",
            "customer.subscription.resumed",
            "customer.deleted",
        ],
        None => &[],
    };
    env.register_stripe_webhook(
        id,
        url.unwrap_or("http://127.0.0.1:9/off"),
        WEBHOOK_SECRET,
        events,
    );
}

async fn seeded_statuses_stay_under_the_webhook_and_reconcile_without_drift(env: &'static Env) {
    // GIVEN a running server with its webhook secret, localstripe posting its
    // subscription events to it (through a relay that notes each answer)
    let table = format!("cli-{}", uuid::Uuid::new_v4().simple());
    run(cli(env, &table).arg("create-table"));
    let mut command = cli(env, &table);
    command.env("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET);
    let (port, server) = serve(command).await;
    let server = StopOnDrop(server);
    let relay = Relay::start(format!("127.0.0.1:{port}")).await;
    let hook = format!("fixtures-{}", uuid::Uuid::new_v4().simple());
    register_webhook(env, &hook, Some(&relay.url));

    // WHEN a fixture of each status is seeded into it
    let owner = |i: usize| format!("5f35d2c4-5633-4b16-bbf0-{:012x}", 0x5ca2_2ef8_ea00 + i);
    let ids: Vec<String> = (0..SEEDED.len())
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let customers: Vec<Value> = SEEDED
        .iter()
        .zip(&ids)
        .enumerate()
        .map(|(i, (status, id))| {
            json!({"id": id, "name": format!("Seeded {status}"), "tierName": "pro",
                "tierID": "e1f2a3b4-5633-4b16-bbf0-5ca22ef8ea2e", "subscriptionStatus": status,
                "createdAt": format!("2026-02-03T09:14:{i:02}Z"), "ownerUserID": owner(i),
                "members": [{"userID": owner(i), "role": "owner"}]})
        })
        .collect();
    let fixtures = std::env::temp_dir().join(format!("{table}.json"));
    std::fs::write(&fixtures, json!({ "customers": customers }).to_string()).unwrap();
    run(cli(env, &table).arg("seed").arg("--file").arg(&fixtures));
    let _ = std::fs::remove_file(&fixtures);

    // THEN Stripe holds each subscription in its fixture's status
    let store = billing::store::Store::new(env.dynamodb_client(), table.clone());
    let mut stripe_ids = Vec::new();
    for (id, status) in ids.iter().zip(SEEDED) {
        let record = store
            .find_customer(&billing::domain::CustomerId::parse(id).unwrap())
            .await
            .unwrap()
            .expect("seeded");
        let cus = record.stripe_customer_id.expect("a Stripe customer");
        let sub = record.stripe_subscription_id.expect("a subscription");
        let (code, list) = env.stripe_call(
            "GET",
            &format!("/v1/subscriptions?customer={cus}&status=all&limit=10"),
        );
        assert_eq!(code, 200, "{list}");
        let subs: Vec<(&str, &str)> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].as_str().unwrap(), s["status"].as_str().unwrap()))
            .collect();
        assert_eq!(subs, vec![(sub.as_str(), status)], "{status}");
        stripe_ids.push(cus);
    }

    // AND once the server has answered every event about them (a creation for
    // each, and the change to its status for all but `active`)...
    let expected = 1 + 2 * (SEEDED.len() - 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while relay.answered_about(&stripe_ids) < expected {
        assert!(
            Instant::now() < deadline,
            "{} of {expected} events answered",
            relay.answered_about(&stripe_ids)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    register_webhook(env, &hook, None);
    relay.task.abort();

    // ...every customer still has the status it was seeded with
    let token = String::from_utf8(
        run(cli(env, &table).args(["token", "--sub", &owner(0), "--role", "billing_admin"])).stdout,
    )
    .unwrap();
    let bearer = format!("Bearer {}", token.trim());
    let base = billing_tests::app::API;
    for (id, status) in ids.iter().zip(SEEDED) {
        let (code, body) = http(
            port,
            "GET",
            &format!("{base}/customer/{id}"),
            &[("Authorization", &bearer)],
        );
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["subscriptionStatus"], status, "{body}");
        let (_, page) = http(
            port,
            "GET",
            &format!("{base}/customers?status={status}"),
            &[("Authorization", &bearer)],
        );
        assert_eq!(page["items"], 1, "{status}: {page}");
    }
    drop(server);

    // AND the reconciliation finds nothing drifted
    let out = run(cli(env, &table).arg("reconcile"));
    let (drifts, summary) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(drifts, "", "no drift line");
    assert!(
        summary.contains("7 checked, 0 drifted, 0 repaired"),
        "{summary}"
    );
}
