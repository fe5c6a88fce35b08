//! `template.yaml`'s IAM: each function granted exactly what its code calls.

use std::collections::BTreeSet;

use billing::http::Endpoint;
use billing::store::table::MEMBERS_INDEX;
use billing_tests::Env;

use super::{
    DELETION_MONITOR, Deployment, Function, PEM_MODE, PLATFORM_CUSTOMER_HOOK, RECONCILE,
    ROUTE_NOT_FOUND, STREAM_CONSUMER, STRIPE_WEBHOOK, TokenMode, USER_DELETED_HOOK, conditional,
    entries, functions, is_no_value, one_or_many, platform_hook, render, yaml,
};

/// The index the deletion monitor queries (partition `DELETING`).
const DELETIONS_INDEX: &str = "GSI1";

/// One permission: action, resource, whether it holds only inside
/// TransactWriteItems, and the template condition it is granted under (none:
/// always).
type Grant = (String, String, bool, Option<String>);

/// What each function's code path calls (shared/src/store, cascade, startup, events),
/// and nothing more. TransactWriteItems is no IAM action: its Put/Update/Delete are
/// authorized as PutItem/UpdateItem/DeleteItem within it.
fn expected_grants(binary: &str) -> BTreeSet<Grant> {
    if binary == ROUTE_NOT_FOUND {
        // It answers from the route table alone: no table, no secret, nothing but
        // the logging SAM's basic execution role gives every function.
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
            false,
            None,
        )]);
    }
    let plain = |action: &str, resource: &str| {
        (
            format!("dynamodb:{action}"),
            resource.to_owned(),
            false,
            None,
        )
    };
    let in_tx = |action: &str| (format!("dynamodb:{action}"), table.clone(), true, None);
    let secret = |param: &str, only_if: Option<&str>| {
        (
            "secretsmanager:GetSecretValue".to_owned(),
            format!("Ref:{param}"),
            false,
            only_if.map(str::to_owned),
        )
    };
    // API key lookups, customer records, memberships, Stripe lookups, listing
    // entries.
    let mut grants = BTreeSet::from([plain("GetItem", &table)]);
    let endpoint = Endpoint::ALL.into_iter().find(|e| e.function() == binary);
    if endpoint.is_some() {
        // In PEM mode every HTTP function fetches the JWT public key at cold start
        // (billing::startup); in JWKS mode it reads no secret for tokens. The
        // event-driven ones verify no tokens.
        grants.insert(secret("JwtPublicKeySecretArn", Some(PEM_MODE)));
    }
    // The deletion cascade: member items by query, transactional puts (listing
    // count deltas), updates and deletes, and Stripe.
    let cascade = [
        plain("Query", &table),
        in_tx("PutItem"),
        in_tx("UpdateItem"),
        in_tx("DeleteItem"),
        secret("StripeSecretKeySecretArn", None),
    ];
    match endpoint {
        // Entries and directory are partitions of the table.
        Some(Endpoint::ListCustomers) => {
            grants.insert(plain("Query", &table));
        }
        Some(Endpoint::GetCustomer) => {}
        Some(Endpoint::ListMembers) => {
            grants.extend([
                plain("Query", &table),
                plain("Query", &index(MEMBERS_INDEX)),
            ]);
        }
        Some(Endpoint::AddMember) => grants.extend([in_tx("PutItem"), in_tx("UpdateItem")]),
        Some(Endpoint::RemoveMember) => grants.extend([in_tx("UpdateItem"), in_tx("DeleteItem")]),
        Some(Endpoint::DeleteCustomer) => grants.extend(cascade),
        None if binary == USER_DELETED_HOOK => grants.extend(cascade),
        // Signed by Stripe: its endpoint secret, never the JWT key or the Stripe
        // key. An event replaces the record and its entries (Put), puts deltas,
        // the applied event and the lookup, deletes the entries of listings it
        // leaves and an old lookup: no Update, no Query.
        None if binary == STRIPE_WEBHOOK => grants.extend([
            in_tx("PutItem"),
            in_tx("DeleteItem"),
            secret("StripeWebhookSecretArn", None),
        ]),
        // As the webhook's change path, plus the owner's member and membership
        // (Put) and the members' directory (Update, ADD); no secret at all.
        None if binary == PLATFORM_CUSTOMER_HOOK => {
            grants.extend([in_tx("PutItem"), in_tx("UpdateItem"), in_tx("DeleteItem")])
        }
        // Walks every customer (the listing's entries by Query, their records by
        // BatchGetItem), reads Stripe, repairs through the webhook's change path.
        None if binary == RECONCILE => grants.extend([
            plain("Query", &table),
            plain("BatchGetItem", &table),
            in_tx("PutItem"),
            in_tx("DeleteItem"),
            secret("StripeSecretKeySecretArn", None),
        ]),
        None if binary == STREAM_CONSUMER => {
            grants.extend(cascade);
            grants.insert((
                "events:PutEvents".to_owned(),
                "Sub:arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"
                    .to_owned(),
                false,
                None,
            ));
        }
        None => panic!("{binary}: no expected grants; add them here"),
    }
    grants
}

/// The grants of a function's `Policies`: inline statements only (none without
/// `Policies`), each either always or, as `!If [Condition, statement,
/// !Ref AWS::NoValue]`, only under that condition.
fn granted(f: &Function) -> BTreeSet<Grant> {
    let Some(policies) = f.properties.get("Policies") else {
        return BTreeSet::new();
    };
    let policies = policies
        .as_sequence()
        .unwrap_or_else(|| panic!("{}: Policies is a list of policy documents", f.logical_id));
    let mut grants = BTreeSet::new();
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
            let in_tx = match s.get("Condition") {
                None => false,
                Some(c) => {
                    let values =
                        one_or_many(&c["ForAnyValue:StringEquals"]["dynamodb:EnclosingOperation"]);
                    assert_eq!(
                        entries(c).len(),
                        1,
                        "{}: unexpected Condition {c:?}",
                        f.logical_id
                    );
                    assert_eq!(
                        values,
                        ["TransactWriteItems"],
                        "{}: unexpected Condition",
                        f.logical_id
                    );
                    true
                }
            };
            for action in one_or_many(&s["Action"]) {
                for resource in one_or_many(&s["Resource"]) {
                    assert!(
                        !action.contains('*') && resource != "*",
                        "{}: no wildcards ({action} on {resource})",
                        f.logical_id
                    );
                    grants.insert((action.clone(), resource, in_tx, only_if.clone()));
                }
            }
        }
    }
    grants
}

pub(super) async fn template_grants_each_function_exactly_its_calls(_env: &'static Env) {
    let template = yaml("template.yaml");
    for f in functions(&template) {
        // SAM's generated role: basic execution (logging) plus the Policies.
        assert!(
            !f.properties.contains_key("Role"),
            "{}: no role of its own",
            f.logical_id
        );
        if f.binary == ROUTE_NOT_FOUND {
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
