//! One customer: read it, delete it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use lambda_http::{Request, RequestExt};

use super::idempotency::answer_of;
use super::views::CustomerDetail;
use super::{Call, Reply, State, customer_id};
use crate::deadline::Deadline;
use crate::http::{json, no_content};
use crate::store::Answering;

/// Time kept back from the function's own timeout, whatever came before the
/// cascade, to answer (the 503 `deletion_in_progress`) before Lambda cuts it off.
const ANSWER_RESERVE: Duration = Duration::from_secs(2);

/// `GET /customer/{customerID}`
pub async fn get(state: &State, req: &Request) -> Reply {
    let id = customer_id(req)?;
    let customer = state.store.get_customer(&id).await?;
    Ok(json(StatusCode::OK, &CustomerDetail::from(&customer)))
}

/// `DELETE /customer/{customerID}`: runs (or resumes) the deletion cascade within its
/// time budget; 503 `deletion_in_progress` when the budget runs out first.
pub async fn delete(state: &State, req: &Request, call: Call<'_>) -> Reply {
    let id = customer_id(req)?;
    let deadline = deadline(state, req);
    // The answer of a deletion that begins, committed as it begins: pending
    // while this request runs the rest of the cascade (resumable, and
    // finished by the stream consumer should this request die).
    let answer = answer_of(&no_content());
    let answer = move |_: &()| answer.clone();
    let answering = call.claim.map(|c| Answering::pending(c, &answer));
    let deleted = state
        .cascade
        .run_answered(&id, deadline, call.origin, answering.as_ref())
        .await?;
    let billing = deleted.billing.unwrap_or_default();
    tracing::info!(
        customer = %id,
        members = deleted.members,
        stripe_calls = billing.calls,
        "customer deleted"
    );
    Ok(no_content())
}

/// The cascade's budget from now, and in Lambda never later than
/// [`ANSWER_RESERVE`] before the invocation's own deadline (so a slow start of the
/// request cannot push the answer past the function's timeout).
fn deadline(state: &State, req: &Request) -> Deadline {
    let budget = Deadline::after(state.cascade.budget());
    let invocation_ends_ms = req.lambda_context_ref().map_or(0, |c| c.deadline);
    if invocation_ends_ms == 0 {
        return budget; // not in Lambda (the local server, tests)
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let left = Duration::from_millis(invocation_ends_ms.saturating_sub(now_ms));
    budget.min(Deadline::after(left.saturating_sub(ANSWER_RESERVE)))
}
