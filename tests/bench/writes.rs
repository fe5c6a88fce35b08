//! Table 7: what each mutation writes: DynamoDB write actions and the write
//! capacity DynamoDB Local reports, per operation.

use billing::domain::{Role, SubscriptionStatus, UserId};
use billing::store::{CustomerChange, EventStamp};
use http::{Method, StatusCode};
use serde_json::json;

use crate::harness::{App, Result, Sample, member, new_customer};
use crate::report::{Table, per};

/// Operations per mutation.
const N: usize = 20;

/// Runs every mutation `N` times on fresh customers; returns the table.
pub async fn run(app: &App) -> Result<Table> {
    let mut table = Table::new(
        "7. Writes per mutation",
        &[
            "mutation",
            "calls",
            "write actions",
            "capacity units",
            "p50 ms",
        ],
    );
    let origin = billing::domain::audit::Origin::system("bench");
    // Create, as the platform's customer.created does: the record, its owner,
    // its four listings.
    let mut customers = Vec::new();
    let mut sample = Sample::default();
    for i in 0..N {
        let c = new_customer(5_000_000 + i)?;
        let owner = member(c.owner_user_id, Role::Owner);
        let before = app.counter.snapshot();
        let started = std::time::Instant::now();
        app.store
            .create_customer_with_owner(&c, Some(&owner), None, &origin)
            .await?;
        sample.record(started.elapsed(), app.counter.snapshot().since(&before));
        customers.push(c);
    }
    row(&mut table, "create a customer with its owner", &sample);

    let users: Vec<UserId> = (0..N).map(|_| UserId::random()).collect();
    let sample = app
        .measure(N, 0, StatusCode::CREATED, |i| {
            app.req(
                Method::POST,
                format!("/customer/{}/member", customers[i].id),
            )
            .json(json!({"userID": users[i], "role": "user"}))
        })
        .await?;
    row(&mut table, "add a member (POST)", &sample);
    let sample = app
        .measure(N, 0, StatusCode::OK, |i| {
            app.req(
                Method::PATCH,
                format!("/customer/{}/member/{}", customers[i].id, users[i]),
            )
            .json(json!({"role": "admin"}))
        })
        .await?;
    row(&mut table, "change a member's role (PATCH)", &sample);
    let sample = app
        .measure(N, 0, StatusCode::NO_CONTENT, |i| {
            app.req(
                Method::DELETE,
                format!("/customer/{}/member/{}", customers[i].id, users[i]),
            )
        })
        .await?;
    row(&mut table, "remove a member (DELETE)", &sample);

    // A webhook's status change: the transaction its handler commits.
    let mut sample = Sample::default();
    for (i, c) in customers.iter().enumerate() {
        let event = EventStamp {
            source: "stripe",
            id: format!("evt_bench{i}"),
            version: None,
        };
        let before = app.counter.snapshot();
        let started = std::time::Instant::now();
        app.store
            .change_customer(&c.id, Some(&event), &event.origin(), |old| {
                let status = match old.subscription_status {
                    SubscriptionStatus::PastDue => SubscriptionStatus::Active,
                    _ => SubscriptionStatus::PastDue,
                };
                Some(CustomerChange {
                    status: Some(status),
                    ..CustomerChange::default()
                })
            })
            .await?;
        sample.record(started.elapsed(), app.counter.snapshot().since(&before));
    }
    row(
        &mut table,
        "webhook status change (its transaction)",
        &sample,
    );
    table.note(format!(
        "{N} of each on fresh customers, DynamoDB Local: calls = DynamoDB calls \
         (reads included); write actions = items in TransactWriteItems plus single writes; \
         capacity = read and write units DynamoDB Local reported for the calls. Each listing a \
         change counts in adds to one shard of its day counts (an UpdateItem of a small item) \
         where it put a new delta item before: the same action count."
    ));
    Ok(table)
}

fn row(table: &mut Table, label: &str, s: &Sample) {
    let n = s.n().max(1);
    table.row(vec![
        label.to_owned(),
        s.calls_per_run(),
        per(s.total.writes as f64, n),
        format!("{:.1}", s.total.capacity / n as f64),
        s.latencies.ms(50.0),
    ]);
}
