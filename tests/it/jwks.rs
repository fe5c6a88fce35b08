//! Tokens of identity providers, verified against a JWKS server the tests run on
//! loopback with real keys and real signatures.

use std::sync::Arc;
use std::time::Duration;

use billing::auth::{Jwks, JwksOptions, JwtSettings, JwtVerifier};
use billing_tests::jwks::{JwksServer, SigningKey};
use billing_tests::{Env, Reply, TestApp};
use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, Header};
use serde_json::{Value, json};

use crate::TestFn;

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        tokens_of_every_algorithm_verify_and_attacks_are_401,
        provider_token_shapes_are_200_with_the_role_and_403_without,
        rotated_keys_are_picked_up_and_removed_ones_dropped_after_the_ttl,
        a_flood_of_made_up_kids_costs_a_bounded_number_of_fetches,
        provider_down_keeps_cached_keys_and_without_any_is_503,
        cached_keys_stop_a_day_past_their_ttl_while_refreshes_fail,
        max_age_rejects_old_and_long_lived_tokens,
        id_tokens_are_refused_unless_accepted,
        a_namespaced_roles_claim_is_never_read_as_a_path,
    ]
}

const ISSUER: &str = "https://idp.billing.test";
const AUDIENCE: &str = "billing-admin-api";

fn settings() -> JwtSettings {
    JwtSettings::new(ISSUER, AUDIENCE)
}

/// Options that let a test see TTLs and cooldowns pass in a second.
fn quick() -> JwksOptions {
    JwksOptions {
        min_ttl: Duration::ZERO,
        cooldown: Duration::from_millis(300),
        ..JwksOptions::default()
    }
}

fn now() -> i64 {
    billing::domain::now().timestamp()
}

/// Claims of a valid admin token, with `extra` merged over them.
fn claims(extra: Value) -> Value {
    let mut base = json!({
        "sub": "5f35d2c4-5633-4b16-bbf0-5ca22ef8ea2e",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now(),
        "exp": now() + 300,
        "roles": ["billing_admin"],
    });
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            if v.is_null() {
                base.remove(k);
            } else {
                base.insert(k.clone(), v.clone());
            }
        }
    }
    base
}

fn keys() -> [SigningKey; 6] {
    [
        SigningKey::load("rsa-1", "rsa-rs256", Algorithm::RS256, true),
        SigningKey::load("rsa-2", "rsa-ps256", Algorithm::PS256, true),
        SigningKey::load("ec-p256", "ec-p256", Algorithm::ES256, true),
        SigningKey::load("ec-p384", "ec-p384", Algorithm::ES384, false),
        SigningKey::load("ed25519", "ed", Algorithm::EdDSA, true),
        // The same RSA key published without `alg`: RS* and PS* both fit it.
        SigningKey::load("rsa-1", "rsa-any", Algorithm::RS512, false),
    ]
}

async fn app_for(
    env: &Env,
    server: &JwksServer,
    settings: &JwtSettings,
    o: JwksOptions,
) -> TestApp {
    let jwks = Arc::new(Jwks::new(&server.url, o).expect("JWKS URL"));
    TestApp::with_verifier(env, JwtVerifier::jwks(jwks, settings)).await
}

async fn get(app: &TestApp, token: &str) -> Reply {
    let auth = format!("Bearer {token}");
    app.call(Method::GET, "/customers", &[("authorization", &auth)], None)
        .await
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `token` with its payload replaced by `claims` (signature kept).
fn with_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    )
}

async fn tokens_of_every_algorithm_verify_and_attacks_are_401(env: &'static Env) {
    let keys = keys();
    let server = JwksServer::start(&keys.iter().collect::<Vec<_>>(), Some(300)).await;
    let app = app_for(env, &server, &settings(), JwksOptions::default()).await;
    let [rs, ps, es256, es384, ed, rsa_any] = &keys;

    // Every supported family verifies, by kid.
    for key in &keys {
        let reply = get(&app, &key.sign(&claims(json!({})))).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", key.kid);
    }
    let mut ps_on_any = Header::new(Algorithm::PS384);
    ps_on_any.kid = Some(rsa_any.kid.clone());
    assert_eq!(
        get(&app, &rsa_any.sign_with(ps_on_any, &claims(json!({}))))
            .await
            .status,
        StatusCode::OK,
        "an RSA key without alg verifies PS384 too"
    );
    let fetches_after_warmup = server.fetches();

    let good = rs.sign(&claims(json!({})));
    let attacker = SigningKey::load("rsa-2", "attacker", Algorithm::RS256, true);
    let attacker_server = JwksServer::start(&[&attacker], None).await;
    let header = |alg: Algorithm, kid: &str| {
        let mut h = Header::new(alg);
        h.kid = Some(kid.to_owned());
        h
    };
    let mut attacks: Vec<(&str, String)> = vec![
        (
            "tampered payload",
            with_payload(&good, &claims(json!({"sub": "someone-else"}))),
        ),
        // Signed by the PS256 key but naming the RS256 key.
        (
            "wrong kid",
            ps.sign_with(header(Algorithm::RS256, &rs.kid), &claims(json!({}))),
        ),
        ("unknown kid", attacker.sign(&claims(json!({})))),
        (
            "no kid",
            rs.sign_with(Header::new(Algorithm::RS256), &claims(json!({}))),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(format!(r#"{{"alg":"none","kid":"{}"}}"#, rs.kid).as_bytes()),
                b64(claims(json!({})).to_string().as_bytes())
            ),
        ),
        // An EC signature under the RSA key's kid.
        (
            "RSA kid with ES256",
            es256.sign_with(header(Algorithm::ES256, &rs.kid), &claims(json!({}))),
        ),
        // The PS256 key's own alg is PS256: an RS256 token under it is refused.
        (
            "key alg disagrees",
            ps.sign_with(header(Algorithm::RS256, &ps.kid), &claims(json!({}))),
        ),
        (
            "P-384 kid with ES256",
            es256.sign_with(header(Algorithm::ES256, &es384.kid), &claims(json!({}))),
        ),
        (
            "EdDSA kid with RS256",
            rs.sign_with(header(Algorithm::RS256, &ed.kid), &claims(json!({}))),
        ),
        (
            "expired",
            rs.sign(&claims(json!({"iat": now() - 900, "exp": now() - 600}))),
        ),
        (
            "not yet valid",
            rs.sign(&claims(json!({"nbf": now() + 600}))),
        ),
        (
            "other issuer",
            rs.sign(&claims(json!({"iss": "https://evil.test"}))),
        ),
        (
            "other audience",
            rs.sign(&claims(json!({"aud": "other-api"}))),
        ),
        ("no audience", rs.sign(&claims(json!({"aud": null})))),
        ("no subject", rs.sign(&claims(json!({"sub": null})))),
    ];
    // HS256 keyed with the RSA public key (algorithm confusion), under the RSA kid.
    let public_pem = {
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(rs.jwk.clone()).unwrap();
        serde_json::to_vec(&jwk).unwrap()
    };
    let hs = SigningKey {
        kid: rs.kid.clone(),
        alg: Algorithm::HS256,
        encoding: jsonwebtoken::EncodingKey::from_secret(&public_pem),
        jwk: json!({}),
    };
    attacks.push(("HS256 with the public key", hs.sign(&claims(json!({})))));
    // A jku, an x5u or an embedded jwk naming the attacker's key: never followed.
    let mut jku = header(Algorithm::RS256, &attacker.kid);
    jku.jku = Some(attacker_server.url.clone());
    attacks.push(("jku", attacker.sign_with(jku, &claims(json!({})))));
    let mut jku_known_kid = header(Algorithm::RS256, &rs.kid);
    jku_known_kid.jku = Some(attacker_server.url.clone());
    attacks.push((
        "jku with a known kid",
        attacker.sign_with(jku_known_kid, &claims(json!({}))),
    ));
    let mut x5u = header(Algorithm::RS256, &attacker.kid);
    x5u.x5u = Some(attacker_server.url.clone());
    attacks.push(("x5u", attacker.sign_with(x5u, &claims(json!({})))));
    let mut embedded = header(Algorithm::RS256, &attacker.kid);
    embedded.jwk = Some(serde_json::from_value(attacker.jwk.clone()).unwrap());
    attacks.push((
        "embedded jwk",
        attacker.sign_with(embedded, &claims(json!({}))),
    ));

    for (what, token) in &attacks {
        let reply = get(&app, token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(reply.error_code(), "unauthorized", "{what}");
    }
    assert_eq!(attacker_server.fetches(), 0, "jku/x5u are never fetched");
    assert!(
        server.fetches() <= fetches_after_warmup + 1,
        "unknown kids refresh at most once per cooldown"
    );
    assert_eq!(get(&app, &good).await.status, StatusCode::OK);
}

/// One provider's token shape: the settings it needs and its claims.
struct Shape {
    name: &'static str,
    roles_claim: &'static str,
    admin: Value,
    user: Value,
}

async fn provider_token_shapes_are_200_with_the_role_and_403_without(env: &'static Env) {
    let key = SigningKey::load("rsa-1", "provider", Algorithm::RS256, true);
    let server = JwksServer::start(&[&key], None).await;
    let shapes = [
        Shape {
            name: "Cognito access token",
            roles_claim: "cognito:groups",
            admin: json!({"aud": null, "token_use": "access", "client_id": AUDIENCE,
                "cognito:groups": ["billing_admin"], "roles": null, "scope": "aws.cognito.signin.user.admin"}),
            user: json!({"aud": null, "token_use": "access", "client_id": AUDIENCE,
                "cognito:groups": ["support"], "roles": null}),
        },
        Shape {
            name: "Cognito ID token",
            roles_claim: "cognito:groups",
            admin: json!({"token_use": "id", "cognito:groups": ["billing_admin"], "roles": null,
                "email": "ops@example.com"}),
            user: json!({"token_use": "id", "roles": null}),
        },
        Shape {
            name: "Auth0",
            roles_claim: "https://billing.example.com/roles",
            admin: json!({"aud": [AUDIENCE, "https://tenant.auth0.com/userinfo"], "roles": null,
                "https://billing.example.com/roles": ["billing_admin"], "azp": "client"}),
            user: json!({"aud": [AUDIENCE], "roles": null,
                "https://billing.example.com/roles": []}),
        },
        Shape {
            name: "Keycloak",
            roles_claim: "realm_access.roles",
            admin: json!({"aud": ["account", AUDIENCE], "roles": null, "typ": "Bearer",
                "realm_access": {"roles": ["offline_access", "billing_admin"]}}),
            user: json!({"aud": ["account", AUDIENCE], "roles": null,
                "realm_access": {"roles": ["offline_access"]}}),
        },
        Shape {
            name: "Okta",
            roles_claim: "groups",
            admin: json!({"roles": null, "groups": ["Everyone", "billing_admin"], "cid": "0oa"}),
            user: json!({"roles": null, "groups": ["Everyone"]}),
        },
        Shape {
            name: "space-separated roles",
            roles_claim: "scp",
            admin: json!({"roles": null, "scp": "openid billing_admin"}),
            user: json!({"roles": null, "scp": "openid"}),
        },
    ];
    for shape in shapes {
        let mut settings = settings();
        settings.roles_claim = shape.roles_claim.to_owned();
        // ID tokens only where they are accepted (JWT_ACCEPT_ID_TOKENS=true).
        settings.accept_id_tokens = shape.admin["token_use"] == "id";
        let app = app_for(env, &server, &settings, JwksOptions::default()).await;
        let admin = get(&app, &key.sign(&claims(shape.admin.clone()))).await;
        assert_eq!(admin.status, StatusCode::OK, "{}: admin", shape.name);
        let user = get(&app, &key.sign(&claims(shape.user))).await;
        assert_eq!(user.status, StatusCode::FORBIDDEN, "{}: user", shape.name);
        assert_eq!(user.error_code(), "forbidden");
    }
    // A Cognito access token of another app client is not for this API.
    let mut settings = settings();
    settings.roles_claim = "cognito:groups".into();
    let app = app_for(env, &server, &settings, JwksOptions::default()).await;
    let other_client = key.sign(&claims(json!({"aud": null, "token_use": "access",
        "client_id": "other-client", "cognito:groups": ["billing_admin"]})));
    assert_eq!(
        get(&app, &other_client).await.status,
        StatusCode::UNAUTHORIZED
    );
    let id_token_without_aud = key.sign(&claims(json!({"aud": null, "token_use": "id",
        "client_id": AUDIENCE, "cognito:groups": ["billing_admin"]})));
    assert_eq!(
        get(&app, &id_token_without_aud).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn rotated_keys_are_picked_up_and_removed_ones_dropped_after_the_ttl(env: &'static Env) {
    let old = SigningKey::load("rsa-1", "2026-01", Algorithm::RS256, true);
    let new = SigningKey::load("ec-p256", "2026-02", Algorithm::ES256, true);
    let server = JwksServer::start(&[&old], Some(1)).await;
    let app = app_for(env, &server, &settings(), quick()).await;
    let old_token = old.sign(&claims(json!({})));
    assert_eq!(get(&app, &old_token).await.status, StatusCode::OK);

    // GIVEN the provider adds a key: its tokens are accepted without a restart
    server.publish(&[&old, &new]);
    tokio::time::sleep(quick().cooldown).await;
    assert_eq!(
        get(&app, &new.sign(&claims(json!({})))).await.status,
        StatusCode::OK
    );
    // WHEN it removes the old key, the old key's tokens work until the TTL
    // (1 s, the document's max-age) and are refused after it
    server.publish(&[&new]);
    let fetches = server.fetches();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let reply = get(&app, &old_token).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error_code(), "unauthorized");
    assert!(
        server.fetches() > fetches,
        "the expired document was fetched again"
    );
    assert_eq!(
        get(&app, &new.sign(&claims(json!({})))).await.status,
        StatusCode::OK
    );
}

async fn a_flood_of_made_up_kids_costs_a_bounded_number_of_fetches(env: &'static Env) {
    let key = SigningKey::load("ed25519", "real", Algorithm::EdDSA, true);
    let server = JwksServer::start(&[&key], Some(600)).await;
    // The production policy: at most one triggered fetch per cooldown.
    let options = JwksOptions::default();
    let app = app_for(env, &server, &settings(), options.clone()).await;
    let started = std::time::Instant::now();
    let results = futures_util::future::join_all((0..1000).map(|_| {
        let mut forged = key.clone();
        forged.kid = uuid::Uuid::new_v4().to_string();
        let token = forged.sign(&claims(json!({})));
        let app = &app;
        async move { get(app, &token).await.status }
    }))
    .await;
    assert!(results.iter().all(|s| *s == StatusCode::UNAUTHORIZED));
    let elapsed = started.elapsed();
    let bound = 1 + 1 + elapsed.as_secs() / options.cooldown.as_secs();
    let fetches = server.fetches();
    eprintln!("1000 made-up kids in {elapsed:?}: {fetches} JWKS fetches");
    assert!(
        fetches <= bound,
        "{fetches} fetches for 1,000 made-up kids (bound {bound})"
    );
    assert_eq!(
        get(&app, &key.sign(&claims(json!({})))).await.status,
        StatusCode::OK
    );
}

async fn provider_down_keeps_cached_keys_and_without_any_is_503(env: &'static Env) {
    let key = SigningKey::load("ec-p384", "k1", Algorithm::ES384, true);
    let server = JwksServer::start(&[&key], Some(1)).await;
    let app = app_for(env, &server, &settings(), quick()).await;
    let token = key.sign(&claims(json!({})));
    assert_eq!(get(&app, &token).await.status, StatusCode::OK);
    // GIVEN the provider goes down and the document's TTL passes
    server.set_up(false);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // THEN the cached key keeps working, though refreshes fail
    let before = server.fetches();
    assert_eq!(get(&app, &token).await.status, StatusCode::OK);
    assert!(server.fetches() > before, "a refresh was tried");

    // GIVEN a verifier that never had a key, and a provider that is down
    let fresh = app_for(env, &server, &settings(), quick()).await;
    let reply = get(&fresh, &token).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.error_code(), "auth_unavailable");
    assert!(reply.headers.contains_key("retry-after"));
    // AND one whose provider does not even listen
    let port = billing_tests::servers::free_port();
    let nowhere =
        Arc::new(Jwks::new(&format!("http://127.0.0.1:{port}/jwks"), quick()).expect("JWKS URL"));
    let unreachable = TestApp::with_verifier(env, JwtVerifier::jwks(nowhere, &settings())).await;
    let reply = get(&unreachable, &token).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.error_code(), "auth_unavailable");
    // Credentials are still checked first: garbage is 401, not 503.
    assert_eq!(get(&fresh, "x.y.z").await.status, StatusCode::UNAUTHORIZED);
    // WHEN the provider comes back, the same verifier recovers without a restart
    server.set_up(true);
    tokio::time::sleep(quick().cooldown).await;
    assert_eq!(get(&fresh, &token).await.status, StatusCode::OK);
}

async fn cached_keys_stop_a_day_past_their_ttl_while_refreshes_fail(env: &'static Env) {
    // GIVEN keys cached for 1 s (max-age), a staleness limit of 1 s (24 h in
    // production: the same rule, scaled), and the provider going down
    let key = SigningKey::load("rsa-1", "k1", Algorithm::RS256, true);
    let server = JwksServer::start(&[&key], Some(1)).await;
    let limit = JwksOptions {
        max_stale: Duration::from_secs(1),
        ..quick()
    };
    assert_eq!(
        JwksOptions::default().max_stale,
        Duration::from_secs(24 * 3600),
        "the production limit is a day"
    );
    let app = app_for(env, &server, &settings(), limit).await;
    let token = key.sign(&claims(json!({})));
    assert_eq!(get(&app, &token).await.status, StatusCode::OK);
    server.set_up(false);
    // WHEN the TTL has passed but not the limit, THEN the cached key still verifies
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(get(&app, &token).await.status, StatusCode::OK);
    // WHEN the limit has passed too, THEN 503 auth_unavailable, as a JSON error
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let reply = get(&app, &token).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.error_code(), "auth_unavailable");
    assert_eq!(reply.json["error"]["type"], "CRITICAL");
    assert!(reply.headers.contains_key("retry-after"));
    // AND it stays so on every request while the provider is down
    tokio::time::sleep(quick().cooldown).await;
    assert_eq!(
        get(&app, &token).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // WHEN a refresh succeeds again, THEN the same verifier recovers
    server.set_up(true);
    tokio::time::sleep(quick().cooldown).await;
    assert_eq!(get(&app, &token).await.status, StatusCode::OK);
}

async fn id_tokens_are_refused_unless_accepted(env: &'static Env) {
    let key = SigningKey::load("ec-p256", "cognito", Algorithm::ES256, true);
    let server = JwksServer::start(&[&key], None).await;
    let mut settings = settings();
    settings.roles_claim = "cognito:groups".into();
    let id_token = key.sign(&claims(json!({"token_use": "id", "roles": null,
        "cognito:groups": ["billing_admin"], "email": "ops@example.com"})));
    let access_token = key.sign(&claims(json!({"aud": null, "token_use": "access",
        "client_id": AUDIENCE, "roles": null, "cognito:groups": ["billing_admin"]})));
    // GIVEN the default (JWT_ACCEPT_ID_TOKENS unset): an ID token is 401, an
    // access token of the same user pool 200
    let strict = app_for(env, &server, &settings, JwksOptions::default()).await;
    let reply = get(&strict, &id_token).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error_code(), "unauthorized");
    assert_eq!(get(&strict, &access_token).await.status, StatusCode::OK);
    // GIVEN JWT_ACCEPT_ID_TOKENS=true: the ID token is 200
    settings.accept_id_tokens = true;
    let lenient = app_for(env, &server, &settings, JwksOptions::default()).await;
    assert_eq!(get(&lenient, &id_token).await.status, StatusCode::OK);
    assert_eq!(get(&lenient, &access_token).await.status, StatusCode::OK);
}

async fn a_namespaced_roles_claim_is_never_read_as_a_path(env: &'static Env) {
    let key = SigningKey::load("ed25519", "auth0", Algorithm::EdDSA, true);
    let server = JwksServer::start(&[&key], None).await;
    for claim in [
        "https://billing.example.com/roles",
        "urn:billing:roles.admin",
    ] {
        let mut settings = settings();
        settings.roles_claim = claim.to_owned();
        let app = app_for(env, &server, &settings, JwksOptions::default()).await;
        // The claim itself grants the role.
        let granted = key.sign(&claims(json!({"roles": null, claim: ["billing_admin"]})));
        assert_eq!(get(&app, &granted).await.status, StatusCode::OK, "{claim}");
        // WHEN it is absent and claims of other names spell its path, THEN no role
        let spoofed = key.sign(&claims(json!({"roles": null,
            "https://billing": {"example": {"com/roles": ["billing_admin"]}},
            "urn:billing:roles": {"admin": ["billing_admin"]}})));
        let reply = get(&app, &spoofed).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{claim}");
        assert_eq!(reply.error_code(), "forbidden");
    }
    // A plain dotted path still walks the claims (Keycloak's realm roles).
    let mut settings = settings();
    settings.roles_claim = "realm_access.roles".into();
    let app = app_for(env, &server, &settings, JwksOptions::default()).await;
    let nested = key.sign(&claims(json!({"roles": null,
        "realm_access": {"roles": ["billing_admin"]}})));
    assert_eq!(get(&app, &nested).await.status, StatusCode::OK);
}

async fn max_age_rejects_old_and_long_lived_tokens(env: &'static Env) {
    let key = SigningKey::load("rsa-2", "k", Algorithm::PS256, true);
    let server = JwksServer::start(&[&key], None).await;
    let mut settings = settings();
    settings.max_age = Some(3600);
    let app = app_for(env, &server, &settings, JwksOptions::default()).await;
    for (what, extra, want) in [
        ("recent", json!({}), StatusCode::OK),
        (
            "issued 2 h ago",
            json!({"iat": now() - 7200, "exp": now() + 60}),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "lives a day",
            json!({"iat": now(), "exp": now() + 86_400}),
            StatusCode::UNAUTHORIZED,
        ),
        ("no iat", json!({"iat": null}), StatusCode::UNAUTHORIZED),
    ] {
        let reply = get(&app, &key.sign(&claims(extra))).await;
        assert_eq!(reply.status, want, "{what}");
    }
}
