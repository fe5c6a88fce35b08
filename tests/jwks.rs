//! An identity provider for the tests: signing keys (tests/keys) and a JWKS
//! server on 127.0.0.1 whose document, `Cache-Control` and availability a test
//! changes while it runs, and which counts its fetches.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A signing key with its `kid` and the JWK that publishes its public half.
#[derive(Clone)]
pub struct SigningKey {
    /// Key id.
    pub kid: String,
    /// The algorithm it signs with.
    pub alg: Algorithm,
    /// Private half.
    pub encoding: EncodingKey,
    /// Public half as a JWK (with `kid`, `use: sig` and `alg`).
    pub jwk: Value,
}

/// A test key file by name (`rsa-1`, `rsa-2`, `ec-p256`, `ec-p384`, `ed25519`).
fn pem(name: &str) -> Vec<u8> {
    let path = crate::servers::repo_root()
        .join("tests/keys")
        .join(format!("{name}.pem"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl SigningKey {
    /// The key in `tests/keys/{file}.pem`, published under `kid` for `alg`;
    /// `publish_alg: false` leaves `alg` out of the JWK.
    pub fn load(file: &str, kid: &str, alg: Algorithm, publish_alg: bool) -> Self {
        let bytes = pem(file);
        let encoding = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&bytes),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&bytes),
            _ => EncodingKey::from_rsa_pem(&bytes),
        }
        .expect("test key");
        let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&encoding, alg).expect("JWK"))
            .expect("JWK JSON");
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        if !publish_alg {
            jwk.as_object_mut().map(|o| o.remove("alg"));
        }
        Self {
            kid: kid.to_owned(),
            alg,
            encoding,
            jwk,
        }
    }

    /// A token of `claims` signed with this key, its `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        self.sign_with(header, claims)
    }

    /// A token of `claims` with the given header, signed with this key.
    pub fn sign_with(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

/// What the server answers.
struct Published {
    keys: Vec<Value>,
    max_age: Option<u64>,
    up: bool,
    fetches: u64,
}

/// A JWKS server on 127.0.0.1; stopped when dropped.
pub struct JwksServer {
    /// The document's URL.
    pub url: String,
    state: Arc<Mutex<Published>>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    /// Serves `keys` at `/.well-known/jwks.json` with `Cache-Control: max-age`
    /// when given.
    pub async fn start(keys: &[&SigningKey], max_age: Option<u64>) -> Self {
        let state = Arc::new(Mutex::new(Published {
            keys: keys.iter().map(|k| k.jwk.clone()).collect(),
            max_age,
            up: true,
            fetches: 0,
        }));
        let app = axum::Router::new()
            .route("/.well-known/jwks.json", axum::routing::get(document))
            .with_state(state.clone());
        let (base, task) = crate::net::serve(app).await;
        Self {
            url: format!("{base}/.well-known/jwks.json"),
            state,
            task,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Published) -> T) -> T {
        f(&mut self.state.lock().expect("JWKS state"))
    }

    /// Publishes these keys from now on.
    pub fn publish(&self, keys: &[&SigningKey]) {
        self.with(|p| p.keys = keys.iter().map(|k| k.jwk.clone()).collect());
    }

    /// Answers 503 (down) or the document (up).
    pub fn set_up(&self, up: bool) {
        self.with(|p| p.up = up);
    }

    /// Requests served so far, failed ones included.
    pub fn fetches(&self) -> u64 {
        self.with(|p| p.fetches)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn document(State(state): State<Arc<Mutex<Published>>>) -> Response {
    let (up, keys, max_age) = {
        let mut p = state.lock().expect("JWKS state");
        p.fetches += 1;
        (p.up, p.keys.clone(), p.max_age)
    };
    if !up {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let body = json!({ "keys": keys }).to_string();
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(Ok(value)) = max_age.map(|seconds| format!("public, max-age={seconds}").parse()) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}
