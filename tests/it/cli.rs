//! The `billing-dev` binary, black box: table, seeding, credentials and the real
//! HTTP server, as `make dev` and a second shell use them.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use billing_tests::Env;
use billing_tests::servers::free_port;
use serde_json::{Value, json};

use crate::TestFn;

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        cli_seeds_mints_credentials_and_serves_http,
        cli_rejects_invalid_fixtures
    ]
}

fn binary() -> PathBuf {
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
    let key: Value = serde_json::from_slice(
        &run(cli(env, &table).args(["api-key", "--user", owner, "--role", "billing_admin"])).stdout,
    )
    .unwrap();
    let (api_key, api_secret) = (
        key["apiKey"].as_str().unwrap().to_owned(),
        key["apiSecret"].as_str().unwrap().to_owned(),
    );

    let port = free_port();
    let mut server = cli(env, &table)
        .args(["serve", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "serve did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
