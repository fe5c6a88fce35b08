//! Authentication and authorization, before any validation or data access.

use billing::auth::issue_api_key;
use billing_tests::Env;
use billing_tests::app::{API, Spec, TestApp, token};
use http::{Method, StatusCode};

use crate::TestFn;

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        missing_and_malformed_credentials_are_401_before_validation,
        bad_tokens_are_401,
        tokens_without_billing_admin_are_403_before_validation,
        api_keys_authenticate_until_revoked,
        api_keys_expire_and_are_listed_without_secrets,
        api_keys_keep_their_expiry_out_of_the_ttl_attribute,
        no_api_key_outlives_api_key_max_days,
        secrets_manager_holds_the_jwt_and_stripe_keys,
        a_rotated_jwt_key_is_picked_up_without_a_cold_start,
        a_rotated_stripe_key_is_picked_up_without_a_cold_start,
    ]
}

async fn missing_and_malformed_credentials_are_401_before_validation(env: &'static Env) {
    let app = TestApp::new(env).await;
    // An invalid customer id would be 400, but credentials are checked first.
    let cases: &[&[(&str, &str)]] = &[
        &[],
        &[("authorization", "Bearer")],
        &[("authorization", "Basic YTpi")],
        &[("authorization", "Bearer not-a-jwt")],
        &[("api-key", "ak_0123456789abcdef0123456789abcdef")],
        &[("api-secret", "s")],
        &[
            ("authorization", "Bearer x.y.z"),
            ("api-key", "k"),
            ("api-secret", "s"),
        ],
    ];
    for headers in cases {
        let reply = app
            .call(Method::GET, "/customer/not-a-uuid", headers, None)
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_eq!(reply.error_code(), "unauthorized");
    }
}

async fn bad_tokens_are_401(env: &'static Env) {
    let app = TestApp::new(env).await;
    let good = token("u", &["billing_admin"], 60);
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let tampered = {
        // Same header and signature, claims of another user.
        let claims = billing::auth::Claims {
            sub: "someone-else".into(),
            roles: vec!["billing_admin".into()],
            iss: "https://auth.billing.test".into(),
            aud: "billing-admin-api".into(),
            exp: 4_000_000_000,
            iat: 0,
        };
        parts[1] = b64(&serde_json::to_vec(&claims).unwrap());
        parts.join(".")
    };
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        good.split('.').nth(1).unwrap()
    );
    let hs256 = {
        // Algorithm confusion: HMAC keyed with the public key's PEM.
        let key = jsonwebtoken::EncodingKey::from_secret(billing_tests::app::PUBLIC_KEY.as_bytes());
        let claims: serde_json::Value =
            serde_json::from_slice(&unb64(good.split('.').nth(1).unwrap())).unwrap();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &key,
        )
        .unwrap()
    };
    let other_issuer = billing::auth::sign(
        billing_tests::app::PRIVATE_KEY.as_bytes(),
        &billing::auth::JwtSettings::new("https://evil", "billing-admin-api"),
        "u",
        vec!["billing_admin".into()],
        60,
    )
    .unwrap();
    let other_audience = billing::auth::sign(
        billing_tests::app::PRIVATE_KEY.as_bytes(),
        &billing::auth::JwtSettings::new("https://auth.billing.test", "other-api"),
        "u",
        vec!["billing_admin".into()],
        60,
    )
    .unwrap();
    let expired = {
        let key =
            jsonwebtoken::EncodingKey::from_ed_pem(billing_tests::app::PRIVATE_KEY.as_bytes())
                .unwrap();
        let claims = serde_json::json!({"sub": "u", "roles": ["billing_admin"], "iss": "https://auth.billing.test",
            "aud": "billing-admin-api", "exp": 1_700_000_000u64, "iat": 1_699_990_000u64});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
            &claims,
            &key,
        )
        .unwrap()
    };
    for (what, bad) in [
        ("tampered", tampered),
        ("alg none", alg_none),
        ("hs256", hs256),
        ("issuer", other_issuer),
        ("audience", other_audience),
        ("expired", expired),
    ] {
        let auth = format!("Bearer {bad}");
        let reply = app
            .call(Method::GET, "/customers", &[("authorization", &auth)], None)
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(reply.error_code(), "unauthorized");
    }
    let auth = format!("Bearer {good}");
    let reply = app
        .call(Method::GET, "/customers", &[("authorization", &auth)], None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

async fn tokens_without_billing_admin_are_403_before_validation(env: &'static Env) {
    let app = TestApp::new(env).await;
    for roles in [
        &[][..],
        &["admin"][..],
        &["billing_viewer", "BILLING_ADMIN"][..],
    ] {
        let auth = format!("Bearer {}", token("u", roles, 60));
        for (method, path) in [
            (Method::GET, "/customer/not-a-uuid"),
            (Method::POST, "/customer/x/member"),
            (Method::GET, "/customers?page=0"),
        ] {
            let reply = app
                .call(method.clone(), path, &[("authorization", &auth)], None)
                .await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{roles:?} {method} {path}"
            );
            assert_eq!(reply.error_code(), "forbidden");
        }
    }
}

async fn api_keys_authenticate_until_revoked(env: &'static Env) {
    let app = TestApp::new(env).await;
    let admin = issue_api_key("user-1", vec!["billing_admin".into()], None).unwrap();
    app.store
        .put_api_key(&admin.key_id, &admin.record)
        .await
        .unwrap();
    let plain = issue_api_key("user-2", vec!["support".into()], None).unwrap();
    app.store
        .put_api_key(&plain.key_id, &plain.record)
        .await
        .unwrap();

    let with = |key: &str, secret: &str| {
        [
            ("api-key", key.to_owned()),
            ("api-secret", secret.to_owned()),
        ]
    };
    let send = |h: [(&'static str, String); 2]| {
        let app = &app;
        async move {
            let headers: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.call(Method::GET, "/customers", &headers, None).await
        }
    };
    assert_eq!(
        send(with(&admin.key_id, &admin.secret)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(with(&plain.key_id, &plain.secret)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(with(&admin.key_id, &plain.secret)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(with("ak_ffffffffffffffffffffffffffffffff", &admin.secret))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(with("not-a-key", &admin.secret)).await.status,
        StatusCode::UNAUTHORIZED
    );

    assert!(app.store.revoke_api_key(&admin.key_id).await.unwrap());
    let reply = send(with(&admin.key_id, &admin.secret)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error_code(), "unauthorized");
    assert!(
        !app.store
            .revoke_api_key("ak_00000000000000000000000000000000")
            .await
            .unwrap()
    );
}

async fn secrets_manager_holds_the_jwt_and_stripe_keys(env: &'static Env) {
    // GIVEN the JWT public key and the Stripe key stored in Secrets Manager (moto)
    let secrets = billing::aws::secrets_manager(&env.sdk, Some(&env.moto_url));
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    for (name, value) in [
        ("jwt", billing_tests::app::PUBLIC_KEY),
        ("stripe", "sk_test_from_secrets_manager"),
    ] {
        secrets
            .create_secret()
            .name(format!("{name}-{suffix}"))
            .secret_string(value)
            .send()
            .await
            .expect("create secret in moto");
    }
    let app = TestApp::new(env).await;
    let settings = [
        ("TABLE_NAME", app.store.table_name().to_owned()),
        ("AWS_ENDPOINT_URL_DYNAMODB", env.dynamodb_url.clone()),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", env.moto_url.clone()),
        ("JWT_ISSUER", "https://auth.billing.test".to_owned()),
        ("JWT_AUDIENCE", "billing-admin-api".to_owned()),
        ("JWT_PUBLIC_KEY_SECRET_ID", format!("jwt-{suffix}")),
        ("STRIPE_SECRET_KEY_SECRET_ID", format!("stripe-{suffix}")),
        ("STRIPE_API_BASE", env.stripe_url.clone()),
    ];
    let config_with = |overrides: &[(&str, String)]| {
        billing::config::Config::from_lookup(|k| {
            overrides
                .iter()
                .chain(settings.iter())
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.clone())
        })
        .unwrap()
    };
    // WHEN the dependencies are built the way a Lambda builds them
    let deps = billing::runtime::Deps::new(config_with(&[]), env.sdk.clone());
    let state = deps
        .api(false)
        .await
        .expect("the HTTP state from Secrets Manager");
    // THEN tokens signed with the private half are accepted, and the Stripe key works:
    // a customer with Stripe objects is deleted through the cascade.
    let customer = app.customer_with_stripe(Spec::default()).await;
    let auth = format!("Bearer {}", token("u", &["billing_admin"], 60));
    for (method, path, want) in [
        (Method::GET, format!("{API}/customers"), StatusCode::OK),
        (
            Method::DELETE,
            format!("{API}/customer/{}", customer.id),
            StatusCode::NO_CONTENT,
        ),
    ] {
        let (parts, ()) = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", &auth)
            .body(())
            .unwrap()
            .into_parts();
        let reply =
            billing::api::dispatch(&state, billing::http::lambda_request(parts, Vec::new())).await;
        assert_eq!(reply.status(), want);
    }
    assert!(
        env.stripe_customer(&customer.stripe_id).await.is_none(),
        "Stripe customer deleted"
    );

    // AND a missing secret stops the cold start with an error naming it, not a panic
    for key in ["JWT_PUBLIC_KEY_SECRET_ID", "STRIPE_SECRET_KEY_SECRET_ID"] {
        let config = config_with(&[(key, "does-not-exist".to_owned())]);
        let err = billing::runtime::Deps::new(config, env.sdk.clone())
            .api(false)
            .await
            .err()
            .expect("missing secret fails");
        assert!(err.to_string().contains("does-not-exist"), "{err}");
    }
}

async fn api_keys_expire_and_are_listed_without_secrets(env: &'static Env) {
    let app = TestApp::new(env).await;
    let now = billing::domain::now();
    let live = issue_api_key(
        "user-1",
        vec!["billing_admin".into()],
        Some(now + chrono::Duration::seconds(3600)),
    )
    .unwrap();
    let expired = issue_api_key(
        "user-2",
        vec!["billing_admin".into()],
        Some(now - chrono::Duration::seconds(1)),
    )
    .unwrap();
    for key in [&live, &expired] {
        app.store
            .put_api_key(&key.key_id, &key.record)
            .await
            .unwrap();
    }
    let call = |key: &billing::auth::IssuedApiKey| {
        let headers = [
            ("api-key", key.key_id.clone()),
            ("api-secret", key.secret.clone()),
        ];
        let app = &app;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.call(Method::GET, "/customers", &headers, None).await
        }
    };
    assert_eq!(call(&live).await.status, StatusCode::OK);
    let reply = call(&expired).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error_code(), "unauthorized");

    let listed = app.store.list_api_keys().await.unwrap();
    assert_eq!(listed.len(), 2);
    let text = serde_json::to_string(&listed).unwrap();
    for key in [&live, &expired] {
        assert!(!text.contains(&key.secret));
        assert!(!text.contains(&key.record.secret_hash));
    }
    let entry = listed.iter().find(|k| k.api_key == live.key_id).unwrap();
    assert_eq!(entry.user_id, "user-1");
    assert!(entry.expires_at.is_some() && entry.revoked_at.is_none());
    let stored = app.store.get_api_key(&live.key_id).await.unwrap().unwrap();
    assert_eq!(
        stored.expires_at.map(|t| t.timestamp()),
        live.record.expires_at.map(|t| t.timestamp())
    );
}

/// `GET /customers` with an API key's headers.
async fn with_key(app: &TestApp, key_id: &str, secret: &str) -> billing_tests::Reply {
    let headers = [("api-key", key_id), ("api-secret", secret)];
    app.call(Method::GET, "/customers", &headers, None).await
}

async fn api_keys_keep_their_expiry_out_of_the_ttl_attribute(env: &'static Env) {
    use aws_sdk_dynamodb::types::AttributeValue;
    let app = TestApp::new(env).await;
    let client = env.dynamodb_client();
    let table = app.store.table_name().to_owned();
    let raw = |key_id: &str| {
        let (client, table) = (client.clone(), table.clone());
        let key = billing::store::table::api_key_key(key_id);
        async move {
            client
                .get_item()
                .table_name(table)
                .set_key(Some(key))
                .consistent_read(true)
                .send()
                .await
                .expect("GetItem")
                .item
        }
    };
    // The table's time to live reads `expiresAt`.
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .expect("DescribeTimeToLive");
    let ttl_attribute = ttl
        .time_to_live_description
        .and_then(|d| d.attribute_name)
        .expect("a TTL attribute");
    assert_eq!(ttl_attribute, billing::store::table::TTL_ATTRIBUTE);

    // GIVEN a key that expired a second ago
    let now = billing::domain::now();
    let expired = issue_api_key(
        "user-1",
        vec!["billing_admin".into()],
        Some(now - chrono::Duration::seconds(1)),
    )
    .unwrap();
    app.store
        .put_api_key(&expired.key_id, &expired.record)
        .await
        .unwrap();
    // THEN its expiry is stored under its own name, never the TTL attribute
    let item = raw(&expired.key_id).await.expect("stored");
    assert!(!item.contains_key(&ttl_attribute), "{item:?}");
    assert!(item["validUntil"].as_s().is_ok(), "{item:?}");
    // AND it is refused, and stays in the table (listed) rather than vanishing
    let reply = with_key(&app, &expired.key_id, &expired.secret).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error_code(), "unauthorized");
    assert!(
        raw(&expired.key_id).await.is_some(),
        "an expired key is kept"
    );
    let listed = app.store.list_api_keys().await.unwrap();
    assert!(listed.iter().any(|k| k.api_key == expired.key_id
        && k.expires_at.as_deref()
            == Some(
                billing::domain::time::to_seconds(&(now - chrono::Duration::seconds(1))).as_str()
            )));

    // GIVEN keys written before the rename: the expiry in `expiresAt`, as the
    // RFC 3339 string older releases wrote, or as epoch seconds
    let old = |expires: AttributeValue| {
        let issued = issue_api_key("user-2", vec!["billing_admin".into()], None).unwrap();
        let mut item = billing::store::table::api_key_key(&issued.key_id);
        for (name, value) in [
            ("type", AttributeValue::S("apiKey".into())),
            (
                "secretHash",
                AttributeValue::S(issued.record.secret_hash.clone()),
            ),
            ("userID", AttributeValue::S("user-2".into())),
            (
                "roles",
                AttributeValue::L(vec![AttributeValue::S("billing_admin".into())]),
            ),
            (
                "createdAt",
                AttributeValue::S(billing::domain::time::to_seconds(&now)),
            ),
            ("expiresAt", expires),
        ] {
            item.insert(name.to_owned(), value);
        }
        (issued, item)
    };
    let text =
        |t: chrono::DateTime<chrono::Utc>| AttributeValue::S(billing::domain::time::to_seconds(&t));
    let seconds = |t: chrono::DateTime<chrono::Utc>| AttributeValue::N(t.timestamp().to_string());
    let hour = chrono::Duration::hours(1);
    for (what, expires, status) in [
        ("string, live", text(now + hour), StatusCode::OK),
        (
            "string, expired",
            text(now - hour),
            StatusCode::UNAUTHORIZED,
        ),
        ("number, live", seconds(now + hour), StatusCode::OK),
        (
            "number, expired",
            seconds(now - hour),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let (issued, item) = old(expires);
        app.put_raw(item).await;
        // THEN they are read by the old name: live ones work, expired ones do not
        let reply = with_key(&app, &issued.key_id, &issued.secret).await;
        assert_eq!(reply.status, status, "{what}");
        let stored = app
            .store
            .get_api_key(&issued.key_id)
            .await
            .unwrap()
            .unwrap();
        assert!(stored.expires_at.is_some(), "{what}: expiry read");
    }
}

async fn no_api_key_outlives_api_key_max_days(env: &'static Env) {
    // GIVEN keys issued 100 days ago: one without expiry (before the limit
    // existed), one with an expiry still a year away
    let app = TestApp::new(env).await;
    let issued_at = billing::domain::now() - chrono::Duration::days(100);
    let mut keys = Vec::new();
    for expires_at in [None, Some(issued_at + chrono::Duration::days(465))] {
        let mut key = issue_api_key("user-1", vec!["billing_admin".into()], expires_at).unwrap();
        key.record.created_at = issued_at;
        app.store
            .put_api_key(&key.key_id, &key.record)
            .await
            .unwrap();
        keys.push(key);
    }
    // THEN with the default limit (90 days) both are refused
    for key in &keys {
        let reply = with_key(&app, &key.key_id, &key.secret).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.error_code(), "unauthorized");
    }
    // AND with API_KEY_MAX_DAYS=120 both work (the limit is configuration)
    let mut longer = app.with_cascade(app.state.cascade.clone());
    longer.state.auth = longer.state.auth.clone().with_api_key_max_days(120);
    for key in &keys {
        assert_eq!(
            with_key(&longer, &key.key_id, &key.secret).await.status,
            StatusCode::OK
        );
    }
    // AND a key issued now under the default limit works
    let fresh = issue_api_key("user-1", vec!["billing_admin".into()], None).unwrap();
    app.store
        .put_api_key(&fresh.key_id, &fresh.record)
        .await
        .unwrap();
    assert_eq!(
        with_key(&app, &fresh.key_id, &fresh.secret).await.status,
        StatusCode::OK
    );
}

async fn a_rotated_jwt_key_is_picked_up_without_a_cold_start(env: &'static Env) {
    use billing::secrets::Refreshing;
    use secrecy::ExposeSecret;
    // GIVEN the JWT public key in Secrets Manager, read again every 300 ms
    let secrets = billing::aws::secrets_manager(&env.sdk, Some(&env.moto_url));
    let name = format!("jwt-rotation-{}", uuid::Uuid::new_v4().simple());
    secrets
        .create_secret()
        .name(&name)
        .secret_string(billing_tests::app::PUBLIC_KEY)
        .send()
        .await
        .expect("create secret in moto");
    let ttl = std::time::Duration::from_millis(300);
    let key = Refreshing::load(
        billing::config::SecretSource::SecretsManager(name.clone()),
        secrets.clone(),
        Box::new(|pem| {
            billing::auth::pem_key(pem.expose_secret().as_bytes()).map_err(|e| e.to_string())
        }),
        ttl,
    )
    .await
    .expect("first read");
    let verifier = billing::auth::JwtVerifier::from_secret(
        std::sync::Arc::new(key),
        &billing_tests::app::jwt_settings(),
    );
    let app = TestApp::with_verifier(env, verifier).await;
    let old = token("u", &["billing_admin"], 60);
    let new = billing::auth::sign(
        &std::fs::read(billing_tests::servers::repo_root().join("tests/keys/ed25519.pem")).unwrap(),
        &billing_tests::app::jwt_settings(),
        "u",
        vec!["billing_admin".into()],
        60,
    )
    .unwrap();
    let status = |t: &str| {
        let auth = format!("Bearer {t}");
        let app = &app;
        async move {
            app.call(Method::GET, "/customers", &[("authorization", &auth)], None)
                .await
                .status
        }
    };
    assert_eq!(status(&old).await, StatusCode::OK);
    assert_eq!(status(&new).await, StatusCode::UNAUTHORIZED);
    // WHEN the secret is rotated to another key
    let rotated = std::fs::read_to_string(
        billing_tests::servers::repo_root().join("tests/keys/ed25519.pub.pem"),
    )
    .unwrap();
    secrets
        .put_secret_value()
        .secret_id(&name)
        .secret_string(rotated)
        .send()
        .await
        .expect("rotate");
    // THEN within the TTL the old key still verifies, and after it the new one
    // does (a refresh is a Secrets Manager call: a busy machine gets 30 TTLs)
    assert_eq!(status(&old).await, StatusCode::OK);
    let mut waited = 0;
    loop {
        tokio::time::sleep(ttl).await;
        waited += 1;
        if waited >= 2 && status(&new).await == StatusCode::OK {
            break;
        }
        assert!(waited < 30, "the rotated key is used after 30 TTLs");
    }
    assert_eq!(status(&old).await, StatusCode::UNAUTHORIZED);
    // AND a secret that becomes unreadable or unusable keeps the current key
    secrets
        .put_secret_value()
        .secret_id(&name)
        .secret_string("not a PEM")
        .send()
        .await
        .expect("break");
    tokio::time::sleep(ttl * 2).await;
    assert_eq!(status(&new).await, StatusCode::OK);
}

async fn a_rotated_stripe_key_is_picked_up_without_a_cold_start(env: &'static Env) {
    // GIVEN the Stripe key in Secrets Manager, read again every 300 ms
    let secrets = billing::aws::secrets_manager(&env.sdk, Some(&env.moto_url));
    let name = format!("stripe-rotation-{}", uuid::Uuid::new_v4().simple());
    let set = |value: &'static str| {
        let (secrets, name) = (secrets.clone(), name.clone());
        async move {
            secrets
                .put_secret_value()
                .secret_id(name)
                .secret_string(value)
                .send()
                .await
                .expect("put secret value");
        }
    };
    secrets
        .create_secret()
        .name(&name)
        .secret_string("sk_test_first")
        .send()
        .await
        .expect("create secret in moto");
    let ttl = std::time::Duration::from_millis(300);
    let payments = billing::payments::Payments::from_secret(
        &env.stripe_url,
        billing::config::SecretSource::SecretsManager(name.clone()),
        secrets.clone(),
        ttl,
    )
    .await
    .expect("first read");
    let tier = billing::domain::TierName::parse("pro").unwrap();
    let create = || {
        let (payments, tier) = (&payments, &tier);
        async move {
            let id = billing::domain::CustomerId::parse(&uuid::Uuid::new_v4().to_string()).unwrap();
            payments
                .create_customer(&id, "Rotation", tier, uuid::Uuid::nil(), false)
                .await
        }
    };
    assert!(create().await.is_ok());
    // WHEN the key is rotated to one localstripe refuses, THEN after the TTL the
    // calls use it (and fail), and after the next rotation they work again
    set("not-a-stripe-key").await;
    tokio::time::sleep(ttl * 2).await;
    assert!(
        create().await.is_err(),
        "the rotated (refused) key is in use"
    );
    set("sk_test_second").await;
    tokio::time::sleep(ttl * 2).await;
    assert!(create().await.is_ok());
}
