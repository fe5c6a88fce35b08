//! Fences of a customer listing's day: every [`tally::FENCE_EVERY`]-th sort
//! key of the day's entries, so that a page starting deep in a day with
//! thousands of entries (a bulk import stamped with one time, a sign-up burst)
//! reads at most that many entries before it.
//!
//! The stream consumer writes them after compacting the day's counts
//! ([`Store::fold_listing`]), labelled with the day's version (its number of
//! changes); a reader uses them only while the day's version is still that, and
//! otherwise reads the day from its start.

use aws_sdk_dynamodb::types::AttributeValue;

use super::directory::number;
use super::error::StoreError;
use super::handle::Store;
use super::table::{FENCES_PUT, SK, fences_item, fences_key, fences_kind, tally};
use super::tally::{DayAt, Tally};
use super::tx::Write;

/// Fence items written per transaction (each about 8 KB).
const PUTS_PER_TX: usize = 25;

impl Store {
    /// The fence at most [`tally::FENCE_EVERY`] entries before `at`, and the
    /// entries from it to `at`; `None` when the day's fences are missing or
    /// older than its counts.
    pub(super) async fn find_fence(
        &self,
        dir_pk: &str,
        at: &DayAt,
    ) -> Result<Option<(String, u64)>, StoreError> {
        let index = at.skip / tally::FENCE_EVERY;
        let item_no = index / tally::FENCES_PER_ITEM;
        let Some(item) = self
            .get_with(fences_key(dir_pk, &at.day, item_no), false)
            .await?
        else {
            return Ok(None);
        };
        if number(item.get(tally::VERSION)) != at.version {
            return Ok(None);
        }
        let keys = item.get(tally::KEYS).and_then(|v| v.as_l().ok());
        let key = keys
            .and_then(|k| k.get((index - item_no * tally::FENCES_PER_ITEM) as usize))
            .and_then(|v| v.as_s().ok());
        Ok(key.map(|k| (k.clone(), at.skip - index * tally::FENCE_EVERY)))
    }

    /// Writes the fences of `day` when it holds more than
    /// [`tally::FENCE_EVERY`] entries, labelled with the version its counts had
    /// before and after its entries were read (nothing when a change came
    /// between: its own compaction writes them again).
    pub(super) async fn refresh_fences(
        &self,
        dir_pk: &str,
        entries_pk: &str,
        day: &str,
    ) -> Result<(), StoreError> {
        let version = |items: Vec<_>| Tally::from_items(&items).map(|t| t.day(day));
        let (count, before) = version(self.read_directory(dir_pk).await?)?;
        if count <= tally::FENCE_EVERY {
            return Ok(());
        }
        let entries = self.query_prefix_all(entries_pk.to_owned(), day).await?;
        let (_, after) = version(self.read_directory(dir_pk).await?)?;
        if before != after {
            return Ok(());
        }
        let keys: Vec<AttributeValue> = entries
            .iter()
            .step_by(tally::FENCE_EVERY as usize)
            .filter_map(|e| e.get(SK).cloned())
            .collect();
        let items: Vec<_> = keys
            .chunks(tally::FENCES_PER_ITEM as usize)
            .enumerate()
            .map(|(i, chunk)| fences_item(dir_pk, day, i as u64, before, chunk.to_vec()))
            .collect();
        for batch in items.chunks(PUTS_PER_TX) {
            let mut tx = self.tx();
            for item in batch {
                tx = tx.put(
                    Write::Fences,
                    item.clone(),
                    FENCES_PUT,
                    &[(":fences", fences_kind())],
                )?;
            }
            tx.commit().await?;
        }
        Ok(())
    }
}
