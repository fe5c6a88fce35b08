//! Reading a ranked listing (page *n* or the page after a cursor) and folding
//! its directory's deltas; see [`super::rank`] for the directory itself.

use aws_sdk_dynamodb::types::AttributeValue;

use std::collections::BTreeSet;

use super::rank::{Additions, Directory, Start, number};
use super::table::{EXISTS, Item, PK, SK, dir, dir_add, dir_day_key, dir_month_key, key, n, s};
use super::tally::Folded;
use super::tx::{Tx, TxError};
use super::{Store, StoreError};

/// Deltas folded per transaction: each may touch a month and a day, within
/// DynamoDB's 100 actions.
const DELTAS_PER_FOLD: i32 = 32;

/// When the entry a page starts at is at most this far into its day, the page
/// is read from the day's start rather than after reading the day's slots.
const DIRECT_SKIP: u64 = 8;

/// Where a listing's entries and directory are.
pub(super) struct Ranked {
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

/// Which entries a page holds.
pub(super) enum Window {
    /// `take` entries from `offset` (0-based) on.
    Offset { offset: u64, take: u32 },
    /// `take` entries after the sort key `after`.
    After { after: String, take: u32 },
}

/// Entries of one page, and the sort key of the last one when more follow.
pub(super) struct Entries {
    pub items: Vec<Item>,
    pub more_after: Option<String>,
}

/// Where to read entries from.
pub(super) enum From {
    /// The partition's first entry.
    Start,
    /// The first entry at or after a sort key (prefix).
    AtOrAfter(String),
    /// The first entry after a sort key.
    After(String),
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
        self.query_all("#pk = :pk AND #sk BETWEEN :from AND :to", &values)
            .await
    }

    /// The entries of a page: from the start (page 1), after a cursor, or from
    /// the slot the directory places the page's first entry in.
    pub(super) async fn read_entries(
        &self,
        r: &Ranked,
        dir: Option<&Directory>,
        window: Window,
    ) -> Result<Entries, StoreError> {
        let (from, skip, take) = match window {
            Window::After { after, take } => (From::After(after), 0, take),
            Window::Offset { offset: 0, take } if r.sort_prefix.is_empty() => {
                (From::Start, 0, take)
            }
            Window::Offset { offset: 0, take } => {
                (From::AtOrAfter(r.sort_prefix.to_owned()), 0, take)
            }
            Window::Offset { offset, take } => {
                let dir =
                    dir.ok_or_else(|| StoreError::Corrupt("page without directory".into()))?;
                let Some(day) = dir.find_day(offset) else {
                    return Ok(Entries {
                        items: Vec::new(),
                        more_after: None,
                    });
                };
                let at = if day.skip <= DIRECT_SKIP {
                    day
                } else {
                    let item = self
                        .get_with(dir_day_key(&r.dir_pk, &day.start), r.consistent)
                        .await?;
                    dir.find_slot(&day, item.as_ref())
                };
                let Start { start, skip } = at;
                (
                    From::AtOrAfter(format!("{}{start}", r.sort_prefix)),
                    skip,
                    take,
                )
            }
        };
        self.query_entries(r, from, skip, take).await
    }

    /// `take` entries of `r` from `from`, after skipping `skip`; reads one more
    /// to tell whether any follow.
    pub(super) async fn query_entries(
        &self,
        r: &Ranked,
        from: From,
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
                From::Start => q.key_condition_expression("#pk = :pk"),
                From::AtOrAfter(k) | From::After(k) => {
                    let op = if matches!(from, From::After(_)) {
                        ">"
                    } else {
                        ">="
                    };
                    q.key_condition_expression(format!("#pk = :pk AND #sort {op} :from"))
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
                tx = tx.delete("delta", key(dir_pk.to_owned(), &sk), EXISTS, &[])?;
            }
            let mut add = Additions::of(slots.iter().copied())?;
            // The months only, with each day's changes beside its entries.
            add.days.clear();
            for (slot, c) in &slots {
                if let (Some(month), Some(day)) = (slot.get(..7), slot.get(8..10)) {
                    let parts = &mut add.months.entry(month.to_owned()).or_default().1;
                    *parts.entry(format!("v{day}")).or_default() += c.abs();
                }
                if let Some(day) = slot.get(..10) {
                    days.insert(day.to_owned());
                }
            }
            tx = add_to_directory(tx, dir_pk, &add)?;
            match tx.commit().await {
                Ok(()) => folded.changes += deltas.len() as u64,
                // Another fold took some of them first: read again.
                Err(TxError::Cancelled(c)) if c.failed("delta") && lost_races < 20 => {
                    lost_races += 1
                }
                Err(TxError::Cancelled(c)) => return Err(super::customers::unexpected(&c)),
                Err(TxError::Store(e)) => return Err(e),
            }
        }
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
                .filter_expression("#type IN (:delta, :tally)")
                .expression_attribute_names("#type", "type")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":delta", s("delta"))
                .expression_attribute_values(":tally", s("tally"))
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

/// Adds `add` to the months and days of the directory in `pk`, in `tx`.
pub(super) fn add_to_directory<'s>(
    mut tx: Tx<'s>,
    pk: &str,
    add: &Additions,
) -> Result<Tx<'s>, StoreError> {
    let buckets = add
        .months
        .iter()
        .map(|(b, v)| ("month", dir_month_key(pk, b), v))
        .chain(add.days.iter().map(|(b, v)| ("day", dir_day_key(pk, b), v)));
    for (write, key, (total, parts)) in buckets {
        let attrs: Vec<String> = parts.keys().cloned().collect();
        let values: Vec<(String, AttributeValue)> = std::iter::once(n(*total))
            .chain(parts.values().map(|c| n(*c)))
            .enumerate()
            .map(|(i, v)| (format!(":c{i}"), v))
            .collect();
        let values: Vec<(&str, AttributeValue)> = values
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        tx = tx.update(write, key, &dir_add(&attrs), None, &values)?;
    }
    Ok(tx)
}
