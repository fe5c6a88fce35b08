//! `template.yaml`'s ingress of the platform's events (`user.deleted`,
//! `customer.created`, `customer.updated`): the bus, its policy, the rules, dead
//! letters.

use std::collections::{BTreeMap, BTreeSet};

use billing_tests::Env;
use serde_norway::Value as Yaml;

use super::{
    Deployment, PLATFORM_HOOKS, SAMPLE_PLATFORM_ACCOUNT, SAMPLE_PLATFORM_ROLE,
    SAMPLE_PLATFORM_ROOT, entries, functions, one_or_many, render, resources_of, str_of, template,
};

/// The stack's bus for the platform's events.
const PLATFORM_BUS_ARN: &str = "Sub:arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${AWS::StackName}-platform";

/// Who may put an event on the platform bus: `arn` of `account`.
struct Caller {
    arn: &'static str,
    account: &'static str,
}

/// Whether a policy statement's `Condition` holds for `caller` (the operators
/// the template uses, single values).
fn condition_holds(condition: &Yaml, deployment: &Deployment, caller: &Caller) -> bool {
    entries(condition).into_iter().all(|(op, block)| {
        entries(block).into_iter().all(|(key, v)| {
            let expected: Vec<String> =
                one_or_many(v).iter().map(|v| deployment.value(v)).collect();
            let actual = match key.as_str() {
                "aws:PrincipalAccount" => caller.account,
                "aws:PrincipalArn" => caller.arn,
                other => panic!("unexpected condition key {other}"),
            };
            let equal = expected.iter().any(|e| e == actual);
            match op.as_str() {
                "StringEquals" | "ArnEquals" => equal,
                "StringNotEquals" | "ArnNotEquals" => !equal,
                other => panic!("unexpected condition operator {other}"),
            }
        })
    })
}

/// The platform's events come only from the platform: a bus of the stack's
/// own, on which only PlatformPrincipalArn may put events, and on it one rule
/// per hook matching its source, detail-types and account; what a hook does not
/// handle ends in its dead-letter queue.
pub(super) async fn template_locks_the_platform_ingress(_env: &'static Env) {
    let template = template();
    let params = &template["Parameters"];
    assert!(
        params.get("PlatformEventBusName").is_none(),
        "no bus by name: the stack's own"
    );
    let required = ["PlatformPrincipalArn", "PlatformAccountId"]
        .into_iter()
        .chain(PLATFORM_HOOKS.iter().map(|h| h.source));
    for name in required {
        assert!(params[name].get("Default").is_none(), "{name}: required");
    }
    assert_eq!(
        params["PlatformAccountId"]["AllowedPattern"].as_str(),
        Some("^[0-9]{12}$")
    );
    let principal = str_of(
        &params["PlatformPrincipalArn"]["AllowedPattern"],
        "PlatformPrincipalArn",
    );
    assert!(
        principal.starts_with("^arn:aws")
            && principal.ends_with('$')
            && principal.contains(":iam::[0-9]{12}:")
            && principal.contains("root")
            && principal.contains("role/"),
        "PlatformPrincipalArn: an IAM role or account root ARN"
    );

    // Every EventBridge rule of the template is a platform hook's.
    let all = functions(&template);
    let with_rules: BTreeSet<&str> = all
        .iter()
        .filter(|f| f.event_types.iter().any(|t| t == "EventBridgeRule"))
        .map(|f| f.binary.as_str())
        .collect();
    assert_eq!(
        with_rules,
        PLATFORM_HOOKS.iter().map(|h| h.binary).collect(),
        "the functions with EventBridge rules are the platform hooks"
    );
    let mut buses = BTreeSet::new();
    for h in &PLATFORM_HOOKS {
        let hook = all
            .iter()
            .find(|f| f.binary == h.binary)
            .unwrap_or_else(|| panic!("template.yaml: no {} function", h.binary));
        let id = &hook.logical_id;
        // The rule: on the stack's bus, source, detail-types and account.
        let rules = entries(&hook.properties["Events"]);
        assert_eq!(rules.len(), 1, "{id}: one rule");
        let (event_name, rule) = &rules[0];
        assert_eq!(render(&rule["Type"]), "EventBridgeRule", "{id}");
        let rule = &rule["Properties"];
        let bus_ref = render(&rule["EventBusName"]);
        let bus_id = bus_ref
            .strip_prefix("GetAtt:")
            .and_then(|b| b.strip_suffix(".Name"))
            .or_else(|| bus_ref.strip_prefix("Ref:"))
            .unwrap_or_else(|| panic!("{id}: the rule's bus is the stack's, found {bus_ref}"));
        buses.insert(bus_id.to_owned());
        let pattern = &rule["Pattern"];
        assert_eq!(
            entries(pattern)
                .into_iter()
                .map(|(k, v)| (k, one_or_many(v)))
                .collect::<BTreeMap<_, _>>(),
            BTreeMap::from([
                ("source".to_owned(), vec![format!("Ref:{}", h.source)]),
                (
                    "detail-type".to_owned(),
                    h.detail_types.iter().map(|d| (*d).to_owned()).collect()
                ),
                (
                    "account".to_owned(),
                    vec!["Ref:PlatformAccountId".to_owned()]
                ),
            ]),
            "{id}: the rule's pattern"
        );

        // What fails ends in one queue: the events the rule cannot deliver, and
        // (after a bounded number of retries) those the function fails on, an
        // event it cannot parse or refuses included.
        let queue_id = h.queue;
        let dlq = format!("GetAtt:{queue_id}.Arn");
        assert_eq!(
            render(&rule["DeadLetterConfig"]["Arn"]),
            dlq,
            "{id}: the rule's dead letters"
        );
        assert!(
            rule["RetryPolicy"]["MaximumRetryAttempts"]
                .as_u64()
                .is_some(),
            "{id}: the rule's RetryPolicy"
        );
        let hook_props = &hook.properties;
        assert_eq!(
            render(&hook_props["DeadLetterQueue"]["Type"]),
            "SQS",
            "{id}"
        );
        assert_eq!(
            render(&hook_props["DeadLetterQueue"]["TargetArn"]),
            dlq,
            "{id}: the function's dead letters"
        );
        assert!(
            hook_props["EventInvokeConfig"]["MaximumRetryAttempts"]
                .as_u64()
                .is_some_and(|n| n <= 2),
            "{id}: EventInvokeConfig.MaximumRetryAttempts"
        );
        let queue = &template["Resources"][queue_id];
        assert_eq!(
            queue["Type"].as_str(),
            Some("AWS::SQS::Queue"),
            "{queue_id}"
        );
        assert_eq!(
            queue["Properties"]["SqsManagedSseEnabled"].as_bool(),
            Some(true),
            "{queue_id}"
        );
        assert_eq!(
            queue["Properties"]["MessageRetentionPeriod"].as_u64(),
            Some(1_209_600),
            "{queue_id}: 14 days to look"
        );
        // Only the rule (as SAM names it: function id + event name) may send to it
        // as EventBridge; the function sends with its role (SAM's grant).
        let policies: Vec<(String, &Yaml)> = resources_of(&template, "AWS::SQS::QueuePolicy")
            .into_iter()
            .filter(|(_, p)| {
                one_or_many(&p["Properties"]["Queues"]).contains(&format!("Ref:{queue_id}"))
            })
            .collect();
        assert_eq!(policies.len(), 1, "{queue_id}: one queue policy");
        let statements = policies[0].1["Properties"]["PolicyDocument"]["Statement"]
            .as_sequence()
            .expect("Statement");
        assert_eq!(statements.len(), 1, "{queue_id}: one statement");
        let s = &statements[0];
        assert_eq!(render(&s["Effect"]), "Allow", "{queue_id}");
        assert_eq!(
            render(&s["Principal"]["Service"]),
            "events.amazonaws.com",
            "{queue_id}"
        );
        assert_eq!(one_or_many(&s["Action"]), ["sqs:SendMessage"], "{queue_id}");
        assert_eq!(
            one_or_many(&s["Resource"]),
            std::slice::from_ref(&dlq),
            "{queue_id}"
        );
        assert_eq!(
            one_or_many(&s["Condition"]["ArnEquals"]["aws:SourceArn"]),
            [format!("GetAtt:{event_name}.Arn")],
            "{queue_id}: only the {} rule",
            h.binary
        );

        // The function's resource policy: one permission, for its rule alone
        // (as EventBridge, from this account); SAM adds none (no events of
        // its own), and no other permission names it.
        assert!(
            template["Resources"][id.as_str()]["Properties"]
                .get("Events")
                .is_none(),
            "{id}: invoked by its explicit rule only (no SAM events)"
        );
        let rule_resource = &template["Resources"][event_name.as_str()];
        assert_eq!(
            rule_resource["Type"].as_str(),
            Some("AWS::Events::Rule"),
            "{event_name}"
        );
        assert_eq!(render(&rule_resource["Properties"]["State"]), "ENABLED");
        let function_arn = format!("GetAtt:{id}.Arn");
        let names_it = |p: &Yaml| {
            let f = render(&p["Properties"]["FunctionName"]);
            f == function_arn || f == format!("Ref:{id}")
        };
        let permissions: Vec<(String, &Yaml)> = resources_of(&template, "AWS::Lambda::Permission")
            .into_iter()
            .filter(|(_, p)| names_it(p))
            .collect();
        assert_eq!(permissions.len(), 1, "{id}: one resource policy statement");
        let (permission_id, permission) = &permissions[0];
        let p = &permission["Properties"];
        assert_eq!(
            render(&p["Action"]),
            "lambda:InvokeFunction",
            "{permission_id}"
        );
        assert_eq!(render(&p["FunctionName"]), function_arn, "{permission_id}");
        assert_eq!(
            render(&p["Principal"]),
            "events.amazonaws.com",
            "{permission_id}"
        );
        assert_eq!(
            render(&p["SourceArn"]),
            format!("GetAtt:{event_name}.Arn"),
            "{permission_id}: only its rule"
        );
        assert_eq!(
            render(&p["SourceAccount"]),
            "Ref:AWS::AccountId",
            "{permission_id}"
        );
        assert!(
            p.get("FunctionUrlAuthType").is_none(),
            "{permission_id}: no URL"
        );

        // The function processes only the rule's sender: its source and account.
        let env = entries(&hook.properties["Environment"]["Variables"]);
        let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| render(v));
        assert_eq!(
            var("PLATFORM_EVENT_SOURCE"),
            Some(format!("Ref:{}", h.source)),
            "{id}: PLATFORM_EVENT_SOURCE"
        );
        assert_eq!(
            var("PLATFORM_ACCOUNT_ID").as_deref(),
            Some("Ref:PlatformAccountId"),
            "{id}: PLATFORM_ACCOUNT_ID"
        );
        let deployment = Deployment::new(&template, &[]);
        let config = billing::config::Config::from_lookup(|k| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| deployment.value(&render(v)))
        })
        .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            config.platform_sender,
            Some(billing::sender::ExpectedSender {
                source: deployment.value(&format!("Ref:{}", h.source)),
                account: SAMPLE_PLATFORM_ACCOUNT.to_owned(),
            }),
            "{id}: the expected sender"
        );
    }
    // The queues are the hooks' own.
    let queues: BTreeSet<&str> = PLATFORM_HOOKS.iter().map(|h| h.queue).collect();
    assert_eq!(queues.len(), PLATFORM_HOOKS.len(), "a queue per hook");

    // One bus for all of them, the stack's own.
    assert_eq!(
        buses.len(),
        1,
        "every platform rule is on one bus: {buses:?}"
    );
    let bus_id = buses.first().expect("the platform bus").as_str();
    let bus = &template["Resources"][bus_id];
    assert_eq!(
        bus["Type"].as_str(),
        Some("AWS::Events::EventBus"),
        "{bus_id}"
    );
    assert_eq!(
        render(&bus["Properties"]["Name"]),
        "Sub:${AWS::StackName}-platform",
        "{bus_id}: Name"
    );

    // The bus's policy, whole: PutEvents on this bus, Allow for the platform's
    // principal (from its account), Deny for everyone else.
    assert!(
        resources_of(&template, "AWS::Events::EventBusPolicy").is_empty(),
        "no policy statements beyond the bus's own Policy"
    );
    let statements = bus["Properties"]["Policy"]["Statement"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{bus_id}: Policy.Statement"));
    for s in statements {
        assert_eq!(one_or_many(&s["Action"]), ["events:PutEvents"], "{bus_id}");
        assert_eq!(one_or_many(&s["Resource"]), [PLATFORM_BUS_ARN], "{bus_id}");
    }
    let effect = |e: &str| -> Vec<&Yaml> {
        statements
            .iter()
            .filter(|s| render(&s["Effect"]) == e)
            .collect()
    };
    let (allows, denies) = (effect("Allow"), effect("Deny"));
    assert_eq!(
        (allows.len(), denies.len()),
        (1, 1),
        "{bus_id}: one Allow, one Deny"
    );
    assert_eq!(
        render(&allows[0]["Principal"]["AWS"]),
        "Ref:PlatformPrincipalArn"
    );
    assert_eq!(render(&denies[0]["Principal"]), "*");
    const OTHER_ACCOUNT: &str = "210987654321";
    let callers = [
        Caller {
            arn: SAMPLE_PLATFORM_ROLE,
            account: SAMPLE_PLATFORM_ACCOUNT,
        },
        Caller {
            arn: "arn:aws:iam::123456789012:role/someone-else",
            account: SAMPLE_PLATFORM_ACCOUNT,
        },
        Caller {
            arn: "arn:aws:iam::210987654321:role/platform-user-events",
            account: OTHER_ACCOUNT,
        },
        Caller {
            arn: "arn:aws:iam::210987654321:user/admin",
            account: OTHER_ACCOUNT,
        },
    ];
    for (principal_arn, whole_account) in
        [(SAMPLE_PLATFORM_ROLE, false), (SAMPLE_PLATFORM_ROOT, true)]
    {
        let deployment = Deployment::new(&template, &[("PlatformPrincipalArn", principal_arn)]);
        let principal = deployment.value("Ref:PlatformPrincipalArn");
        for caller in &callers {
            let named = principal == caller.arn
                || principal == format!("arn:aws:iam::{}:root", caller.account);
            let allowed = named
                && allows[0]
                    .get("Condition")
                    .and_then(|c| deployment.resolve(c))
                    .is_none_or(|c| condition_holds(c, &deployment, caller));
            let denied = denies[0]
                .get("Condition")
                .and_then(|c| deployment.resolve(c))
                .is_none_or(|c| condition_holds(c, &deployment, caller));
            // Principals of the bus's own account may hold an IAM Allow: only
            // the Deny stops them, so the Deny alone must exclude them.
            let expected = if whole_account {
                caller.account == SAMPLE_PLATFORM_ACCOUNT
            } else {
                caller.arn == SAMPLE_PLATFORM_ROLE
            };
            assert_eq!(
                !denied, expected,
                "{bus_id} with PlatformPrincipalArn={principal_arn}: Deny of {}",
                caller.arn
            );
            assert_eq!(
                allowed && !denied,
                expected,
                "{bus_id} with PlatformPrincipalArn={principal_arn}: {} may put events",
                caller.arn
            );
        }
    }
    assert_eq!(
        render(&template["Outputs"]["PlatformEventBusName"]["Value"]),
        format!("GetAtt:{bus_id}.Name")
    );
    // Redrives replay the bus's archive through a rule: every event is kept
    // at least as long as the dead-letter queues keep theirs (14 days).
    let archives = resources_of(&template, "AWS::Events::Archive");
    assert_eq!(archives.len(), 1, "one archive");
    let (archive_id, archive) = &archives[0];
    assert_eq!(
        render(&archive["Properties"]["SourceArn"]),
        format!("GetAtt:{bus_id}.Arn"),
        "{archive_id}: of the platform bus"
    );
    assert!(
        archive["Properties"].get("EventPattern").is_none(),
        "{archive_id}: every event"
    );
    let days = render(&archive["Properties"]["RetentionDays"]);
    let days_param = days
        .strip_prefix("Ref:")
        .expect("RetentionDays: a parameter");
    assert!(
        params[days_param]["MinValue"]
            .as_u64()
            .is_some_and(|d| d >= 14),
        "{days_param}: at least the dead letters' 14 days"
    );
    for output in [
        "PlatformEventArchiveArn",
        "UserDeletedRuleArn",
        "PlatformCustomerRuleArn",
    ] {
        assert!(
            template["Outputs"].get(output).is_some(),
            "Outputs: {output}"
        );
    }
    assert_eq!(
        render(&template["Outputs"]["PlatformEventBusArn"]["Value"]),
        format!("GetAtt:{bus_id}.Arn")
    );
}
