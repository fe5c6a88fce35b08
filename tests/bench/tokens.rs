//! Warm-path cost of Bearer token verification: one verifier per key source,
//! its JWKS already cached, the same token verified again and again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use billing::auth::{Jwks, JwksOptions, JwtSettings, JwtVerifier};
use billing_tests::jwks::{JwksServer, SigningKey};
use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::harness::Result;
use crate::report::{Latencies, Table};

/// Verifications per case.
const RUNS: usize = 2_000;

/// Verifies tokens of each algorithm through a warm JWKS cache, and EdDSA
/// through the PEM key, and tabulates microseconds per verification.
pub async fn run() -> Result<Table> {
    let settings = JwtSettings::new("https://idp.bench", "billing-admin-api");
    let keys = [
        SigningKey::load("rsa-1", "rs256", Algorithm::RS256, true),
        SigningKey::load("rsa-2", "ps256", Algorithm::PS256, true),
        SigningKey::load("ec-p256", "es256", Algorithm::ES256, true),
        SigningKey::load("ed25519", "eddsa", Algorithm::EdDSA, true),
    ];
    let server = JwksServer::start(&keys.iter().collect::<Vec<_>>(), Some(3600)).await;
    let jwks = Arc::new(Jwks::new(&server.url, JwksOptions::default())?);
    let verifier = JwtVerifier::jwks(jwks, &settings);
    let now = billing::domain::now().timestamp();
    let claims = json!({"sub": "u", "iss": settings.issuer, "aud": settings.audience,
        "iat": now, "exp": now + 3600, "roles": ["billing_admin"]});

    let mut table = Table::new(
        format!("Token verification, warm path ({RUNS} verifications each)"),
        &[
            "key source",
            "alg",
            "p50 µs",
            "p95 µs",
            "mean µs",
            "JWKS fetches (warm-up incl.)",
        ],
    );
    for key in &keys {
        let token = key.sign(&claims);
        let before = server.fetches();
        let (latencies, mean) = time(&verifier, &token).await?;
        table.row(vec![
            "JWKS".to_owned(),
            format!("{:?}", key.alg),
            us(latencies.percentile(50.0)),
            us(latencies.percentile(95.0)),
            us(Some(mean)),
            (server.fetches() - before).to_string(),
        ]);
    }
    let pem = JwtVerifier::new(billing_tests::app::PUBLIC_KEY.as_bytes(), &settings)?;
    let dev_token = billing::auth::sign(
        billing_tests::app::PRIVATE_KEY.as_bytes(),
        &settings,
        "u",
        vec!["billing_admin".into()],
        3600,
    )?;
    let (latencies, mean) = time(&pem, &dev_token).await?;
    table.row(vec![
        "PEM".to_owned(),
        "EdDSA".to_owned(),
        us(latencies.percentile(50.0)),
        us(latencies.percentile(95.0)),
        us(Some(mean)),
        "-".to_owned(),
    ]);
    table.note(format!(
        "JWKS fetches in all: {} (the first verification of the run fetched the document).",
        server.fetches()
    ));
    Ok(table)
}

/// Per-verification latencies after one warm-up, and their mean.
async fn time(verifier: &JwtVerifier, token: &str) -> Result<(Latencies, Duration)> {
    verifier.verify(token).await?;
    let mut latencies = Latencies::default();
    let started = Instant::now();
    for _ in 0..RUNS {
        let t = Instant::now();
        verifier.verify(token).await?;
        latencies.push(t.elapsed());
    }
    Ok((latencies, started.elapsed() / RUNS as u32))
}

fn us(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.1}", d.as_secs_f64() * 1e6),
    )
}
