//! A TCP proxy in front of DynamoDB Local that lets one transaction commit and
//! never delivers DynamoDB's answer to it: the fault of a function that dies
//! right after its commit (the test then drops the request's future).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// What the SDK sends (`X-Amz-Target`) for a transaction.
const TRANSACTION: &[u8] = b"DynamoDB_20120810.TransactWriteItems";

/// The proxy: every request passes, but the answer to the first
/// `TransactWriteItems` is withheld (the transaction itself reaches DynamoDB
/// Local and commits).
pub struct LostCommit {
    /// Its endpoint URL, for a DynamoDB client.
    pub url: String,
    committed: Arc<Notify>,
    task: JoinHandle<()>,
}

impl LostCommit {
    /// Starts it on a free loopback port, in front of `upstream` (DynamoDB
    /// Local's URL).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let committed = Arc::new(Notify::new());
        let tripped = Arc::new(AtomicBool::new(false));
        let signal = committed.clone();
        let task = tokio::spawn(async move {
            // Dropped with the accept loop: every relay stops with the proxy.
            let mut relays = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let fault = Fault {
                    tripped: tripped.clone(),
                    committed: signal.clone(),
                };
                relays.spawn(relay(client, upstream.clone(), fault));
            }
        });
        Self {
            url,
            committed,
            task,
        }
    }

    /// Resolves once the transaction committed and its answer was withheld.
    pub async fn committed(&self) {
        self.committed.notified().await;
    }
}

impl Drop for LostCommit {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The proxy's one fault, shared by its connections.
#[derive(Clone)]
struct Fault {
    tripped: Arc<AtomicBool>,
    committed: Arc<Notify>,
}

/// Relays one connection both ways; on this connection, once the first
/// transaction of the proxy is sent, DynamoDB's answer is never passed on.
async fn relay(client: TcpStream, upstream: String, fault: Fault) {
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let withhold = AtomicBool::new(false);
    let requests = async {
        let mut buf = vec![0u8; 64 * 1024];
        // The end of the previous read: a target split between two reads.
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            tail.extend_from_slice(&buf[..n]);
            if contains(&tail, TRANSACTION) && !fault.tripped.swap(true, Ordering::SeqCst) {
                // HTTP/1.1 without pipelining: the next bytes DynamoDB sends on
                // this connection answer this transaction.
                withhold.store(true, Ordering::SeqCst);
            }
            let keep = tail.len().saturating_sub(TRANSACTION.len());
            tail.drain(..keep);
            if to_server.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let answers = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if withhold.load(Ordering::SeqCst) {
                // DynamoDB answered: the transaction is committed (or refused;
                // the test reads the table). Never pass it on.
                fault.committed.notify_one();
                std::future::pending::<()>().await;
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either side closing ends the relay (the client drops the request).
    tokio::select! {
        () = requests => {}
        () = answers => {}
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
