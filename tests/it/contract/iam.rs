//! `template.yaml`'s IAM: each function granted exactly what its code calls.

use std::collections::BTreeSet;

use billing::api::Endpoint;
use billing::store::table::{MEMBERS_INDEX, idempotency_key};
use billing_tests::Env;

use super::{
    DELETION_MONITOR, Deployment, Function, PEM_MODE, PLATFORM_CUSTOMER_HOOK, RECONCILE,
    ROUTE_NOT_FOUND, STREAM_CONSUMER, STRIPE_WEBHOOK, TokenMode, USER_DELETED_HOOK, conditional,
    entries, functions, is_no_value, one_or_many, platform_hook, render, template,
};

/// The index the deletion monitor queries (partition `DELETING`).
const DELETIONS_INDEX: &str = "GSI1";

/// Where an item action is allowed: anywhere, only inside TransactWriteItems
/// (`dynamodb:EnclosingOperation`), or only on items whose partition key is
/// like the pattern (`dynamodb:LeadingKeys`, e.g. `IDEMPOTENCY#*`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Within {
    Anywhere,
    Transaction,
    Partitions(String),
}

/// One permission: action, resource, where it holds, and the template
/// condition it is granted under (none: always).
type Grant = (String, String, Within, Option<String>);

/// The partitions of the `Idempotency-Key` records, as an IAM pattern.
fn idempotency_partitions() -> String {
    let key = idempotency_key("");
    let pk = key["PK"].as_s().expect("PK is a string");
    format!("{pk}*")
}

/// What each function's code path calls (shared/src/store, cascade, startup, events),
/// and nothing more. TransactWriteItems is no IAM action: its Put/Update/Delete are
/// authorized as PutItem/UpdateItem/DeleteItem within it.
fn expected_grants(binary: &str) -> BTreeSet<Grant> {
    if binary == ROUTE_NOT_FOUND || binary == billing::api::CONSOLE_FUNCTION {
        // It answers from the route table (or the console's embedded assets)
        // alone: no table, no secret, nothing but the logging SAM's basic
        // execution role gives every function.
        return BTreeSet::new();
    }
    let table = "GetAtt:Table.Arn".to_owned();
    let index = |name: &str| format!("Sub:${{Table.Arn}}/index/{name}");
    if binary == DELETION_MONITOR {
        // One query of the deleting customers' index: no item, no table query,
        // no write, no secret.
        return BTreeSet::from([(
            "dynamodb:Query".to_owned(),
            index(DELETIONS_INDEX),
            Within::Anywhere,
            None,
        )]);
    }
    let plain = |action: &str, resource: &str| {
        (
            format!("dynamodb:{action}"),
            resource.to_owned(),
            Within::Anywhere,
            None,
        )
    };
    let in_tx = |action: &str| {
        (
            format!("dynamodb:{action}"),
            table.clone(),
            Within::Transaction,
            None,
        )
    };
    let secret = |param: &str, only_if: Option<&str>| {
        (
            "secretsmanager:GetSecretValue".to_owned(),
            format!("Ref:{param}"),
            Within::Anywhere,
            only_if.map(str::to_owned),
        )
    };
    if let Some(endpoint) = Endpoint::ALL.into_iter().find(|e| e.function() == binary) {
        return endpoint_grants(endpoint, &table);
    }
    // Customer records, memberships, Stripe lookups, listing entries.
    let mut grants = BTreeSet::from([plain("GetItem", &table)]);
    // The deletion cascade: member items by query, transactional puts, updates
    // (listing day counts) and deletes, and Stripe.
    let cascade = [
        plain("Query", &table),
        in_tx("PutItem"),
        in_tx("UpdateItem"),
        in_tx("DeleteItem"),
        secret("StripeSecretKeySecretArn", None),
    ];
    match binary {
        USER_DELETED_HOOK => grants.extend(cascade),
        // Signed by Stripe: its endpoint secret, and the Stripe key (each event
        // reads Stripe's state), never the JWT key. An event replaces the record
        // and its entries (Put), puts the applied event and the lookup, adds to
        // the listings' day counts (Update), deletes the entries of listings it
        // leaves and an old lookup: no Query.
        STRIPE_WEBHOOK => grants.extend([
            in_tx("PutItem"),
            in_tx("UpdateItem"),
            in_tx("DeleteItem"),
            secret("StripeWebhookSecretArn", None),
            secret("StripeSecretKeySecretArn", None),
        ]),
        // As the webhook's change path, plus the owner's member and membership
        // (Put), the members' directory (Update, ADD) and the tombstones of a
        // new customer's id and owner (ConditionCheck); the Stripe key (a customer
        // created with its Stripe customer reads Stripe's billing).
        PLATFORM_CUSTOMER_HOOK => grants.extend([
            in_tx("ConditionCheckItem"),
            in_tx("PutItem"),
            in_tx("UpdateItem"),
            in_tx("DeleteItem"),
            secret("StripeSecretKeySecretArn", None),
        ]),
        // Walks every customer (the listing's entries by Query, their records by
        // BatchGetItem), reads Stripe, repairs through the webhook's change path.
        RECONCILE => grants.extend([
            plain("Query", &table),
            plain("BatchGetItem", &table),
            in_tx("PutItem"),
            in_tx("UpdateItem"),
            in_tx("DeleteItem"),
            secret("StripeSecretKeySecretArn", None),
        ]),
        // The cascade, the compaction of listing day counts (Query, Update,
        // Delete) and their days' fences (Put), the fences of members' minutes
        // (the members index by Query; Put while the customer is active, a
        // ConditionCheck), and the events: customer.deleted and the
        // membership events.
        STREAM_CONSUMER => {
            grants.extend(cascade);
            grants.insert(plain("Query", &index(MEMBERS_INDEX)));
            grants.insert(in_tx("ConditionCheckItem"));
            grants.insert((
                "events:PutEvents".to_owned(),
                "Sub:arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"
                    .to_owned(),
                Within::Anywhere,
                None,
            ));
        }
        _ => panic!("{binary}: no expected grants; add them here"),
    }
    grants
}

/// An endpoint's function: the table actions its code performs, as the route
/// table declares them (reads on the table and its indexes, writes inside
/// transactions, writes of its idempotency records), and in PEM mode the JWT
/// public key it fetches at cold start (billing::startup; in JWKS mode it
/// reads no secret for tokens). Only the deletion cascade reads the Stripe
/// key.
fn endpoint_grants(endpoint: Endpoint, table: &str) -> BTreeSet<Grant> {
    let grant = |action: &str, resource: String, within: Within| {
        (action.to_owned(), resource, within, None)
    };
    let reads = endpoint
        .table_reads()
        .iter()
        .map(|a| grant(a, table.to_owned(), Within::Anywhere));
    let indexes = endpoint.indexes_queried().iter().map(|i| {
        grant(
            "dynamodb:Query",
            format!("Sub:${{Table.Arn}}/index/{i}"),
            Within::Anywhere,
        )
    });
    let in_tx = endpoint
        .transaction_writes()
        .iter()
        .map(|a| grant(a, table.to_owned(), Within::Transaction));
    let idempotency = endpoint.idempotency_writes().iter().map(|a| {
        grant(
            a,
            table.to_owned(),
            Within::Partitions(idempotency_partitions()),
        )
    });
    let mut grants: BTreeSet<Grant> = reads
        .chain(indexes)
        .chain(in_tx)
        .chain(idempotency)
        .collect();
    grants.insert((
        "secretsmanager:GetSecretValue".to_owned(),
        "Ref:JwtPublicKeySecretArn".to_owned(),
        Within::Anywhere,
        Some(PEM_MODE.to_owned()),
    ));
    // The listings' cursor key, read by ARN (its versions) at cold start and
    // every few minutes.
    if endpoint.pages_with_cursors() {
        grants.insert((
            "secretsmanager:GetSecretValue".to_owned(),
            "Ref:CursorKeySecret".to_owned(),
            Within::Anywhere,
            None,
        ));
    }
    if endpoint == Endpoint::DeleteCustomer {
        grants.insert((
            "secretsmanager:GetSecretValue".to_owned(),
            "Ref:StripeSecretKeySecretArn".to_owned(),
            Within::Anywhere,
            None,
        ));
    }
    grants
}

/// One allowed action on one resource, as a function's policy states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Permission {
    pub action: String,
    pub resource: String,
    /// Only inside TransactWriteItems (`dynamodb:EnclosingOperation`).
    pub in_transaction: bool,
    /// Only on items whose partition key is like one of these
    /// (`dynamodb:LeadingKeys`, `ForAllValues:StringLike`); None: any.
    pub partitions: Option<Vec<String>>,
    /// The template condition it is granted under (none: always).
    pub only_if: Option<String>,
}

impl Permission {
    /// Whether it allows `action` on `resource` for an item of partition `pk`
    /// (inside a transaction or not).
    pub fn allows(&self, action: &str, resource: &str, pk: &str, in_transaction: bool) -> bool {
        self.action == action
            && self.resource == resource
            && (in_transaction || !self.in_transaction)
            && self
                .partitions
                .as_ref()
                .is_none_or(|ps| ps.iter().any(|p| string_like(p, pk)))
    }
}

/// IAM's `StringLike`: `*` is any run of characters, `?` any one.
pub(super) fn string_like(pattern: &str, value: &str) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('*', rest)) => (0..=v.len()).any(|i| go(rest, &v[i..])),
            Some(('?', rest)) => !v.is_empty() && go(rest, &v[1..]),
            Some((c, rest)) => v.first() == Some(c) && go(rest, &v[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    go(&p, &v)
}

/// The permissions of a function's `Policies`: inline statements only (none
/// without `Policies`), each either always or, as `!If [Condition, statement,
/// !Ref AWS::NoValue]`, only under that condition. A statement's `Condition`
/// may confine it to transactions and to partitions.
pub(super) fn permissions(f: &Function) -> Vec<Permission> {
    let Some(policies) = f.properties.get("Policies") else {
        return Vec::new();
    };
    let policies = policies
        .as_sequence()
        .unwrap_or_else(|| panic!("{}: Policies is a list of policy documents", f.logical_id));
    let mut found = Vec::new();
    for policy in policies {
        let statements = policy["Statement"].as_sequence().unwrap_or_else(|| {
            panic!(
                "{}: only inline IAM statements, found {policy:?}",
                f.logical_id
            )
        });
        for s in statements {
            let (s, only_if) = match conditional(s) {
                None => (s, None),
                Some((condition, then, otherwise)) => {
                    assert!(
                        is_no_value(otherwise),
                        "{}: a conditional statement is left out otherwise (AWS::NoValue)",
                        f.logical_id
                    );
                    assert!(
                        conditional(then).is_none(),
                        "{}: one condition per statement",
                        f.logical_id
                    );
                    (then, Some(condition))
                }
            };
            assert_eq!(render(&s["Effect"]), "Allow", "{}", f.logical_id);
            let mut in_transaction = false;
            let mut partitions = None;
            if let Some(c) = s.get("Condition") {
                for (operator, block) in entries(c) {
                    for (key, values) in entries(block) {
                        let values = one_or_many(values);
                        match (operator.as_str(), key.as_str(), values.as_slice()) {
                            (
                                "ForAnyValue:StringEquals",
                                "dynamodb:EnclosingOperation",
                                [operation],
                            ) if operation == "TransactWriteItems" => in_transaction = true,
                            // Every key the request names in the partitions
                            // (ForAllValues: a request is allowed only when all are).
                            ("ForAllValues:StringLike", "dynamodb:LeadingKeys", patterns)
                                if !patterns.is_empty() =>
                            {
                                partitions = Some(patterns.to_vec());
                            }
                            _ => panic!("{}: unexpected Condition {c:?}", f.logical_id),
                        }
                    }
                }
            }
            for action in one_or_many(&s["Action"]) {
                for resource in one_or_many(&s["Resource"]) {
                    assert!(
                        !action.contains('*') && resource != "*",
                        "{}: no wildcards ({action} on {resource})",
                        f.logical_id
                    );
                    found.push(Permission {
                        action: action.clone(),
                        resource,
                        in_transaction,
                        partitions: partitions.clone(),
                        only_if: only_if.clone(),
                    });
                }
            }
        }
    }
    found
}

/// The grants of a function's `Policies`, by action and resource: inside
/// transactions, on the idempotency records' partitions (the writes outside
/// transactions), or anywhere (reads, whatever their partitions).
fn granted(f: &Function) -> BTreeSet<Grant> {
    let writes = [
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    ];
    permissions(f)
        .into_iter()
        .map(|p| {
            let within = if p.in_transaction {
                Within::Transaction
            } else if writes.contains(&p.action.as_str()) {
                let partitions = p.partitions.unwrap_or_else(|| {
                    panic!(
                        "{}: {} outside transactions on any partition",
                        f.logical_id, p.action
                    )
                });
                assert_eq!(partitions.len(), 1, "{}: {}", f.logical_id, p.action);
                Within::Partitions(partitions[0].clone())
            } else {
                Within::Anywhere
            };
            (p.action, p.resource, within, p.only_if)
        })
        .collect()
}

pub(super) async fn template_grants_each_function_exactly_its_calls(_env: &'static Env) {
    let template = template();
    for f in functions(&template) {
        // SAM's generated role: basic execution (logging) plus the Policies.
        assert!(
            !f.properties.contains_key("Role"),
            "{}: no role of its own",
            f.logical_id
        );
        if f.binary == ROUTE_NOT_FOUND || f.binary == billing::api::CONSOLE_FUNCTION {
            assert!(
                !f.properties.contains_key("Policies"),
                "{}: no Policies at all",
                f.logical_id
            );
        }
        assert_eq!(granted(&f), expected_grants(&f.binary), "{}", f.logical_id);
        // SAM grants sqs:SendMessage on a DeadLetterQueue's target (and nothing
        // else for it): only the platform's hooks have one, each its own queue.
        let dlq = f.properties.get("DeadLetterQueue");
        let hook = platform_hook(&f.binary);
        assert_eq!(
            dlq.is_some(),
            hook.is_some(),
            "{}: DeadLetterQueue",
            f.logical_id
        );
        if let (Some(dlq), Some(hook)) = (dlq, hook) {
            assert_eq!(render(&dlq["Type"]), "SQS", "{}", f.logical_id);
            assert_eq!(
                render(&dlq["TargetArn"]),
                format!("GetAtt:{}.Arn", hook.queue),
                "{}",
                f.logical_id
            );
        }
    }
    // The JWT secret condition is PEM mode: as deployed, the HTTP functions (and
    // only they) may read the JWT secret in PEM mode, and no function may read
    // any JWT secret in JWKS mode.
    for mode in [TokenMode::Pem, TokenMode::Jwks] {
        let deployment = Deployment::of(&template, mode);
        assert_eq!(
            deployment.conditions.get(PEM_MODE),
            Some(&(mode == TokenMode::Pem)),
            "template.yaml: {PEM_MODE} holds exactly in PEM mode ({mode:?})"
        );
        for f in functions(&template) {
            let reads_jwt_secret = granted(&f)
                .into_iter()
                .any(|(action, resource, _, only_if)| {
                    let applies = only_if.is_none_or(|c| deployment.conditions[&c]);
                    applies
                        && action == "secretsmanager:GetSecretValue"
                        && resource == "Ref:JwtPublicKeySecretArn"
                });
            let serves_http = Endpoint::ALL.iter().any(|e| e.function() == f.binary);
            assert_eq!(
                reads_jwt_secret,
                serves_http && mode == TokenMode::Pem,
                "{} in {mode:?} mode: reads the JWT secret",
                f.logical_id
            );
        }
    }
}
