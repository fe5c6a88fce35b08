//! Stopping what the project starts: `make dev` (`infra/dev.sh`) and the
//! stream consumer end on Ctrl-C (SIGINT) or SIGTERM, promptly and whole,
//! checked by PID and process group.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use billing_tests::Env;
use billing_tests::servers::{Server, free_port, repo_root};
use serde_json::Value;

use crate::TestFn;

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        make_dev_stops_every_process_on_sigint,
        make_dev_stops_every_process_on_sigterm,
        stream_consumer_backs_off_and_stops_on_sigterm_while_dynamodb_is_down,
        stream_consumer_stops_on_sigint_while_dynamodb_is_down,
    ]
}

/// How long `make dev` may take to stop everything it started.
const DEV_STOP: Duration = Duration::from_secs(10);
/// How long the stream consumer may take to stop.
const CONSUMER_STOP: Duration = Duration::from_secs(2);

/// Sends `signal` to the process `pid`, or to the group `-pid`.
fn signal(pid: i32, signal: libc::c_int) {
    // SAFETY: kill(2) with a PID or group of a process this test started.
    unsafe { libc::kill(pid, signal) };
}

/// A process this trial started, SIGKILLed (with its group, when it leads one)
/// and reaped if the trial ends before it exited.
struct Started {
    child: Child,
    group: bool,
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = self.child.id() as i32;
            signal(if self.group { -pid } else { pid }, libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// The PIDs of the live (not zombie) processes of process group `group`.
fn group_members(group: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ')'.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            fields.first() != Some(&"Z") && fields.get(2) == Some(&group.to_string().as_str())
        })
        .collect()
}

/// The lines `child`'s stdout writes, read on a thread.
fn lines_of(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits up to `within` for a line of `lines` that `matches`; returns it, or
/// why there was none.
fn next_line(
    lines: &Receiver<String>,
    within: Duration,
    what: &str,
    mut matches: impl FnMut(&str) -> bool,
) -> Result<String, String> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if matches(&line) => return Ok(line),
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => return Err(format!("no {what} within {within:?}")),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(format!("output ended before {what}"));
            }
        }
    }
}

/// [`next_line`], failing the trial when there is none.
fn wait_for_line(
    lines: &Receiver<String>,
    within: Duration,
    what: &str,
    matches: impl FnMut(&str) -> bool,
) -> String {
    next_line(lines, within, what, matches).unwrap_or_else(|why| panic!("{why}"))
}

/// `infra/dev.sh` in a process group of its own, on free ports, until ready;
/// then `sig` to the whole group, as a terminal's Ctrl-C (or `kill -- -PGID`)
/// sends it. Every process of the group must be gone within [`DEV_STOP`].
fn dev_stops_on(sig: libc::c_int) {
    let root = repo_root();
    let dev = Command::new(root.join("infra/dev.sh"))
        .current_dir(&root)
        .env("PORT", free_port().to_string())
        .env("DYNAMODB_PORT", free_port().to_string())
        .env("STRIPE_PORT", free_port().to_string())
        .env("RUST_LOG", "warn")
        .env_remove("JWT_JWKS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start infra/dev.sh");
    let mut dev = Started {
        child: dev,
        group: true,
    };
    let group = dev.child.id() as i32;
    let lines = lines_of(&mut dev.child);
    wait_for_line(&lines, Duration::from_secs(150), "ready line", |l| {
        l.starts_with("Ready: ")
    });
    let started = group_members(group);
    assert!(
        started.len() >= 5,
        "make dev runs itself, DynamoDB Local, localstripe, the consumer and the server: {started:?}"
    );

    signal(-group, sig);
    let deadline = Instant::now() + DEV_STOP;
    let mut exited = None;
    let mut left = group_members(group);
    while Instant::now() < deadline {
        if exited.is_none() {
            exited = dev.child.try_wait().expect("wait for dev.sh");
        }
        left = group_members(group);
        if exited.is_some() && left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if exited.is_none() || !left.is_empty() {
        signal(-group, libc::SIGKILL);
        panic!(
            "{DEV_STOP:?} after signal {sig}: dev.sh exited: {exited:?}, still running: {left:?}"
        );
    }
}

async fn make_dev_stops_every_process_on_sigint(_env: &'static Env) {
    tokio::task::spawn_blocking(|| dev_stops_on(libc::SIGINT))
        .await
        .expect("dev.sh trial");
}

async fn make_dev_stops_every_process_on_sigterm(_env: &'static Env) {
    tokio::task::spawn_blocking(|| dev_stops_on(libc::SIGTERM))
        .await
        .expect("dev.sh trial");
}

/// A DynamoDB Local of the trial's own (it is stopped mid-trial), a table on it,
/// and `billing-dev consume-stream` reading it (stdout piped: its JSON logs).
fn consumer_with_its_own_dynamodb(
    env: &Env,
    log_name: &'static str,
) -> (Server, Started, Receiver<String>) {
    let dynamodb = Server::start(log_name, "run-dynamodb-local.sh", &env.log_dir);
    let cli = |args: &[&str]| {
        let mut cmd = Command::new(crate::cli::binary());
        cmd.env_clear()
            .env("TABLE_NAME", "shutdown")
            .env("AWS_ENDPOINT_URL_DYNAMODB", &dynamodb.url)
            .env("STRIPE_API_BASE", &env.stripe_url)
            .env("RUST_LOG", "info")
            .args(args)
            .stdin(Stdio::null());
        cmd
    };
    // DynamoDB Local may refuse its first requests while it warms up.
    let created = (0..5).any(|attempt| {
        std::thread::sleep(Duration::from_millis(500 * attempt));
        let out = cli(&["create-table"]).output().expect("create-table");
        out.status.success()
    });
    assert!(created, "create-table failed");
    let consumer = cli(&["consume-stream"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start consume-stream");
    let mut consumer = Started {
        child: consumer,
        group: false,
    };
    let lines = lines_of(&mut consumer.child);
    wait_for_line(&lines, Duration::from_secs(30), "consumer start", |l| {
        l.contains("consuming the table's stream")
    });
    (dynamodb, consumer, lines)
}

/// `sig` to the consumer; it must exit, successfully, within [`CONSUMER_STOP`].
fn consumer_stops_on(consumer: &mut Started, sig: libc::c_int) {
    signal(consumer.child.id() as i32, sig);
    let deadline = Instant::now() + CONSUMER_STOP;
    while Instant::now() < deadline {
        if let Some(status) = consumer.child.try_wait().expect("wait for consume-stream") {
            assert!(status.success(), "consume-stream exited with {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("consume-stream still ran {CONSUMER_STOP:?} after signal {sig}");
}

/// The `retry_in_ms` of a "backing off" log line.
fn retry_in_ms(line: &str) -> Option<u64> {
    let log: Value = serde_json::from_str(line).ok()?;
    let fields = log.get("fields").unwrap_or(&log);
    fields.get("retry_in_ms")?.as_u64()
}

async fn stream_consumer_backs_off_and_stops_on_sigterm_while_dynamodb_is_down(env: &'static Env) {
    tokio::task::spawn_blocking(move || {
        // GIVEN a consumer whose DynamoDB stops
        let (mut dynamodb, mut consumer, lines) =
            consumer_with_its_own_dynamodb(env, "dynamodb-local-backoff");
        dynamodb.stop();
        // THEN it waits longer after each failed poll: 2 s, then 4 s
        let waits: Vec<Option<u64>> = (0..2)
            .map(|_| {
                let line = wait_for_line(&lines, Duration::from_secs(30), "backoff", |l| {
                    l.contains("backing off")
                });
                retry_in_ms(&line)
            })
            .collect();
        assert_eq!(waits, [Some(2000), Some(4000)]);
        // AND WHEN SIGTERM arrives during that wait, it exits within 2 s
        consumer_stops_on(&mut consumer, libc::SIGTERM);
    })
    .await
    .expect("consumer trial");
}

async fn stream_consumer_stops_on_sigint_while_dynamodb_is_down(env: &'static Env) {
    tokio::task::spawn_blocking(move || {
        // GIVEN a consumer whose DynamoDB stops, failing its polls
        let (mut dynamodb, mut consumer, lines) =
            consumer_with_its_own_dynamodb(env, "dynamodb-local-sigint");
        dynamodb.stop();
        wait_for_line(&lines, Duration::from_secs(30), "poll failure", |l| {
            l.contains("stream poll failed")
        });
        // WHEN Ctrl-C arrives as the next poll retries, THEN it exits within 2 s
        std::thread::sleep(Duration::from_millis(1900));
        consumer_stops_on(&mut consumer, libc::SIGINT);
    })
    .await
    .expect("consumer trial");
}
