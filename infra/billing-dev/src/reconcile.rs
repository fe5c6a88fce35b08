//! `billing-dev reconcile`: compare every customer with Stripe, print the
//! drift, optionally repair it.

use std::time::Instant;

use billing::payments::Payments;
use billing::store::Store;
use billing::sync::reconcile::Reconciler;

use crate::Error;

/// Reconciles and prints one JSON line per drifted customer on stdout, then a
/// summary on stderr.
pub async fn run(store: &Store, payments: &Payments, repair: bool) -> Result<(), Error> {
    let began = Instant::now();
    let report = Reconciler::new(store.clone(), payments.clone())
        .run(repair)
        .await?;
    for drift in &report.drifts {
        println!("{}", serde_json::to_string(drift)?);
    }
    let secs = began.elapsed().as_secs_f64();
    eprintln!(
        "reconcile: {} checked, {} drifted, {} repaired{} in {secs:.1} s ({:.0} customers/s); \
         Stripe: {} customers ({} not ours), {} subscriptions",
        report.checked,
        report.drifted,
        report.repaired,
        match report.repair_failed {
            0 => String::new(),
            n => format!(" ({n} repairs failed)"),
        },
        report.checked as f64 / secs.max(1e-3),
        report.stripe_customers,
        report.stripe_only,
        report.stripe_subscriptions,
    );
    if report.repair_failed > 0 {
        return Err(format!("{} repairs failed", report.repair_failed).into());
    }
    Ok(())
}
