//! The table stream's batch (`events/cleanup-stream.json`): its filters and the
//! cleanup consumer.

use super::*;

/// A stream image (`{"S": ..}`, `{"N": ..}`) of an item as the SDK returns it.
pub(super) fn image(item: &HashMap<String, AttributeValue>) -> Value {
    item.iter()
        .map(|(k, v)| {
            let v = match v {
                AttributeValue::S(s) => json!({"S": s}),
                AttributeValue::N(n) => json!({"N": n}),
                other => panic!("{k}: customer records hold strings and numbers, not {other:?}"),
            };
            (k.clone(), v)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The customer record as the table holds it, as a stream image.
pub(super) async fn stored_image(app: &TestApp, id: &CustomerId) -> Value {
    let out = app
        .store
        .client()
        .get_item()
        .table_name(app.store.table_name())
        .set_key(Some(customer_key(id)))
        .consistent_read(true)
        .send()
        .await
        .expect("get the customer record");
    image(&out.item.expect("customer record"))
}

pub(super) fn without(v: &Value, key: &str) -> Value {
    let mut v = v.clone();
    if let Some(fields) = v.as_object_mut() {
        fields.remove(key);
    }
    v
}

/// A customer record's image but for when its deletion began: without
/// `deletingSince`, and with that time as `<deletingSince>` where a key holds it
/// (the `GSI1SK` of a deleting customer starts with it).
pub(super) fn timeless(image: &Value) -> Value {
    let mut v = without(image, "deletingSince");
    if let Some(since) = image["deletingSince"]["S"].as_str()
        && let Some(fields) = v.as_object_mut()
    {
        for value in fields.values_mut() {
            if let Some(s) = value["S"].as_str()
                && s.contains(since)
            {
                *value = json!({"S": s.replace(since, "<deletingSince>")});
            }
        }
    }
    v
}

/// The template's FilterCriteria of the stream consumer's event source.
pub(super) fn stream_filters() -> Vec<Value> {
    let events = template_events(STREAM_CONSUMER);
    let filters: Vec<Value> = entries(&events)
        .into_iter()
        .flat_map(|(_, e)| {
            e["Properties"]["FilterCriteria"]["Filters"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
        })
        .map(|f| {
            serde_json::from_str(str_of(&f["Pattern"], "Pattern")).expect("filter pattern JSON")
        })
        .collect();
    assert!(!filters.is_empty(), "template.yaml: the stream has filters");
    filters
}

/// An attribute value as a stream image holds it (`{"S": ..}`, `{"M": ..}`, ...).
pub(super) fn stream_value(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(_) => json!({"NULL": true}),
        AttributeValue::Ss(ss) => json!({"SS": ss}),
        AttributeValue::Ns(ns) => json!({"NS": ns}),
        AttributeValue::L(l) => json!({"L": l.iter().map(stream_value).collect::<Vec<_>>()}),
        AttributeValue::M(m) => json!({"M": m
            .iter()
            .map(|(k, v)| (k.clone(), stream_value(v)))
            .collect::<serde_json::Map<_, _>>()}),
        other => panic!("unexpected attribute {other:?}"),
    }
}

/// The template's filters pass exactly the INSERTs the stream consumer acts on
/// (billing::store::table::stream_customer, then the consumer: a customer
/// record in the deleting state, a shard of listing day counts, a day of a
/// members directory, a membership audit entry), for every item of the table: `record` (a stream record of the
/// sample) as the INSERT of each item.
pub(super) async fn check_stream_filters(app: &TestApp, name: &str, record: &Value) {
    let filters = stream_filters();
    let items = app
        .store
        .client()
        .scan()
        .table_name(app.store.table_name())
        .send()
        .await
        .expect("scan the table")
        .items
        .unwrap_or_default();
    let mut acted_on = BTreeSet::new();
    for item in &items {
        let image: serde_json::Map<String, Value> = item
            .iter()
            .map(|(k, v)| (k.clone(), stream_value(v)))
            .collect();
        let mut insert = record.clone();
        insert["eventName"] = json!("INSERT");
        let change = &mut insert["dynamodb"];
        change["Keys"] = json!({"PK": image["PK"], "SK": image["SK"]});
        change["NewImage"] = Value::Object(image.clone());
        if let Some(change) = change.as_object_mut() {
            change.remove("OldImage");
        }
        let parsed: aws_lambda_events::dynamodb::EventRecord =
            serde_json::from_value(insert.clone()).expect("a stream record");
        let (kind, acts) = match stream_customer(&parsed) {
            Some(StreamCustomer::Audited(entry)) => (
                format!("audit {}", entry.action.as_str()),
                entry.action.is_membership(),
            ),
            Some(StreamCustomer::Deleting(_)) => ("deleting customer".to_owned(), true),
            Some(StreamCustomer::Counted(_)) => ("listing count".to_owned(), true),
            Some(StreamCustomer::MembersCounted(..)) => ("members directory day".to_owned(), true),
            Some(StreamCustomer::Removed(_)) => panic!("{name}: an INSERT removes nothing"),
            None => (format!("{:?}", image.get("type")), false),
        };
        let passes = filters.iter().any(|f| matches_pattern(f, &insert));
        assert_eq!(
            passes, acts,
            "{name}: the template's filters pass an INSERT of {kind} exactly when the consumer acts on it"
        );
        if acts {
            acted_on.insert(kind);
        }
    }
    for kind in [
        "deleting customer",
        "listing count",
        "members directory day",
        "audit member.added",
    ] {
        assert!(acted_on.contains(kind), "{name}: the table held a {kind}");
    }
}

/// The batch is what Lambda delivers from the table's stream, through the template's
/// filters.
pub(super) fn check_stream_event(name: &str, event: &Value) {
    let filters = stream_filters();
    let view_type = TableDefinition::stream()
        .stream_view_type()
        .map(|t| t.as_str().to_owned())
        .unwrap_or_default();
    let keys = image(&customer_key(&customer_id()));
    let records = event["Records"].as_array().expect("Records");
    assert_eq!(records.len(), 2, "{name}: a MODIFY and a REMOVE");
    for (i, record) in records.iter().enumerate() {
        let what = format!("{name}: Records[{i}]");
        assert_eq!(record["eventSource"], "aws:dynamodb", "{what}");
        assert!(record["awsRegion"].is_string(), "{what}");
        assert!(
            record["eventSourceARN"]
                .as_str()
                .is_some_and(|arn| arn.starts_with("arn:aws:dynamodb:") && arn.contains("/stream/")),
            "{what}: eventSourceARN is a table stream"
        );
        let change = &record["dynamodb"];
        assert_eq!(change["StreamViewType"], view_type.as_str(), "{what}");
        assert_eq!(change["Keys"], keys, "{what}: the customer record's key");
        assert!(change["ApproximateCreationDateTime"].is_number(), "{what}");
        assert!(
            change["SizeBytes"].as_u64().is_some_and(|n| n > 0),
            "{what}"
        );
        assert!(
            change["SequenceNumber"]
                .as_str()
                .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())),
            "{what}: SequenceNumber"
        );
        assert!(
            filters.iter().any(|f| matches_pattern(f, record)),
            "{what}: passes one of the template's FilterCriteria"
        );
    }
}

pub(super) async fn run_stream_event(env: &Env, name: &str, raw: &str, json: &Value) {
    check_stream_event(name, json);
    // The batch, parsed as the Lambda runtime does: the customer's record entering
    // the deleting state, then removed.
    let event: aws_lambda_events::dynamodb::Event = serde_json::from_str(raw)
        .unwrap_or_else(|e| panic!("{name}: not a DynamoDB Streams event: {e}"));
    let id = customer_id();
    let seen: Vec<Option<StreamCustomer>> = event.records.iter().map(stream_customer).collect();
    assert_eq!(
        seen,
        [
            Some(StreamCustomer::Deleting(id)),
            Some(StreamCustomer::Removed(id))
        ],
        "{name}"
    );

    // GIVEN the customer with its members, put into the deleting state as a DELETE
    // request does before it dies
    let app = TestApp::new(env).await;
    app.seed(fixtures()).await;
    let active = stored_image(&app, &id).await;
    app.store
        .begin_deletion(&id, &billing_tests::by_test())
        .await
        .expect("begin deletion");
    let deleting = stored_image(&app, &id).await;
    // (and the template's filters let through exactly the INSERTs the
    // consumer acts on, of the items the table now holds)
    check_stream_filters(&app, name, &json["Records"][0]).await;
    // and the records' images are that record as the table holds it (but for when
    // the deletion began), the last one after the members are gone
    let (modify, remove) = (
        &json["Records"][0]["dynamodb"],
        &json["Records"][1]["dynamodb"],
    );
    assert_eq!(modify["OldImage"], active, "{name}: MODIFY OldImage");
    assert_eq!(
        timeless(&modify["NewImage"]),
        timeless(&deleting),
        "{name}: MODIFY NewImage"
    );
    let mut last = timeless(&deleting);
    last["memberCount"] = json!({"N": "0"});
    assert_eq!(
        timeless(&remove["OldImage"]),
        last,
        "{name}: REMOVE OldImage"
    );
    assert!(
        remove.get("NewImage").is_none(),
        "{name}: REMOVE has no NewImage"
    );
    let since = &modify["NewImage"]["deletingSince"]["S"];
    let parsed: Option<Timestamp> = serde_json::from_value(since.clone()).ok();
    assert_eq!(
        parsed.map(|t| time::to_millis(&t)).as_ref(),
        since.as_str().map(str::to_owned).as_ref(),
        "{name}: deletingSince as the table writes it"
    );
    assert!(
        deleting["deletingSince"]["S"].is_string(),
        "the table writes deletingSince"
    );
    assert_eq!(remove["OldImage"]["deletingSince"]["S"], *since, "{name}");

    // WHEN the batch reaches the stream consumer, the request's grace over
    let sink = EventSink::new(env).await;
    let cleanup = Cleanup::new(app.store.clone(), Some(env.payments()), sink.publisher())
        .with_grace(Duration::ZERO);
    cleanup
        .on_stream(&event)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));

    // THEN the MODIFY finished the cascade: nothing of the customer is left
    assert_eq!(
        app.store.find_customer(&id).await.ok(),
        Some(None),
        "{name}"
    );
    for u in [OWNER, ADMIN, MEMBER] {
        assert_eq!(
            app.store.membership_of(&user(u)).await.ok(),
            Some(None),
            "{name}"
        );
    }
    assert_eq!(crate::members::items_of(&app, CUSTOMER).await, 0, "{name}");
    // and the REMOVE published customer.deleted once, keyed by the record
    settle().await;
    let removed = &event.records[1];
    assert_eq!(
        sink.drain().await,
        [CustomerDeleted {
            event_id: removed.event_id.clone(),
            customer_id: id,
            deleted_at: time::to_seconds(&removed.change.approximate_creation_date_time),
        }],
        "{name}"
    );
}
