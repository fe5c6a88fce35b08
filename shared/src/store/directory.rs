//! Order statistics of a listing: where its n-th entry is, without reading the
//! entries before it.
//!
//! Every entry of a listing has a *slot*: its group (empty for customers, the
//! rank and `#` for members) and the first 16 characters of its RFC 3339 time,
//! down to the minute (`2026-11-30T03:45`). Entries sort by group, then time,
//! so slots are prefixes of their sort keys and sort like them. The listing's
//! directory counts entries per month (with a count per day) and per day (with
//! a count per slot); writers that many callers share (customer listings) add
//! *deltas* instead, which readers count in and `Store::fold_index` later folds
//! into the months and days.
//!
//! Page *n* then costs one read of the months and deltas (a few items per month
//! of history), one read of one day (skipped when the entry is near the day's
//! start) and one read of the page from its slot: see
//! [`super::listing_reader`].

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::error::StoreError;
use super::table::{
    DayCount, Item, SK, dir, dir_add, dir_day_key, dir_month_key, n, slot_attr, slot_time,
    slot_version_attr,
};
use super::tx::{Tx, Write};

/// Length of the time part of a slot: `YYYY-MM-DDTHH:MM`.
const SLOT_TIME: usize = 16;

/// The slot of an entry in `group` at `time` (RFC 3339).
pub fn slot(group: &str, time: &str) -> String {
    let cut = time.get(..SLOT_TIME).unwrap_or(time);
    format!("{group}{cut}")
}

/// The parts of a slot: group, month (`YYYY-MM`), day of month (`DD`) and the
/// slot's attribute name in its day (`sHHMM`).
struct Parts<'a> {
    group: &'a str,
    time: &'a str,
}

impl<'a> Parts<'a> {
    fn of(slot: &'a str) -> Option<Self> {
        let split = slot.len().checked_sub(SLOT_TIME)?;
        let (group, time) = (slot.get(..split)?, slot.get(split..)?);
        let ok = time.is_char_boundary(7) && time.is_char_boundary(10) && time.is_ascii();
        ok.then_some(Self { group, time })
    }

    fn month(&self) -> String {
        format!("{}{}", self.group, &self.time[..7])
    }

    fn day_attr(&self) -> String {
        DayCount::Entries.attr(&self.time[8..10])
    }

    fn day(&self) -> String {
        format!("{}{}", self.group, &self.time[..10])
    }

    fn slot_attr(&self) -> String {
        slot_attr(&self.time[11..13], &self.time[14..16])
    }

    fn version_attr(&self) -> String {
        slot_version_attr(&self.time[11..13], &self.time[14..16])
    }
}

/// The day (`<group><YYYY-MM-DD>`) of a slot.
pub fn day_of(slot: &str) -> Result<String, StoreError> {
    Parts::of(slot)
        .map(|p| p.day())
        .ok_or_else(|| bad_slot(slot))
}

/// The entries and the version (changes) of `slot` in its day's directory item.
pub fn slot_counts(day: Option<&Item>, slot: &str) -> Result<(u64, i64), StoreError> {
    let p = Parts::of(slot).ok_or_else(|| bad_slot(slot))?;
    let value = |attr: String| number(day.and_then(|d| d.get(&attr)));
    Ok((value(p.slot_attr()).max(0) as u64, value(p.version_attr())))
}

/// Counts to add to a directory: per month (with per-day attributes) and per
/// day (with per-slot attributes), from changes per slot.
#[derive(Debug, Default, PartialEq)]
pub struct Additions {
    /// Month bucket (`<group><YYYY-MM>`) → its total and per-day counts.
    pub months: BTreeMap<String, (i64, BTreeMap<String, i64>)>,
    /// Day bucket (`<group><YYYY-MM-DD>`) → its total and per-slot counts.
    pub days: BTreeMap<String, (i64, BTreeMap<String, i64>)>,
}

impl Additions {
    /// The additions for `count` entries more (or fewer) in each slot.
    pub fn of<'a>(changes: impl IntoIterator<Item = (&'a str, i64)>) -> Result<Self, StoreError> {
        let mut add = Self::default();
        for (slot, count) in changes {
            let p = Parts::of(slot).ok_or_else(|| bad_slot(slot))?;
            let month = add.months.entry(p.month()).or_default();
            month.0 += count;
            *month.1.entry(p.day_attr()).or_default() += count;
            let day = add.days.entry(p.day()).or_default();
            day.0 += count;
            *day.1.entry(p.slot_attr()).or_default() += count;
            *day.1.entry(p.version_attr()).or_default() += count.abs();
        }
        Ok(add)
    }

    /// Number of items these additions write.
    pub fn writes(&self) -> usize {
        self.months.len() + self.days.len()
    }
}

/// A listing's months and pending deltas, as one read returns them.
#[derive(Debug, Default)]
pub struct Directory {
    months: BTreeMap<String, (i64, BTreeMap<String, i64>)>,
    pending: Vec<(String, i64)>,
}

/// Where a page starts: read from `start` (a prefix of sort keys) and skip `skip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The first sort key (prefix) to read from: a day or a slot.
    pub start: String,
    /// Entries from `start` that precede the page.
    pub skip: u64,
}

impl Directory {
    /// The directory from the items of one directory read (others are ignored).
    pub fn from_items(items: &[Item]) -> Result<Self, StoreError> {
        let mut d = Self::default();
        for item in items {
            let Some(sk) = item.get(SK).and_then(|v| v.as_s().ok()) else {
                continue;
            };
            if let Some(bucket) = sk.strip_prefix(dir::MONTH) {
                let parts = counts(item, |a| {
                    DayCount::of_attr(a).is_some_and(|(k, _)| k == DayCount::Entries)
                });
                d.months.insert(bucket.to_owned(), (count(item), parts));
            } else if sk.starts_with(dir::DELTA) {
                let at = item.get(dir::AT).and_then(|v| v.as_s().ok());
                let at =
                    at.ok_or_else(|| StoreError::Corrupt(format!("delta {sk} without slot")))?;
                d.pending.push((at.clone(), count(item)));
            }
        }
        let pending = Additions::of(d.pending.iter().map(|(s, c)| (s.as_str(), *c)))?;
        for (month, (n, days)) in pending.months {
            let m = d.months.entry(month).or_default();
            m.0 += n;
            for (day, c) in days {
                *m.1.entry(day).or_default() += c;
            }
        }
        Ok(d)
    }

    /// The day holding the entry at `offset`, and how many of that day's entries
    /// precede it; `None` when the listing has no more than `offset` entries.
    pub fn find_day(&self, offset: u64) -> Option<Start> {
        let mut left = offset;
        let mut last = None;
        for (month, (n, days)) in &self.months {
            let n = (*n).max(0) as u64;
            if left >= n {
                left -= n;
                continue;
            }
            for (day, c) in days {
                let c = (*c).max(0) as u64;
                let dd = DayCount::of_attr(day).map_or(day.as_str(), |(_, dd)| dd);
                let start = format!("{month}-{dd}");
                if left < c {
                    return Some(Start { start, skip: left });
                }
                left -= c;
                last = Some(start);
            }
            // The days say fewer than the month: read on from its last day.
            return last.map(|start| Start { start, skip: left });
        }
        None
    }

    /// The pending deltas of `day` (`<group><YYYY-MM-DD>`), as slot changes.
    fn pending_in<'a>(&'a self, day: &'a str) -> impl Iterator<Item = (&'a str, i64)> + 'a {
        self.pending
            .iter()
            .filter(move |(slot, _)| Parts::of(slot).is_some_and(|p| p.day() == day))
            .map(|(s, c)| (s.as_str(), *c))
    }

    /// Within `day` (its directory item, if any), the slot holding the entry
    /// `skip` entries after the day's start.
    pub fn find_slot(&self, day: &Start, item: Option<&Item>) -> Start {
        let mut slots = item
            .map(|i| counts(i, |a| slot_time(a).is_some()))
            .unwrap_or_default();
        for (slot, c) in self.pending_in(&day.start) {
            if let Some(p) = Parts::of(slot) {
                *slots.entry(p.slot_attr()).or_default() += c;
            }
        }
        let mut left = day.skip;
        for (attr, c) in &slots {
            let c = (*c).max(0) as u64;
            if left < c {
                let time = slot_time(attr).unwrap_or_default();
                let start = format!("{}T{time}", day.start);
                return Start { start, skip: left };
            }
            left -= c;
        }
        day.clone()
    }
}

/// The `count` attribute of a directory item.
fn count(item: &Item) -> i64 {
    number(item.get(dir::COUNT))
}

/// The numeric attributes of `item` whose names pass `wanted`.
fn counts(item: &Item, wanted: impl Fn(&str) -> bool) -> BTreeMap<String, i64> {
    item.iter()
        .filter(|(name, v)| {
            matches!(v, AttributeValue::N(_))
                && wanted(name)
                && name.len() > 1
                && name.bytes().skip(1).all(|b| b.is_ascii_digit())
        })
        .map(|(name, v)| (name.clone(), number(Some(v))))
        .collect()
}

/// A number attribute's value, 0 when absent or not a number.
pub(super) fn number(v: Option<&AttributeValue>) -> i64 {
    match v {
        Some(AttributeValue::N(raw)) => raw.parse().unwrap_or(0),
        _ => 0,
    }
}

fn bad_slot(slot: &str) -> StoreError {
    StoreError::Corrupt(format!("directory slot {slot:?}"))
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
        .map(|(b, v)| (Write::Month, dir_month_key(pk, b), v))
        .chain(
            add.days
                .iter()
                .map(|(b, v)| (Write::Day, dir_day_key(pk, b), v)),
        );
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

#[cfg(test)]
mod tests {
    use super::super::table::{TYPE, dir_delta_item, s};
    use super::*;

    fn month(bucket: &str, total: i64, days: &[(&str, i64)]) -> Item {
        let mut item = dir_month_key("P", bucket);
        item.insert(dir::COUNT.into(), n(total));
        for (d, c) in days {
            item.insert((*d).into(), n(*c));
        }
        item
    }

    #[test]
    fn slots_are_prefixes_of_sort_keys() {
        assert_eq!(slot("", "2026-11-30T03:45:12Z"), "2026-11-30T03:45");
        assert_eq!(slot("1#", "2026-11-30T03:45:12.345Z"), "1#2026-11-30T03:45");
        let add = Additions::of([("1#2026-11-30T03:45", 1), ("1#2026-11-30T03:59", 2)]).unwrap();
        assert_eq!(add.months["1#2026-11"].0, 3);
        assert_eq!(add.months["1#2026-11"].1["d30"], 3);
        assert_eq!(add.days["1#2026-11-30"].1["s0345"], 1);
        assert_eq!(add.days["1#2026-11-30"].1["s0359"], 2);
        assert_eq!(add.writes(), 2);
        assert!(Additions::of([("short", 1)]).is_err());
    }

    #[test]
    fn finds_the_day_and_slot_of_an_offset() {
        let items = vec![
            month("2026-10", 3, &[("d01", 1), ("d31", 2)]),
            month("2026-11", 2, &[("d02", 2)]),
            dir_delta_item("P", "2026-11-30T23:59", 1),
            dir_delta_item("P", "2026-10-31T00:00", -1),
        ];
        let d = Directory::from_items(&items).unwrap();
        let at = |o| d.find_day(o).map(|s| (s.start, s.skip));
        assert_eq!(at(0), Some(("2026-10-01".into(), 0)));
        assert_eq!(at(1), Some(("2026-10-31".into(), 0)));
        assert_eq!(at(2), Some(("2026-11-02".into(), 0)));
        assert_eq!(at(3), Some(("2026-11-02".into(), 1)));
        assert_eq!(at(4), Some(("2026-11-30".into(), 0)));
        assert_eq!(at(5), None);

        let mut day = dir_day_key("P", "2026-11-02");
        day.insert("s0000".into(), n(1));
        day.insert("s1042".into(), n(1));
        day.insert(TYPE.into(), s("x"));
        let start = Start {
            start: "2026-11-02".into(),
            skip: 1,
        };
        assert_eq!(d.find_slot(&start, Some(&day)).start, "2026-11-02T10:42");
        let last = d.find_day(4).unwrap();
        assert_eq!(d.find_slot(&last, None).start, "2026-11-30T23:59");
    }

    #[test]
    fn groups_sort_before_time() {
        let items = vec![
            month("0#2026-11", 1, &[("d05", 1)]),
            month("2#2020-01", 2, &[("d01", 2)]),
        ];
        let d = Directory::from_items(&items).unwrap();
        assert_eq!(d.find_day(0).unwrap().start, "0#2026-11-05");
        assert_eq!(d.find_day(2).unwrap().start, "2#2020-01-01");
    }
}
