//! The cursor key in Secrets Manager (moto): read by ARN at cold start and
//! again after its TTL; cursors sealed under its previous or pending version
//! still open, so the cursors in flight survive a rotation.

use std::time::Duration;

use billing::api::{CursorKeys, Cursors};
use billing::config::SecretSource;
use billing_tests::Env;
use billing_tests::app::{Spec, TestApp};
use http::StatusCode;

use crate::TestFn;

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        the_cursor_key_is_read_from_secrets_manager_at_cold_start,
        cursors_in_flight_survive_a_rotation,
    ]
}

/// How often the tests' keys are read again.
const TTL: Duration = Duration::from_millis(300);

/// A new secret in moto holding `value`: its name.
async fn secret(env: &Env, value: &str) -> String {
    let name = format!("cursor-{}", uuid::Uuid::new_v4().simple());
    billing::aws::secrets_manager(&env.sdk, Some(&env.moto_url))
        .create_secret()
        .name(&name)
        .secret_string(value)
        .send()
        .await
        .expect("create secret in moto");
    name
}

/// The `next` of the first page of the customers, one per page, and the status.
async fn first_next(app: &TestApp) -> String {
    let reply = app.get("/customers?limit=1").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    reply.json["next"].as_str().expect("next").to_owned()
}

/// The status of the page after `cursor`, and its `next`.
async fn after(app: &TestApp, cursor: &str) -> (StatusCode, Option<String>) {
    let reply = app
        .get(&format!("/customers?limit=1&cursor={cursor}"))
        .await;
    let next = reply.json["next"].as_str().map(str::to_owned);
    (reply.status, next)
}

/// `app` with its cursors under `keys`.
fn with(app: &TestApp, keys: CursorKeys) -> TestApp {
    let mut other = app.with_cascade(app.state.cascade.clone());
    other.state = other.state.with_cursor_keys(keys);
    other
}

async fn the_cursor_key_is_read_from_secrets_manager_at_cold_start(env: &'static Env) {
    // GIVEN the key in Secrets Manager, and a listing function configured with its id
    let name = secret(env, "cold-start-key").await;
    let app = TestApp::new(env).await;
    for _ in 0..3 {
        app.customer(Spec::default()).await;
    }
    let settings = |cursor_key_id: &str| {
        let pairs = [
            ("TABLE_NAME", app.store.table_name().to_owned()),
            ("AWS_ENDPOINT_URL_DYNAMODB", env.dynamodb_url.clone()),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", env.moto_url.clone()),
            ("JWT_ISSUER", "https://auth.billing.test".to_owned()),
            ("JWT_AUDIENCE", "billing-admin-api".to_owned()),
            ("JWT_PUBLIC_KEY", billing_tests::app::PUBLIC_KEY.to_owned()),
            ("CURSOR_KEY_SECRET_ID", cursor_key_id.to_owned()),
        ];
        billing::config::Config::from_lookup(move |k| {
            pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        })
        .expect("config")
    };
    // WHEN the dependencies are built as a Lambda builds them
    let keys = billing::runtime::Deps::new(settings(&name), env.sdk.clone())
        .cursor_keys()
        .await
        .expect("cursor keys");
    // THEN its cursors are sealed under the secret's value: another instance
    // given the same key opens them, one with another key does not
    let listing = with(&app, keys);
    let next = first_next(&listing).await;
    let same = with(&app, CursorKeys::fixed(Cursors::new("cold-start-key")));
    assert_eq!(after(&same, &next).await.0, StatusCode::OK);
    let other = with(&app, CursorKeys::fixed(Cursors::new("another-key")));
    assert_eq!(after(&other, &next).await.0, StatusCode::BAD_REQUEST);
    // AND a missing secret stops the cold start with an error naming it
    let err = billing::runtime::Deps::new(settings("no-such-cursor-key"), env.sdk.clone())
        .cursor_keys()
        .await
        .expect_err("a missing secret fails");
    assert!(err.to_string().contains("no-such-cursor-key"), "{err}");
}

async fn cursors_in_flight_survive_a_rotation(env: &'static Env) {
    // GIVEN the key in Secrets Manager, read again every 300 ms
    let sm = billing::aws::secrets_manager(&env.sdk, Some(&env.moto_url));
    let name = secret(env, "key-1").await;
    let keys = CursorKeys::load(&SecretSource::SecretsManager(name.clone()), sm.clone(), TTL)
        .await
        .expect("first read");
    let base = TestApp::new(env).await;
    for _ in 0..4 {
        base.customer(Spec::default()).await;
    }
    let app = with(&base, keys);
    let under = |key: &str| with(&base, CursorKeys::fixed(Cursors::new(key.to_owned())));
    let sealed_under_1 = first_next(&app).await;
    assert_eq!(
        after(&under("key-1"), &sealed_under_1).await.0,
        StatusCode::OK
    );

    // WHEN the key is rotated in one step (put-secret-value: the old one
    // becomes AWSPREVIOUS), THEN after the TTL new cursors are sealed under
    // the new key and the cursors in flight still open
    sm.put_secret_value()
        .secret_id(&name)
        .secret_string("key-2")
        .send()
        .await
        .expect("rotate");
    tokio::time::sleep(TTL * 2).await;
    first_next(&app).await; // the read after the TTL refreshes the keys
    let (status, sealed_under_2) = after(&app, &sealed_under_1).await;
    assert_eq!(status, StatusCode::OK, "a cursor of the previous key opens");
    let sealed_under_2 = sealed_under_2.expect("next");
    assert_eq!(
        after(&under("key-2"), &sealed_under_2).await.0,
        StatusCode::OK
    );
    assert_eq!(
        after(&under("key-1"), &sealed_under_2).await.0,
        StatusCode::BAD_REQUEST,
        "sealed under the new key"
    );

    // WHEN a third key is put ahead (AWSPENDING, the two-step rotation's
    // first step), THEN cursors sealed under it open already, while new
    // cursors are still sealed under the current key
    let pending = sm
        .put_secret_value()
        .secret_id(&name)
        .secret_string("key-3")
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("put pending");
    tokio::time::sleep(TTL * 2).await;
    first_next(&app).await;
    let sealed_under_3 = first_next(&under("key-3")).await;
    assert_eq!(after(&app, &sealed_under_3).await.0, StatusCode::OK);
    let still_2 = first_next(&app).await;
    assert_eq!(after(&under("key-2"), &still_2).await.0, StatusCode::OK);

    // AND once it is made current (the second step), cursors of key-2 (now
    // previous) and key-3 open, and those of key-1 (two rotations ago) do not
    let current = sm
        .describe_secret()
        .secret_id(&name)
        .send()
        .await
        .expect("describe");
    let current_version = current
        .version_ids_to_stages()
        .into_iter()
        .flatten()
        .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
        .map(|(id, _)| id.clone())
        .expect("the current version");
    sm.update_secret_version_stage()
        .secret_id(&name)
        .version_stage("AWSCURRENT")
        .move_to_version_id(pending.version_id().expect("version"))
        .remove_from_version_id(current_version)
        .send()
        .await
        .expect("promote");
    tokio::time::sleep(TTL * 2).await;
    first_next(&app).await;
    assert_eq!(after(&app, &sealed_under_3).await.0, StatusCode::OK);
    assert_eq!(after(&app, &sealed_under_2).await.0, StatusCode::OK);
    assert_eq!(
        after(&app, &sealed_under_1).await.0,
        StatusCode::BAD_REQUEST,
        "two rotations ago"
    );
    let sealed_now = first_next(&app).await;
    assert_eq!(after(&under("key-3"), &sealed_now).await.0, StatusCode::OK);
}
