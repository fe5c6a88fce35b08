//! Directory items of the listings: months, days, deltas, shards and fences.

use aws_sdk_dynamodb::types::AttributeValue;
use uuid::Uuid;

use super::keys::{Item, TYPE, key, n, s};

/// The order-statistics directory of a listing (see `store::directory`): counts of
/// its entries per month and per day of their time, so that any page's first
/// entry is found without reading the entries before it.
///
/// | item  | SK                            | attributes                           |
/// |-------|-------------------------------|--------------------------------------|
/// | month | `DIR#M#<group><YYYY-MM>`       | `count`, `d01`..`d31` (per day)      |
/// | delta | `DIR#X#<uuid>`                | `at` = `<group><YYYY-MM-DDTHH:MM>`, `count` |
/// | day   | `DIRL2#<group><YYYY-MM-DD>`    | `count`, `s0000`..`s2359` (per minute), `w0000`..`w2359` (changes per minute) |
///
/// `<group>` orders entries before their time: empty for customers, the rank
/// and `#` for members. Months and deltas sort together (one Query reads them,
/// with a member listing's customer record); days sort after them.
pub mod dir {
    /// First sort key of the items one directory read returns (a customer
    /// record sorts before it, in its own partition).
    pub const READ_FROM: &str = "CUSTOMER";
    /// Last sort key of the items one directory read returns.
    pub const READ_TO: &str = "DIR#~";
    /// Sort key prefix of every item of a directory: months, deltas, shards,
    /// days and fences.
    pub const EVERY: &str = "DIR";
    /// Sort key prefix of the days.
    pub const DAY_PREFIX: &str = "DIRL2#";
    /// Sort key prefix of a month.
    pub const MONTH: &str = "DIR#M#";
    /// Sort key prefix of a delta.
    pub const DELTA: &str = "DIR#X#";
    /// Attribute of a delta: the slot it counts in.
    pub const AT: &str = "at";
    /// Attribute of the total of a month, a day or a delta.
    pub const COUNT: &str = "count";
}

/// The sharded day counts of a customer listing (see `store::tally`): every
/// change of a listing's entries adds to one of [`tally::SHARDS`] items in its
/// transaction, and the stream consumer compacts them into the months.
///
/// | item   | SK                      | attributes |
/// |--------|-------------------------|------------|
/// | shard  | `DIR#S#<n>`             | `count`, `d<YYYYMMDD>` (entries), `v<YYYYMMDD>` (changes), `chg`, `firstAt` |
/// | month  | `DIR#M#<YYYY-MM>`       | `count`, `dDD`, `vDD` |
/// | fences | `DIRF#<YYYY-MM-DD>#<nnnnn>` | `ver`, `keys`: every [`tally::FENCE_EVERY`]-th sort key of the day |
pub mod tally {
    /// Sort key prefix of a shard.
    pub const SHARD: &str = "DIR#S#";
    /// Shards per listing: writers pick one by their customer's id.
    pub const SHARDS: u32 = 8;
    /// Sort key prefix of a day's fences (sorts after every directory read).
    pub const FENCES: &str = "DIRF#";
    /// Entries between two fences of a day.
    pub const FENCE_EVERY: u64 = 32;
    /// Fences per fence item.
    pub const FENCES_PER_ITEM: u64 = 128;
    /// Attribute of a shard: changes it holds (its version, for compaction).
    pub const CHANGES: &str = "chg";
    /// Attribute of a shard: when its oldest uncompacted change was written.
    pub const FIRST_AT: &str = "firstAt";
    /// Attribute of a fence item: the day's version its fences were read at.
    pub const VERSION: &str = "ver";
    /// Attribute of a fence item: the fences, in order.
    pub const KEYS: &str = "keys";
}

/// Key of shard `shard` of the day counts in directory `pk`.
pub fn tally_shard_key(pk: &str, shard: u32) -> Item {
    key(pk.to_owned(), &format!("{}{shard}", tally::SHARD))
}

/// Key of fence item `n` of `day` (`YYYY-MM-DD`) in directory `pk`.
pub fn fences_key(pk: &str, day: &str, n: u64) -> Item {
    key(pk.to_owned(), &format!("{}{day}#{n:05}", tally::FENCES))
}

/// Update of a shard: `:delta` entries more (or fewer) on `day` (`YYYYMMDD`)
/// and one more change; values `:delta`, `:one`, `:tally`, `:now`.
pub fn tally_add(day: &str) -> String {
    format!(
        "ADD #count :delta, {} :delta, {} :one, {} :one \
         SET #type = :tally, {} = if_not_exists({}, :now)",
        DayCount::Entries.attr(day),
        DayCount::Changes.attr(day),
        tally::CHANGES,
        tally::FIRST_AT,
        tally::FIRST_AT
    )
}

/// Update of a shard by a bulk load: `:total` entries and `:changes` changes
/// more, and per day `days[i]` (`YYYYMMDD`) `:c<i>` entries and `:v<i>`
/// changes; values `:tally`, `:now` as in [`tally_add`].
pub fn tally_load(days: &[&str]) -> String {
    let mut adds = vec![
        "#count :total".to_owned(),
        format!("{} :changes", tally::CHANGES),
    ];
    for (i, day) in days.iter().enumerate() {
        adds.push(format!(
            "{} :c{i}, {} :v{i}",
            DayCount::Entries.attr(day),
            DayCount::Changes.attr(day)
        ));
    }
    format!(
        "ADD {} SET #type = :tally, {} = if_not_exists({}, :now)",
        adds.join(", "),
        tally::FIRST_AT,
        tally::FIRST_AT
    )
}

/// What a day attribute of a month or a shard counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayCount {
    /// The day's entries: `d<day>`.
    Entries,
    /// The day's changes (its version): `v<day>`.
    Changes,
}

impl DayCount {
    /// The attribute counting this for `day` (`DD` in a month, `YYYYMMDD` in a shard).
    pub fn attr(self, day: &str) -> String {
        match self {
            Self::Entries => format!("d{day}"),
            Self::Changes => format!("v{day}"),
        }
    }

    /// A day attribute read back: what it counts and its day (digits only).
    pub fn of_attr(name: &str) -> Option<(Self, &str)> {
        let kind = match name.get(..1)? {
            "d" => Self::Entries,
            "v" => Self::Changes,
            _ => return None,
        };
        let day = &name[1..];
        (!day.is_empty() && day.bytes().all(|b| b.is_ascii_digit())).then_some((kind, day))
    }

    /// [`DayCount::of_attr`], for a day of exactly `digits` digits.
    pub fn parse(name: &str, digits: usize) -> Option<(Self, &str)> {
        Self::of_attr(name).filter(|(_, day)| day.len() == digits)
    }
}

/// Attribute of a minute's count in a day item: `s<HH><MM>`.
pub fn slot_attr(hour: &str, minute: &str) -> String {
    format!("s{hour}{minute}")
}

/// Attribute of a minute's changes in a day item (its version, which the
/// minute's fences are labelled with): `w<HH><MM>`.
pub fn slot_version_attr(hour: &str, minute: &str) -> String {
    format!("w{hour}{minute}")
}

/// The minute (`HH:MM`) a day item's attribute counts, `None` for any other.
pub fn slot_time(name: &str) -> Option<String> {
    let hhmm = name.strip_prefix('s')?;
    let digits = hhmm.len() == 4 && hhmm.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| format!("{}:{}", &hhmm[..2], &hhmm[2..]))
}

/// Key of a directory month (`bucket` = `<group><YYYY-MM>`).
pub fn dir_month_key(pk: &str, bucket: &str) -> Item {
    key(pk.to_owned(), &format!("{}{bucket}", dir::MONTH))
}

/// Key of a directory day (`bucket` = `<group><YYYY-MM-DD>`).
pub fn dir_day_key(pk: &str, bucket: &str) -> Item {
    key(pk.to_owned(), &format!("{}{bucket}", dir::DAY_PREFIX))
}

/// A pending delta of a listing's directory: `count` entries more (or fewer)
/// in `slot`, folded into the months and days later (`Store::fold_index`).
pub fn dir_delta_item(pk: &str, slot: &str, count: i64) -> Item {
    let mut item = key(pk.to_owned(), &format!("{}{}", dir::DELTA, Uuid::new_v4()));
    item.insert(TYPE.to_owned(), s("delta"));
    item.insert(dir::AT.to_owned(), s(slot));
    item.insert(dir::COUNT.to_owned(), n(count));
    item
}

/// Update: add counts to a month or a day: `ADD count :c0, <attr1> :c1, ...`.
pub fn dir_add(attrs: &[String]) -> String {
    let parts = std::iter::once("#count :c0".to_owned()).chain(
        attrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{a} :c{}", i + 1)),
    );
    format!("ADD {}", parts.collect::<Vec<_>>().join(", "))
}

/// The kind (`type`) of a shard of day counts.
pub const TALLY_KIND: &str = "tally";

/// Filter: the items holding changes to compact (shards and deltas).
pub const PENDING_CHANGES: &str = "#type IN (:delta, :tally)";

/// The values of [`PENDING_CHANGES`].
pub fn pending_values() -> Item {
    Item::from([
        (":delta".to_owned(), s("delta")),
        (":tally".to_owned(), s(TALLY_KIND)),
    ])
}

/// Filter: a day's fence item (with [`FENCES_PUT`]'s `:fences`).
pub const FENCES_PUT: &str =
    "attribute_not_exists(#pk) OR (attribute_exists(#pk) AND #type = :fences)";

/// A fence item of `day` (`YYYY-MM-DD`) in directory `pk`: number `n`,
/// holding `keys`, read at the day's `version`.
pub fn fences_item(pk: &str, day: &str, n_: u64, version: i64, keys: Vec<AttributeValue>) -> Item {
    let mut item = fences_key(pk, day, n_);
    item.insert(TYPE.to_owned(), s("fences"));
    item.insert(tally::VERSION.to_owned(), n(version));
    item.insert(tally::KEYS.to_owned(), AttributeValue::L(keys));
    item
}

/// The value of `:fences` in [`FENCES_PUT`].
pub fn fences_kind() -> AttributeValue {
    s("fences")
}

/// Condition on a shard being compacted: its changes (`:changes`) as read.
pub fn shard_unchanged() -> String {
    format!("{} = :changes", tally::CHANGES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_and_slot_attributes_read_back() {
        assert_eq!(DayCount::Entries.attr("20260301"), "d20260301");
        assert_eq!(
            DayCount::parse("d20260301", 8),
            Some((DayCount::Entries, "20260301"))
        );
        assert_eq!(DayCount::parse("v07", 2), Some((DayCount::Changes, "07")));
        assert_eq!(DayCount::parse("d01", 8), None);
        assert_eq!(DayCount::parse("count", 2), None);
        assert_eq!(DayCount::of_attr("d"), None);
        assert_eq!(slot_attr("03", "45"), "s0345");
        assert_eq!(slot_time("s0345").as_deref(), Some("03:45"));
        assert_eq!(slot_time("s03"), None);
        assert_eq!(slot_time(&slot_version_attr("03", "45")), None);
        assert_eq!(
            tally_add("20260301"),
            "ADD #count :delta, d20260301 :delta, v20260301 :one, chg :one \
             SET #type = :tally, firstAt = if_not_exists(firstAt, :now)"
        );
        assert_eq!(
            tally_load(&["20260301"]),
            "ADD #count :total, chg :changes, d20260301 :c0, v20260301 :v0 \
             SET #type = :tally, firstAt = if_not_exists(firstAt, :now)"
        );
    }
}
