//! `billing-dev reindex`: re-project a table into the listings, resumably.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use billing::store::{Reindexed, Store};

use crate::Error;

/// Scans the table from the checkpoint (or the start), reindexing each page and
/// saving the position after it; then folds every listing's counts and drops
/// the legacy counters.
pub async fn run(store: &Store, checkpoint: Option<&Path>) -> Result<(), Error> {
    let mut start = match checkpoint {
        Some(path) if path.exists() => {
            eprintln!("reindex: resuming from {}", path.display());
            Some(load(path)?)
        }
        _ => None,
    };
    let began = Instant::now();
    let mut total = Reindexed::default();
    loop {
        let (page, next) = store.reindex_page(start.take()).await?;
        total.scanned += page.scanned;
        total.added += page.added;
        total.present += page.present;
        let rate = (total.added + total.present) as f64 / began.elapsed().as_secs_f64().max(1e-3);
        eprint!(
            "\rreindex: {} items scanned, {} customers added to their listings, {} already there ({rate:.0}/s)",
            total.scanned, total.added, total.present
        );
        match (next, checkpoint) {
            (Some(next), Some(path)) => {
                save(path, &next)?;
                start = Some(next);
            }
            (Some(next), None) => start = Some(next),
            (None, _) => break,
        }
    }
    eprintln!();
    let mut folded = 0;
    for pk in store.pending_indexes().await? {
        folded += store.fold_index(&pk).await?;
    }
    let dropped = store.drop_legacy_counters().await?;
    // Every active customer has its entries now: the writes stop allowing for
    // one without them.
    store.mark_reindexed().await?;
    if let Some(path) = checkpoint.filter(|p| p.exists()) {
        std::fs::remove_file(path)?;
    }
    eprintln!(
        "reindex: done in {:.1} s: {folded} counts folded, {dropped} legacy counters dropped; table marked reindexed",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A scan position as JSON: attribute name to string value (keys are strings).
fn save(path: &Path, key: &HashMap<String, AttributeValue>) -> Result<(), Error> {
    let plain: HashMap<&str, &str> = key
        .iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.as_str(), s.as_str())))
        .collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&plain)?)?;
    std::fs::rename(tmp, path)?;
    Ok(())
}

fn load(path: &Path) -> Result<HashMap<String, AttributeValue>, Error> {
    let plain: HashMap<String, String> = serde_json::from_slice(&std::fs::read(path)?)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(plain
        .into_iter()
        .map(|(k, v)| (k, AttributeValue::S(v)))
        .collect())
}
