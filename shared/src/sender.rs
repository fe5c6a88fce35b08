//! Who may send the platform's events: the `source` and `account` an event
//! must carry to be processed by `user-deleted` and `platform-customer`.
//!
//! EventBridge sets `account` (the account of the principal that put the
//! event); the rule on the stack's platform bus matches the same `source` and
//! `account`. An invocation carrying anything else did not come through that
//! rule (a direct `lambda:InvokeFunction`, another rule, a hand-edited
//! redrive): it is refused, logged and counted, and nothing is done.
//! Retrying cannot make it acceptable, so the function does not fail it.

use serde_json::Value;

use crate::telemetry::metrics;

/// The `Outcome` of `SyncEvents` (source `platform`) for a refused sender.
pub const FOREIGN_SENDER: &str = "foreign_sender";

/// The sender the platform's events must come from (`PLATFORM_EVENT_SOURCE`,
/// `PLATFORM_ACCOUNT_ID`, set by the template from the rule's parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedSender {
    /// The events' `source`.
    pub source: String,
    /// The AWS account they are put from (12 digits).
    pub account: String,
}

impl ExpectedSender {
    /// Whether `event` carries this `source` and `account`; else why not
    /// (the values it carries, never its detail).
    pub fn check(&self, event: &Value) -> Result<(), String> {
        let field = |name: &str| event.get(name).and_then(Value::as_str);
        match (field("source"), field("account")) {
            (Some(source), Some(account)) if source == self.source && account == self.account => {
                Ok(())
            }
            (source, account) => Err(format!(
                "source {:?} and account {:?} are not the platform's ({:?}, {:?})",
                source.map(printable),
                account.map(printable),
                self.source,
                self.account
            )),
        }
    }

    /// [`ExpectedSender::check`], with a refusal logged (warn) and counted
    /// (`SyncEvents`, `platform`, [`FOREIGN_SENDER`]) as `function`'s.
    pub fn admit(&self, function: &str, event: &Value) -> Result<(), String> {
        self.check(event).inspect_err(|reason| {
            let event_id = event.get("id").and_then(Value::as_str).map(printable);
            tracing::warn!(
                function,
                event_id = event_id.as_deref(),
                %reason,
                "event refused: not from the platform's rule; nothing done, not retried"
            );
            metrics::sync_event("platform", FOREIGN_SENDER);
        })
    }
}

/// At most 64 characters of `value`, without control characters (it came
/// from whoever invoked the function).
fn printable(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sender() -> ExpectedSender {
        ExpectedSender {
            source: "platform.users".into(),
            account: "123456789012".into(),
        }
    }

    #[test]
    fn only_the_platforms_source_and_account_pass() {
        let ok = json!({"source": "platform.users", "account": "123456789012"});
        assert_eq!(sender().check(&ok), Ok(()));
        for bad in [
            json!({"source": "platform.users", "account": "210987654321"}),
            json!({"source": "someone.else", "account": "123456789012"}),
            json!({"source": "platform.users"}),
            json!({"account": "123456789012"}),
            json!({"source": 1, "account": "123456789012"}),
            json!("not an object"),
        ] {
            assert!(sender().check(&bad).is_err(), "{bad}");
        }
        let reason = sender()
            .check(&json!({"source": "x\n".repeat(100), "account": "1"}))
            .unwrap_err();
        assert!(!reason.contains('\n') && reason.len() < 200, "{reason}");
    }
}
