//! The platform's customer events in order (`version`), the tier's owner when
//! the platform and Stripe both name one, and deleted customers and users that
//! stay deleted (tombstones).

use billing::cascade::Cascade;
use billing::cleanup::Cleanup;
use billing::domain::{Customer, CustomerId, TierName, TierSource, UserId};
use billing::store::CustomerChange;
use billing::sync::platform::{Platform, PlatformError, PlatformOutcome};
use billing_tests::Env;
use billing_tests::app::{Spec, TestApp, committed_transactions};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::TestFn;
use crate::sync::{TIER_ID, item_count, listing, platform_event};

pub fn trials() -> Vec<(&'static str, TestFn)> {
    crate::trials![
        versions_5_then_4_then_6_apply_5_and_6,
        the_same_version_twice_is_stale_and_a_redelivery_a_duplicate,
        an_update_below_the_created_version_is_stale,
        racing_revisions_end_at_the_highest,
        stripe_owns_the_tier_its_subscription_names,
        a_deleted_customer_is_not_created_again,
        a_user_removed_by_user_deleted_owns_no_new_customer,
        writes_per_platform_event,
        events_from_another_sender_are_refused_counted_and_not_retried,
    ]
}

/// A `customer.created` of `id` owned by `owner`, with `version` when given.
fn created(event_id: &str, id: &CustomerId, owner: &UserId, version: Option<u64>) -> Value {
    let mut detail = json!({
        "customerID": id, "name": "Initech", "tierName": "pro", "tierID": TIER_ID,
        "ownerUserID": owner
    });
    if let Some(v) = version {
        detail["version"] = json!(v);
    }
    platform_event("customer.created", event_id, detail)
}

/// A `customer.updated` renaming `id` to `name`, with `version` when given.
fn renamed(event_id: &str, id: &CustomerId, name: &str, version: Option<u64>) -> Value {
    let mut detail = json!({"customerID": id, "name": name});
    if let Some(v) = version {
        detail["version"] = json!(v);
    }
    platform_event("customer.updated", event_id, detail)
}

/// A `customer.updated` moving `id` to `tier`, at `version`.
fn retiered(event_id: &str, id: &CustomerId, tier: &str, version: u64) -> Value {
    platform_event(
        "customer.updated",
        event_id,
        json!({"customerID": id, "tierName": tier, "tierID": TIER_ID, "version": version}),
    )
}

/// A customer created by the platform, at `version`.
async fn platform_customer(platform: &Platform, version: Option<u64>) -> (CustomerId, UserId) {
    let (id, owner) = (CustomerId::random(), UserId::random());
    let event = created(&format!("c-{id}"), &id, &owner, version);
    assert_eq!(
        platform.on_event(&event).await.expect("created"),
        PlatformOutcome::Created
    );
    (id, owner)
}

async fn record(app: &TestApp, id: &CustomerId) -> Customer {
    app.store.get_customer(id).await.expect("customer")
}

/// The `Outcome` of the one `SyncEvents` point `work` emits.
async fn counted<F: std::future::Future>(work: F) -> (F::Output, String) {
    let capture = billing::telemetry::metrics::Capture::new();
    let out = capture.scope(work).await;
    let sync: Vec<Value> = capture
        .documents()
        .into_iter()
        .filter(|d| d.get("SyncEvents").is_some())
        .collect();
    assert_eq!(sync.len(), 1, "{sync:?}");
    assert_eq!(sync[0]["Source"], "platform");
    (
        out,
        sync[0]["Outcome"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn versions_5_then_4_then_6_apply_5_and_6(env: &'static Env) {
    // GIVEN a customer the platform created without a version
    let app = TestApp::new(env).await;
    let platform = Platform::new(app.store.clone());
    let (id, _) = platform_customer(&platform, None).await;
    // WHEN revision 5 renames it
    let v5 = renamed("v-5", &id, "Five", Some(5));
    assert_eq!(
        platform.on_event(&v5).await.unwrap(),
        PlatformOutcome::Updated
    );
    assert_eq!(
        (
            record(&app, &id).await.name,
            record(&app, &id).await.platform_version
        ),
        ("Five".to_owned(), Some(5))
    );
    // AND revision 4 arrives late
    let (before, items) = (record(&app, &id).await, item_count(&app).await);
    let v4 = renamed("v-4", &id, "Four", Some(4));
    let (outcome, metric) = counted(platform.on_event(&v4)).await;
    // THEN it is stale, counted so, and nothing changed (record, audit, anything)
    assert_eq!(outcome.unwrap(), PlatformOutcome::Stale);
    assert_eq!(metric, "stale");
    assert_eq!(record(&app, &id).await, before);
    assert_eq!(item_count(&app).await, items);
    // WHEN revision 6 comes
    let v6 = retiered("v-6", &id, "enterprise", 6);
    let (outcome, metric) = counted(platform.on_event(&v6)).await;
    // THEN it applies: the tier moves, the name of 5 stays, the revision is 6
    assert_eq!(
        (outcome.unwrap(), metric.as_str()),
        (PlatformOutcome::Updated, "applied")
    );
    let now = record(&app, &id).await;
    assert_eq!(
        (
            now.name.as_str(),
            now.tier_name.as_str(),
            now.platform_version
        ),
        ("Five", "enterprise", Some(6))
    );
    assert_eq!(
        listing(&app, "tierName=enterprise").await.1,
        vec![id.to_string()]
    );
    assert_eq!(listing(&app, "tierName=pro").await.0, 0);
    // AND an event without a version applies as it comes and keeps revision 6
    let plain = renamed("v-none", &id, "Plain", None);
    assert_eq!(
        platform.on_event(&plain).await.unwrap(),
        PlatformOutcome::Updated
    );
    let now = record(&app, &id).await;
    assert_eq!(
        (now.name.as_str(), now.platform_version),
        ("Plain", Some(6))
    );
    // AND a version that is not an integer >= 1 is refused, nothing written
    let items = item_count(&app).await;
    for bad in [json!(0), json!(-1), json!(1.5), json!("7")] {
        let mut event = renamed("v-bad", &id, "Bad", None);
        event["detail"]["version"] = bad.clone();
        match platform.on_event(&event).await {
            Err(PlatformError::Rejected(reason)) => assert!(reason.contains("version"), "{reason}"),
            other => panic!("version {bad}: {other:?}"),
        }
    }
    assert_eq!(item_count(&app).await, items);
}

async fn the_same_version_twice_is_stale_and_a_redelivery_a_duplicate(env: &'static Env) {
    let app = TestApp::new(env).await;
    let platform = Platform::new(app.store.clone());
    let (id, _) = platform_customer(&platform, Some(1)).await;
    // GIVEN revision 5 applied
    let first = renamed("same-1", &id, "First", Some(5));
    assert_eq!(
        platform.on_event(&first).await.unwrap(),
        PlatformOutcome::Updated
    );
    let before = record(&app, &id).await;
    // WHEN another event claims revision 5 too
    let second = renamed("same-2", &id, "Second", Some(5));
    let (outcome, metric) = counted(platform.on_event(&second)).await;
    // THEN it is stale and changes nothing
    assert_eq!(
        (outcome.unwrap(), metric.as_str()),
        (PlatformOutcome::Stale, "stale")
    );
    assert_eq!(record(&app, &id).await, before);
    // AND the first event redelivered is a duplicate
    let (outcome, metric) = counted(platform.on_event(&first)).await;
    assert_eq!(
        (outcome.unwrap(), metric.as_str()),
        (PlatformOutcome::Unchanged, "duplicate")
    );
    assert_eq!(record(&app, &id).await, before);
}

async fn an_update_below_the_created_version_is_stale(env: &'static Env) {
    // GIVEN a customer created at revision 5
    let app = TestApp::new(env).await;
    let platform = Platform::new(app.store.clone());
    let (id, _) = platform_customer(&platform, Some(5)).await;
    assert_eq!(record(&app, &id).await.platform_version, Some(5));
    let before = record(&app, &id).await;
    // WHEN updates of revisions 3 and 5 arrive
    for (event_id, v) in [("low-3", 3), ("low-5", 5)] {
        let event = retiered(event_id, &id, "enterprise", v);
        // THEN each is stale, and the customer stays as created, in its listings
        assert_eq!(
            platform.on_event(&event).await.unwrap(),
            PlatformOutcome::Stale
        );
    }
    assert_eq!(record(&app, &id).await, before);
    assert_eq!(listing(&app, "tierName=pro").await.1, vec![id.to_string()]);
    assert_eq!(listing(&app, "tierName=enterprise").await.0, 0);
}

async fn racing_revisions_end_at_the_highest(env: &'static Env) {
    // GIVEN a customer, and revisions 1..=12 each renaming it and moving its tier
    let app = TestApp::new(env).await;
    let platform = Platform::new(app.store.clone());
    let (id, _) = platform_customer(&platform, None).await;
    let tiers = ["pro", "basic", "enterprise"];
    let events: Vec<Value> = (1..=12u64)
        .rev()
        .map(|v| {
            let mut event = retiered(&format!("race-{v}"), &id, tiers[v as usize % 3], v);
            event["detail"]["name"] = json!(format!("Revision {v}"));
            event
        })
        .collect();
    // WHEN they are all delivered at once, newest first, each twice
    let outcomes = join_all(
        events
            .iter()
            .chain(events.iter())
            .map(|e| platform.on_event(e)),
    )
    .await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    // THEN the customer is revision 12's, in exactly its listings
    let now = record(&app, &id).await;
    assert_eq!(
        (
            now.name.as_str(),
            now.tier_name.as_str(),
            now.platform_version
        ),
        ("Revision 12", tiers[0], Some(12))
    );
    for tier in tiers {
        let want = usize::from(tier == tiers[0]);
        let (items, ids) = listing(&app, &format!("tierName={tier}")).await;
        assert_eq!((items as usize, ids.len()), (want, want), "{tier}");
    }
    assert_eq!(listing(&app, "").await.0, 1);
}

async fn stripe_owns_the_tier_its_subscription_names(env: &'static Env) {
    // GIVEN a customer the platform created (it owns the tier)
    let app = TestApp::new(env).await;
    let platform = Platform::new(app.store.clone());
    let (id, _) = platform_customer(&platform, Some(1)).await;
    assert_eq!(
        record(&app, &id).await.tier_source,
        Some(TierSource::Platform)
    );
    // WHEN Stripe's current subscription names a tier (the Stripe sync's change)
    let stripe = |names_tier: bool| CustomerChange {
        tier: names_tier.then(|| (TierName::parse("stripe-gold").unwrap(), uuid::Uuid::nil())),
        tier_source: Some(TierSource::after_stripe(names_tier)),
        ..CustomerChange::default()
    };
    let applied = app
        .store
        .change_customer(&id, None, &billing_tests::by_test(), |_| Some(stripe(true)))
        .await
        .unwrap();
    assert_eq!(applied.as_str(), "applied");
    // AND the platform then moves the tier and renames the customer
    let mut event = retiered("own-2", &id, "enterprise", 2);
    event["detail"]["name"] = json!("Renamed");
    assert_eq!(
        platform.on_event(&event).await.unwrap(),
        PlatformOutcome::Updated
    );
    // THEN Stripe's tier stays, the name and the revision apply
    let now = record(&app, &id).await;
    assert_eq!(
        (
            now.tier_name.as_str(),
            now.name.as_str(),
            now.platform_version
        ),
        ("stripe-gold", "Renamed", Some(2))
    );
    assert_eq!(now.tier_source, Some(TierSource::Stripe));
    assert_eq!(listing(&app, "tierName=stripe-gold").await.0, 1);
    // AND a tier-only update is nothing new but its revision
    let tier_only = retiered("own-3", &id, "enterprise", 3);
    assert_eq!(
        platform.on_event(&tier_only).await.unwrap(),
        PlatformOutcome::Updated
    );
    let now = record(&app, &id).await;
    assert_eq!(
        (now.tier_name.as_str(), now.platform_version),
        ("stripe-gold", Some(3))
    );
    // WHEN Stripe's current subscription names no tier any more
    app.store
        .change_customer(&id, None, &billing_tests::by_test(), |_| {
            Some(stripe(false))
        })
        .await
        .unwrap();
    // THEN the platform's tier applies again, and the platform owns it
    let event = retiered("own-4", &id, "enterprise", 4);
    assert_eq!(
        platform.on_event(&event).await.unwrap(),
        PlatformOutcome::Updated
    );
    let now = record(&app, &id).await;
    assert_eq!(
        (now.tier_name.as_str(), now.tier_source),
        ("enterprise", Some(TierSource::Platform))
    );
    assert_eq!(listing(&app, "tierName=enterprise").await.0, 1);
    assert_eq!(listing(&app, "tierName=stripe-gold").await.0, 0);
}

/// The rejection reason of `event`, which must write nothing.
async fn refused(app: &TestApp, platform: &Platform, event: &Value) -> String {
    let items = item_count(app).await;
    let (outcome, metric) = counted(platform.on_event(event)).await;
    assert_eq!(metric, "rejected");
    assert_eq!(item_count(app).await, items, "{event}: nothing written");
    match outcome {
        Err(PlatformError::Rejected(reason)) => reason,
        other => panic!("{event}: {other:?}"),
    }
}

/// The tombstone item at `key`, if any.
async fn tombstone(
    app: &TestApp,
    key: billing::store::table::Item,
) -> Option<billing::store::table::Item> {
    app.store
        .client()
        .get_item()
        .table_name(app.store.table_name())
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item
}

/// Seconds from now to a tombstone's `expiresAt`.
fn lives_for(item: &billing::store::table::Item) -> i64 {
    let expires: i64 = item["expiresAt"].as_n().unwrap().parse().unwrap();
    expires - billing::domain::now().timestamp()
}

async fn a_deleted_customer_is_not_created_again(env: &'static Env) {
    // GIVEN a customer the platform created, then deleted through the cascade
    let app = TestApp::new(env).await;
    let platform = Platform::new(app.store.clone());
    let (id, owner) = platform_customer(&platform, Some(1)).await;
    Cascade::new(app.store.clone(), None)
        .run(&id, &billing_tests::by_test())
        .await
        .expect("deleted");
    // THEN its id is remembered for at least 30 days
    let key = billing::store::table::customer_tombstone_key(&id);
    let stone = tombstone(&app, key).await.expect("tombstone");
    assert!(lives_for(&stone) >= 30 * 86_400 - 60, "{stone:?}");
    // WHEN customer.created for that id comes again (a new event id; its old
    // owner, then a new one)
    for (n, owner) in [owner, UserId::random()].iter().enumerate() {
        let again = created(&format!("again-{n}"), &id, owner, Some(2));
        // THEN it is refused with the reason, and nothing is written
        let reason = refused(&app, &platform, &again).await;
        assert!(
            reason.contains(&id.to_string()) && reason.contains("deleted"),
            "{reason}"
        );
        assert!(app.store.find_customer(&id).await.unwrap().is_none());
        assert_eq!(app.store.membership_of(owner).await.unwrap(), None);
    }
    // AND a customer deleted by an admin DELETE is remembered the same way
    let seeded = app.customer(Spec::default()).await;
    let path = format!("/customer/{}", seeded.id);
    let reply = app.admin(http::Method::DELETE, &path, None).await;
    assert_eq!(reply.status.as_u16(), 204);
    let seeded_id = CustomerId::parse(&seeded.id).unwrap();
    let again = created("again-admin", &seeded_id, &UserId::random(), None);
    let reason = refused(&app, &platform, &again).await;
    assert!(reason.contains("deleted"), "{reason}");
}

async fn a_user_removed_by_user_deleted_owns_no_new_customer(env: &'static Env) {
    let app = TestApp::new(env).await;
    let platform = Platform::new(app.store.clone());
    let cleanup = Cleanup::new(app.store.clone(), None, billing::events::Publisher::Log);
    // GIVEN three users removed by user.deleted: an owner (their customer is
    // deleted), a member (their membership removed), a user of no customer
    let seeded = app.customer(Spec::with_members(1)).await;
    let owner = UserId::parse(&seeded.owner).unwrap();
    let member = UserId::parse(&seeded.members[0]).unwrap();
    let stranger = UserId::random();
    for user in [owner, member, stranger] {
        cleanup
            .on_user_deleted(&user, &billing_tests::by_test())
            .await
            .expect("user.deleted");
        let key = billing::store::table::user_tombstone_key(&user);
        let stone = tombstone(&app, key).await.expect("user tombstone");
        assert!(lives_for(&stone) >= 30 * 86_400 - 60, "{stone:?}");
    }
    assert!(
        app.store
            .find_customer(&CustomerId::parse(&seeded.id).unwrap())
            .await
            .unwrap()
            .is_none()
    );
    // WHEN a late customer.created names one of them as owner
    for (n, user) in [owner, member, stranger].iter().enumerate() {
        let id = CustomerId::random();
        let late = created(&format!("late-{n}"), &id, user, Some(1));
        // THEN it is refused with the reason, and nothing is written
        let reason = refused(&app, &platform, &late).await;
        assert!(
            reason.contains(&user.to_string()) && reason.contains("user.deleted"),
            "{reason}"
        );
        assert!(app.store.find_customer(&id).await.unwrap().is_none());
        assert_eq!(app.store.membership_of(user).await.unwrap(), None);
    }
    // AND a user.deleted redelivered is still harmless, a live user still welcome
    cleanup
        .on_user_deleted(&stranger, &billing_tests::by_test())
        .await
        .expect("redelivered");
    let (id, _) = platform_customer(&platform, None).await;
    assert_eq!(record(&app, &id).await.member_count, 1);
}

async fn writes_per_platform_event(env: &'static Env) {
    // The actions of each transaction a platform event commits (writes and
    // condition checks): `customer.created` creates the record, its 4 listing
    // entries and 4 count deltas, the owner's member and membership, its
    // members' directory (2), the 2 audit entries and the customer's audit
    // sequence, and the event's id (17), and checks the 2 tombstones: 19. A
    // rename: the record, its 4 entries, the audit entry and sequence and the
    // event's id: 8. A stale event commits nothing.
    let app = TestApp::new(env).await;
    let platform = Platform::new(app.store.clone());
    let (id, owner) = (CustomerId::random(), UserId::random());
    let (outcome, sizes) =
        committed_transactions(platform.on_event(&created("w-1", &id, &owner, Some(3)))).await;
    assert_eq!(
        (outcome.unwrap(), sizes),
        (PlatformOutcome::Created, vec![19])
    );
    let (outcome, sizes) =
        committed_transactions(platform.on_event(&renamed("w-2", &id, "Renamed", Some(4)))).await;
    assert_eq!(
        (outcome.unwrap(), sizes),
        (PlatformOutcome::Updated, vec![8])
    );
    let (outcome, sizes) =
        committed_transactions(platform.on_event(&renamed("w-3", &id, "Old", Some(2)))).await;
    assert_eq!((outcome.unwrap(), sizes), (PlatformOutcome::Stale, vec![]));
    // user.deleted: the user's tombstone first (1), then what it removes.
    let cleanup = Cleanup::new(app.store.clone(), None, billing::events::Publisher::Log);
    let (_, sizes) = committed_transactions(
        cleanup.on_user_deleted(&UserId::random(), &billing_tests::by_test()),
    )
    .await;
    assert_eq!(sizes, vec![1]);
}

/// The platform's sender as the template configures the hooks (`source`,
/// `account` of `sync::platform_event`).
fn platform_sender() -> billing::sender::ExpectedSender {
    billing::sender::ExpectedSender {
        source: "platform".into(),
        account: "123456789012".into(),
    }
}

/// `event` as another sender would invoke the function with it: another
/// account, another source, or without either.
fn from_elsewhere(event: &Value) -> Vec<Value> {
    let mut others = Vec::new();
    for (field, value) in [
        ("account", json!("210987654321")),
        ("source", json!("attacker.events")),
        ("account", Value::Null),
        ("source", Value::Null),
    ] {
        let mut other = event.clone();
        match value {
            Value::Null => {
                other.as_object_mut().expect("event").remove(field);
            }
            v => other[field] = v,
        }
        others.push(other);
    }
    others
}

/// `user-deleted` and `platform-customer` process only events carrying the
/// platform's `source` and `account` (what their rule matches): any other is
/// refused before anything is read or written, logged, counted as
/// `SyncEvents` `foreign_sender`, and its invocation succeeds, so Lambda does
/// not retry it; the same event from the platform is processed.
async fn events_from_another_sender_are_refused_counted_and_not_retried(env: &'static Env) {
    let app = TestApp::new(env).await;
    let platform = Platform::new(app.store.clone()).with_sender(platform_sender());
    let (id, owner) = (CustomerId::random(), UserId::random());
    let genuine = created("s-1", &id, &owner, None);
    for (i, forged) in from_elsewhere(&genuine).into_iter().enumerate() {
        let (outcome, metric) = counted(platform.on_event(&forged)).await;
        assert!(
            matches!(outcome, Err(PlatformError::ForeignSender(_))),
            "{forged}: {outcome:?}"
        );
        assert_eq!(metric, "foreign_sender", "{forged}");
        assert!(
            platform.on_invocation(&forged).await.is_ok(),
            "{i}: not retried"
        );
    }
    assert_eq!(
        app.store.find_customer(&id).await.unwrap(),
        None,
        "nothing created"
    );
    // A malformed event from the platform is still an error: retried, then dead letters.
    let malformed = platform_event("customer.created", "s-2", json!({"customerID": "nope"}));
    assert!(platform.on_invocation(&malformed).await.is_err());
    // The platform's own event is processed.
    assert_eq!(
        platform.on_event(&genuine).await.unwrap(),
        PlatformOutcome::Created
    );

    // user.deleted: the owner of that customer, from elsewhere, deletes nothing.
    let users = billing::sender::ExpectedSender {
        source: "platform".into(),
        account: "123456789012".into(),
    };
    let cleanup = Cleanup::new(
        app.store.clone(),
        Some(env.payments()),
        billing::events::Publisher::Log,
    )
    .with_sender(users);
    let deleted = platform_event("user.deleted", "s-3", json!({"userID": owner}));
    for forged in from_elsewhere(&deleted) {
        let capture = billing::telemetry::metrics::Capture::new();
        let outcome = capture.scope(cleanup.on_user_deleted_event(&forged)).await;
        assert!(
            matches!(
                outcome,
                Err(billing::cleanup::CleanupError::ForeignSender(_))
            ),
            "{forged}: {outcome:?}"
        );
        let counted: Vec<Value> = capture
            .documents()
            .into_iter()
            .filter(|d| d.get("SyncEvents").is_some())
            .collect();
        assert_eq!(counted.len(), 1, "{counted:?}");
        assert_eq!(
            (&counted[0]["Source"], &counted[0]["Outcome"]),
            (&json!("platform"), &json!("foreign_sender"))
        );
        assert!(
            cleanup.on_user_deleted_invocation(&forged).await.is_ok(),
            "not retried"
        );
    }
    assert!(
        app.store.find_customer(&id).await.unwrap().is_some(),
        "not deleted"
    );
    assert_eq!(
        app.store.membership_of(&owner).await.unwrap(),
        Some((id, billing::domain::Role::Owner)),
        "the owner stays"
    );
    // From the platform, the user is deleted with their customer.
    assert_eq!(
        cleanup.on_user_deleted_event(&deleted).await.unwrap(),
        billing::cleanup::UserCleanup::CustomerDeleted(id)
    );
}
