//! The directory of a customer listing: exact counts per day, written in the
//! transaction of every change, and the page reads they serve.
//!
//! Every change of a listing's entries (a customer created, deleted, or moved
//! between listings) adds to one of [`tally::SHARDS`] *shards* of the listing's
//! directory, in its own transaction: `+1`/`-1` entries and one more change for
//! the entry's day. A writer picks the shard by its customer's id, so concurrent
//! writers seldom share an item, and a shard is a small item whatever the
//! backlog (one count and one version per day it changed). The stream consumer
//! compacts shards into the listing's months (`DIR#M#<YYYY-MM>`: per day, its
//! entries and its changes) and rebuilds the fences of the days that changed
//! (see [`super::fences`]).
//!
//! A read takes the months and the shards with one Query: at most
//! [`tally::SHARDS`] items more than the months, whether the stream consumer
//! is current or hours behind. They give the total and the day holding any
//! offset, exactly; the day's fences give a sort key at most
//! [`tally::FENCE_EVERY`] entries before it. See `docs/listing-directory.md`.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::domain::{Customer, CustomerId, now, time};

use std::ops::Bound;

use super::directory::{Additions, add_to_directory, number};
use super::error::StoreError;
use super::handle::Store;
use super::listing_reader::{Entries, Place};
use super::retry::{Attempt, optimistic};
use super::table::{
    DayCount, EXISTS, Item, Listing, SK, TALLY_KIND, dir, entries_pk_of_index, key, n, s,
    shard_unchanged, tally, tally_add, tally_shard_key,
};
use super::tx::{Tx, TxError, Write};

/// Deltas folded per transaction: each may touch a month and a day, within
/// DynamoDB's 100 actions.
const DELTAS_PER_FOLD: i32 = 32;

/// Counts `delta` more (or fewer) entries for `customer` in a listing, in `tx`:
/// one shard of the listing's day counts, the one its id picks.
pub(super) fn count<'s>(
    tx: Tx<'s>,
    listing: &Listing,
    customer: &Customer,
    delta: i64,
) -> Result<Tx<'s>, StoreError> {
    let day = compact_day(&time::to_seconds(&customer.created_at));
    let key = tally_shard_key(&listing.index_pk(), shard_of(&customer.id));
    let values = [
        (":delta", n(delta)),
        (":one", n(1)),
        (":tally", s(TALLY_KIND)),
        (":now", s(time::to_millis(&now()))),
    ];
    tx.update(Write::Count, key, &tally_add(&day), None, &values)
}

/// The shard a customer's changes go to.
pub(super) fn shard_of(id: &CustomerId) -> u32 {
    let raw = id.to_string();
    let last = raw.chars().last().and_then(|c| c.to_digit(16)).unwrap_or(0);
    last % tally::SHARDS
}

/// `YYYYMMDD` of an RFC 3339 time.
pub(super) fn compact_day(time: &str) -> String {
    time.chars().take(10).filter(|c| *c != '-').collect()
}

/// A listing's entries and changes per day, as one directory read returns them.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Day (`YYYY-MM-DD`) → (entries, changes).
    days: BTreeMap<String, (i64, i64)>,
}

/// The day holding an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DayAt {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Entries of the day before the offset.
    pub skip: u64,
    /// Changes the day has had (what its fences must have been read at).
    pub version: i64,
}

impl Tally {
    /// The counts in the items of one directory read (months, shards and
    /// deltas of a previous release; other items are ignored).
    pub fn from_items(items: &[Item]) -> Result<Self, StoreError> {
        let mut t = Self::default();
        for item in items {
            let Some(sk) = item.get(SK).and_then(|v| v.as_s().ok()) else {
                continue;
            };
            if let Some(month) = sk.strip_prefix(dir::MONTH) {
                for (name, value) in numbers(item) {
                    if let Some((kind, dd)) = DayCount::parse(name, 2) {
                        t.add(format!("{month}-{dd}"), kind, value);
                    }
                }
            } else if sk.starts_with(tally::SHARD) {
                for (name, value) in numbers(item) {
                    if let Some((kind, ymd)) = DayCount::parse(name, 8) {
                        let day = format!("{}-{}-{}", &ymd[..4], &ymd[4..6], &ymd[6..]);
                        t.add(day, kind, value);
                    }
                }
            } else if sk.starts_with(dir::DELTA) {
                let at = item.get(dir::AT).and_then(|v| v.as_s().ok());
                let day = at.and_then(|a| a.get(..10));
                let day = day.ok_or_else(|| StoreError::Corrupt(format!("delta {sk}")))?;
                let c = number(item.get(dir::COUNT));
                t.add(day.to_owned(), DayCount::Entries, c);
                t.add(day.to_owned(), DayCount::Changes, c.abs());
            }
        }
        Ok(t)
    }

    fn add(&mut self, day: String, kind: DayCount, value: i64) {
        let d = self.days.entry(day).or_default();
        match kind {
            DayCount::Entries => d.0 += value,
            DayCount::Changes => d.1 += value,
        }
    }

    /// How many entries the listing has.
    pub fn total(&self) -> u64 {
        self.days.values().map(|(c, _)| (*c).max(0) as u64).sum()
    }

    /// The day holding the entry at `offset`; `None` past the end.
    pub fn find(&self, offset: u64) -> Option<DayAt> {
        let mut left = offset;
        for (day, (c, v)) in &self.days {
            let c = (*c).max(0) as u64;
            if left < c {
                return Some(DayAt {
                    day: day.clone(),
                    skip: left,
                    version: *v,
                });
            }
            left -= c;
        }
        None
    }

    /// The entries and version of `day`.
    pub fn day(&self, day: &str) -> (u64, i64) {
        self.days
            .get(day)
            .map_or((0, 0), |(c, v)| ((*c).max(0) as u64, *v))
    }
}

/// The numeric attributes of an item.
fn numbers(item: &Item) -> impl Iterator<Item = (&str, i64)> {
    item.iter()
        .filter(|(_, v)| matches!(v, AttributeValue::N(_)))
        .map(|(k, v)| (k.as_str(), number(Some(v))))
}

/// What compacting a listing's directory did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Folded {
    /// Changes moved into the months (shard changes and deltas).
    pub changes: u64,
    /// When the oldest of them was written (RFC 3339), if known.
    pub oldest: Option<String>,
}

impl Store {
    /// Page `offset..offset + take` of a customer listing whose counts are
    /// `t`: from the day's fence at most [`tally::FENCE_EVERY`] entries
    /// before it, or from the day's start when the offset is that near it
    /// or the day's fences are older than its counts.
    pub(super) async fn tally_page(
        &self,
        r: &Place,
        t: &Tally,
        offset: u64,
        take: u32,
    ) -> Result<Entries, StoreError> {
        let Some(at) = t.find(offset) else {
            return Ok(Entries {
                items: Vec::new(),
                more_after: None,
            });
        };
        let (from, skip) = match at.skip < tally::FENCE_EVERY {
            true => (at.day.clone(), at.skip),
            false => match self.find_fence(&r.dir_pk, &at).await? {
                Some(fence) => fence,
                None => (at.day.clone(), at.skip),
            },
        };
        self.query_entries(r, Bound::Included(from), skip, take)
            .await
    }

    /// Compacts the directory of a customer listing: its shards and any deltas
    /// into its months, then the fences of the days that changed. Safe to run
    /// concurrently with writers and with itself.
    pub async fn fold_listing(&self, dir_pk: &str) -> Result<Folded, StoreError> {
        let (mut folded, mut days) = self.fold_deltas(dir_pk).await?;
        let shards = self
            .query_prefix_all(dir_pk.to_owned(), tally::SHARD)
            .await?;
        for shard in shards {
            let (changes, first_at, changed) = self.compact_shard(dir_pk, shard).await?;
            folded.changes += changes;
            if let Some(at) = first_at
                && folded.oldest.as_ref().is_none_or(|o| at < *o)
            {
                folded.oldest = Some(at);
            }
            days.extend(changed);
        }
        let entries_pk = entries_pk_of_index(dir_pk);
        for day in days {
            self.refresh_fences(dir_pk, &entries_pk, &day).await?;
        }
        Ok(folded)
    }

    /// [`Store::fold_listing`], returning the changes it compacted.
    pub async fn fold_index(&self, dir_pk: &str) -> Result<u64, StoreError> {
        Ok(self.fold_listing(dir_pk).await?.changes)
    }

    /// Folds the deltas a previous release left in the directory of a customer
    /// listing into its months (entries and changes per day), a transaction per
    /// batch; safe to run concurrently with itself. Returns what it folded and
    /// the days it changed.
    pub(super) async fn fold_deltas(
        &self,
        dir_pk: &str,
    ) -> Result<(Folded, BTreeSet<String>), StoreError> {
        let mut folded = Folded::default();
        let mut days = BTreeSet::new();
        let mut lost_races = 0;
        loop {
            let deltas = self
                .query_prefix(dir_pk.to_owned(), dir::DELTA, DELTAS_PER_FOLD)
                .await?;
            if deltas.is_empty() {
                return Ok((folded, days));
            }
            let slots = deltas
                .iter()
                .map(|d| {
                    let at = d.get(dir::AT).and_then(|v| v.as_s().ok());
                    let at = at.ok_or_else(|| StoreError::Corrupt("delta without slot".into()))?;
                    Ok((at.as_str(), number(d.get(dir::COUNT))))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let mut tx = self.tx();
            for d in &deltas {
                let sk = d.get(SK).and_then(|v| v.as_s().ok()).cloned();
                let sk = sk.ok_or_else(|| StoreError::Corrupt("delta without key".into()))?;
                tx = tx.delete(Write::Delta, key(dir_pk.to_owned(), &sk), EXISTS, &[])?;
            }
            let mut add = Additions::of(slots.iter().copied())?;
            // The months only, with each day's changes beside its entries.
            add.days.clear();
            for (slot, c) in &slots {
                if let (Some(month), Some(day)) = (slot.get(..7), slot.get(8..10)) {
                    let parts = &mut add.months.entry(month.to_owned()).or_default().1;
                    *parts.entry(DayCount::Changes.attr(day)).or_default() += c.abs();
                }
                if let Some(day) = slot.get(..10) {
                    days.insert(day.to_owned());
                }
            }
            tx = add_to_directory(tx, dir_pk, &add)?;
            match tx.commit().await {
                Ok(()) => folded.changes += deltas.len() as u64,
                // Another fold took some of them first: read again.
                Err(TxError::Cancelled(c)) if c.failed(Write::Delta) && lost_races < 20 => {
                    lost_races += 1
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Moves one shard's counts into the months and deletes it, in one
    /// transaction conditioned on the shard being as read. Returns its
    /// changes, when the oldest was written and the days they touched.
    async fn compact_shard(
        &self,
        dir_pk: &str,
        shard: Item,
    ) -> Result<(u64, Option<String>, BTreeSet<String>), StoreError> {
        optimistic(shard, |shard| async move {
            let changes = number(shard.get(tally::CHANGES));
            let first_at = shard
                .get(tally::FIRST_AT)
                .and_then(|v| v.as_s().ok())
                .cloned();
            let mut add = Additions::default();
            let mut days = BTreeSet::new();
            for (name, value) in numbers(&shard) {
                let Some((kind, ymd)) = DayCount::parse(name, 8) else {
                    continue;
                };
                let month = add
                    .months
                    .entry(format!("{}-{}", &ymd[..4], &ymd[4..6]))
                    .or_default();
                if kind == DayCount::Entries {
                    month.0 += value;
                }
                *month.1.entry(kind.attr(&ymd[6..])).or_default() += value;
                days.insert(format!("{}-{}-{}", &ymd[..4], &ymd[4..6], &ymd[6..]));
            }
            let key = shard_key(&shard)?;
            let tx = self.tx().delete(
                Write::Shard,
                key.clone(),
                &shard_unchanged(),
                &[(":changes", n(changes))],
            )?;
            match add_to_directory(tx, dir_pk, &add)?.commit().await {
                Ok(()) => Ok(Attempt::Done((changes.max(0) as u64, first_at, days))),
                Err(TxError::Cancelled(c)) if c.failed(Write::Shard) => {
                    match self.get(key).await? {
                        Some(now) => Ok(Attempt::Again(now)),
                        None => Ok(Attempt::Done((0, None, BTreeSet::new()))),
                    }
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }
}

/// The key (`PK`, `SK`) of an item.
fn shard_key(item: &Item) -> Result<Item, StoreError> {
    let key: Item = [super::table::PK, SK]
        .into_iter()
        .filter_map(|k| item.get(k).map(|v| (k.to_owned(), v.clone())))
        .collect();
    match key.len() {
        2 => Ok(key),
        _ => Err(StoreError::Corrupt("directory shard without key".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::super::table::{dir_delta_item, dir_month_key};
    use super::*;

    fn month(bucket: &str, attrs: &[(&str, i64)]) -> Item {
        let mut item = dir_month_key("P", bucket);
        for (a, c) in attrs {
            item.insert((*a).into(), n(*c));
        }
        item
    }

    #[test]
    fn months_shards_and_deltas_add_up_per_day() {
        // GIVEN a month with two days, a shard with changes in one of them and
        // another day, and a delta of a previous release
        let mut shard = tally_shard_key("P", 3);
        for (a, c) in [
            ("d20261102", 2),
            ("v20261102", 2),
            ("d20261130", -1),
            ("v20261130", 1),
        ] {
            shard.insert(a.into(), n(c));
        }
        shard.insert(tally::CHANGES.into(), n(3));
        let items = vec![
            month(
                "2026-11",
                &[("count", 5), ("d02", 3), ("v02", 3), ("d30", 2), ("v30", 4)],
            ),
            shard,
            dir_delta_item("P", "2026-12-01T10:00", 1),
        ];
        // WHEN it is read
        let t = Tally::from_items(&items).unwrap();
        // THEN each day holds its entries and changes, and offsets find their day
        assert_eq!(t.total(), 5 + 2 - 1 + 1);
        assert_eq!(t.day("2026-11-02"), (5, 5));
        assert_eq!(t.day("2026-11-30"), (1, 5));
        assert_eq!(t.day("2026-12-01"), (1, 1));
        let at = |o| t.find(o).map(|d| (d.day, d.skip));
        assert_eq!(at(0), Some(("2026-11-02".into(), 0)));
        assert_eq!(at(4), Some(("2026-11-02".into(), 4)));
        assert_eq!(at(5), Some(("2026-11-30".into(), 0)));
        assert_eq!(at(6), Some(("2026-12-01".into(), 0)));
        assert_eq!(at(7), None);
    }

    #[test]
    fn a_customer_always_counts_in_the_same_shard() {
        let id = CustomerId::parse("5f35d2c4-5633-4b16-bbf0-5ca22ef8ea2e").unwrap();
        assert_eq!(shard_of(&id), 0xe % tally::SHARDS);
        assert_eq!(compact_day("2026-03-01T10:00:00Z"), "20260301");
        assert_eq!(
            DayCount::parse("d20260301", 8),
            Some((DayCount::Entries, "20260301"))
        );
        assert_eq!(DayCount::parse("d01", 8), None);
        assert_eq!(DayCount::parse("count", 2), None);
    }
}
