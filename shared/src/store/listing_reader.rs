//! Reading a page of a listing (customers or members): page 1, page *n*
//! (placed by the listing's directory, see [`super::directory`]) or the page
//! after a cursor.

use std::ops::Bound;

use super::directory::{Directory, Start, slot_counts};
use super::error::StoreError;
use super::handle::Store;
use super::page::PageAt;
use super::table::{
    IN_PARTITION, IN_PARTITION_BETWEEN, Item, PENDING_CHANGES, PK, SORTED_AFTER,
    SORTED_AT_OR_AFTER, TYPE, dir, dir_day_key, pending_values, s, tally,
};
use super::tally::DayAt;

/// When the entry a page starts at is at most this far into its day, the page
/// is read from the day's start rather than after reading the day's slots.
const DIRECT_SKIP: u64 = 8;

/// Where a listing's entries and directory are.
pub(super) struct Place {
    /// Partition of the directory (months, deltas, days).
    pub dir_pk: String,
    /// Index holding the entries, `None` for the table.
    pub index: Option<&'static str>,
    /// Partition of the entries.
    pub entries_pk: String,
    /// Sort key attribute of the entries in that index.
    pub sort_attr: &'static str,
    /// What precedes a slot in the entries' sort keys.
    pub sort_prefix: &'static str,
    /// Whether entries are read strongly consistent.
    pub consistent: bool,
}

/// Entries of one page, and the sort key of the last one when more follow.
pub(super) struct Entries {
    pub items: Vec<Item>,
    pub more_after: Option<String>,
}

impl Store {
    /// The directory items of `dir_pk` (months and deltas, and whatever the
    /// partition holds before them: a member listing's customer record), all
    /// pages, strongly consistent.
    pub(super) async fn read_directory(&self, dir_pk: &str) -> Result<Vec<Item>, StoreError> {
        let values = [
            (":pk", s(dir_pk)),
            (":from", s(dir::READ_FROM)),
            (":to", s(dir::READ_TO)),
        ];
        self.query_all(IN_PARTITION_BETWEEN, &values).await
    }

    /// The entries of a page: from the start (page 1), after a cursor, or from
    /// the slot the directory places the page's first entry in.
    pub(super) async fn read_entries(
        &self,
        r: &Place,
        dir: Option<&Directory>,
        at: &PageAt,
    ) -> Result<Entries, StoreError> {
        let take = at.limit();
        let (from, skip) = match at {
            PageAt::After { after, .. } => (Bound::Excluded(after.clone()), 0),
            PageAt::Number(p) if p.offset() == 0 && r.sort_prefix.is_empty() => {
                (Bound::Unbounded, 0)
            }
            PageAt::Number(p) if p.offset() == 0 => (Bound::Included(r.sort_prefix.to_owned()), 0),
            PageAt::Number(p) => {
                let dir =
                    dir.ok_or_else(|| StoreError::Corrupt("page without directory".into()))?;
                let Some(day) = dir.find_day(p.offset()) else {
                    return Ok(Entries {
                        items: Vec::new(),
                        more_after: None,
                    });
                };
                if day.skip <= DIRECT_SKIP {
                    (
                        Bound::Included(format!("{}{}", r.sort_prefix, day.start)),
                        day.skip,
                    )
                } else {
                    let item = self
                        .get_with(dir_day_key(&r.dir_pk, &day.start), r.consistent)
                        .await?;
                    let Start { start, skip } = dir.find_slot(&day, item.as_ref());
                    match self.minute_fence(r, item.as_ref(), &start, skip).await? {
                        Some((fence, skip)) => (Bound::Included(fence), skip),
                        None => (Bound::Included(format!("{}{start}", r.sort_prefix)), skip),
                    }
                }
            }
        };
        self.query_entries(r, from, skip, take).await
    }

    /// The fence at most [`tally::FENCE_EVERY`] entries before the entry `skip`
    /// entries into minute `slot` (whose day item is `day`), and the entries
    /// from it; `None` when the entry is near the minute's start or the
    /// minute's fences are missing or older than its changes.
    async fn minute_fence(
        &self,
        r: &Place,
        day: Option<&Item>,
        slot: &str,
        skip: u64,
    ) -> Result<Option<(String, u64)>, StoreError> {
        if skip < tally::FENCE_EVERY || !slot.contains('T') {
            return Ok(None);
        }
        let (_, version) = slot_counts(day, slot)?;
        let at = DayAt {
            day: slot.to_owned(),
            skip,
            version,
        };
        self.find_fence(&r.dir_pk, &at).await
    }

    /// `take` entries of `r` from `from` (the first entry, the first at or
    /// after a sort key (prefix), or the first after a sort key), after
    /// skipping `skip`; reads one more to tell whether any follow.
    pub(super) async fn query_entries(
        &self,
        r: &Place,
        from: Bound<String>,
        mut skip: u64,
        take: u32,
    ) -> Result<Entries, StoreError> {
        let take = take as usize;
        let mut items = Vec::with_capacity(take + 1);
        let mut start: Option<Item> = None;
        loop {
            let wanted = skip + (take + 1 - items.len()) as u64;
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(r.index.map(str::to_owned))
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(r.entries_pk.clone()))
                .consistent_read(r.consistent)
                .limit(i32::try_from(wanted).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            q = match &from {
                Bound::Unbounded => q.key_condition_expression(IN_PARTITION),
                Bound::Included(k) | Bound::Excluded(k) => {
                    let condition = match from {
                        Bound::Excluded(_) => SORTED_AFTER,
                        _ => SORTED_AT_OR_AFTER,
                    };
                    q.key_condition_expression(condition)
                        .expression_attribute_names("#sort", r.sort_attr)
                        .expression_attribute_values(":from", s(k.clone()))
                }
            };
            let out = q.send().await.map_err(StoreError::dynamo)?;
            for item in out.items.unwrap_or_default() {
                if skip > 0 {
                    skip -= 1;
                } else {
                    items.push(item);
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && items.len() <= take => start = Some(k),
                _ => break,
            }
        }
        let more = items.len() > take;
        items.truncate(take);
        let more_after = more
            .then(|| items.last())
            .flatten()
            .and_then(|i| i.get(r.sort_attr))
            .and_then(|v| v.as_s().ok())
            .cloned();
        Ok(Entries { items, more_after })
    }

    /// The directory partitions holding changes to compact: shards of day
    /// counts, or deltas of a previous release (a full scan: for operators and
    /// benchmarks, not for requests).
    pub async fn pending_indexes(&self) -> Result<Vec<String>, StoreError> {
        let mut found = std::collections::BTreeSet::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(PENDING_CHANGES)
                .expression_attribute_names("#type", TYPE)
                .expression_attribute_names("#pk", PK)
                .set_expression_attribute_values(Some(pending_values()))
                .projection_expression("#pk")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(StoreError::dynamo)?;
            for item in out.items.unwrap_or_default() {
                if let Some(pk) = item.get(PK).and_then(|v| v.as_s().ok()) {
                    found.insert(pk.clone());
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(found.into_iter().collect()),
            }
        }
    }
}
