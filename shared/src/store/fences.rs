//! Fences of a customer listing's day, and of a members listing's minute:
//! every [`tally::FENCE_EVERY`]-th sort key of its entries, so that a page
//! starting deep in a day or minute with thousands of entries (a bulk import
//! stamped with one time, a sign-up burst) reads at most that many entries
//! before it.
//!
//! The stream consumer writes them, a customer listing's days after compacting
//! their counts ([`Store::fold_listing`]), a members listing's minutes when
//! their counts change ([`Store::refresh_member_fences`]), labelled with the
//! day's or minute's version (its number of changes); a reader uses them only
//! while the version is still that, and otherwise reads the day or minute from
//! its start.

use aws_sdk_dynamodb::types::AttributeValue;

use crate::domain::CustomerId;

use super::directory::{day_of, number, slot_counts};
use super::error::StoreError;
use super::handle::Store;
use super::table::{
    CUSTOMER_ACTIVE, FENCES_PUT, Item, LSI1SK, MEMBER_PREFIX, MEMBERS_INDEX, SK, customer_key,
    customer_pk, dir, dir_day_key, fences_item, fences_key, fences_kind, s, slot_time, tally,
};
use super::tally::{DayAt, Tally};
use super::tx::{TxError, Write};

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
        self.write_fences(dir_pk, day, before, fences_of(&entries, SK), None)
            .await
    }

    /// Writes the fences of a members listing's minute `slot`
    /// (`<group><YYYY-MM-DDTHH:MM>`) when it holds more than
    /// [`tally::FENCE_EVERY`] members, labelled with the minute's version before
    /// and after its members were read (nothing when a change came between:
    /// its own stream record asks again), while the customer is active.
    pub async fn refresh_member_fences(
        &self,
        customer: &CustomerId,
        slot: &str,
    ) -> Result<(), StoreError> {
        let pk = customer_pk(customer);
        let day = dir_day_key(&pk, &day_of(slot)?);
        let (count, before) = slot_counts(self.get(day.clone()).await?.as_ref(), slot)?;
        if count <= tally::FENCE_EVERY {
            return Ok(());
        }
        let prefix = format!("{MEMBER_PREFIX}{slot}");
        let members = self
            .query_index_prefix_all((MEMBERS_INDEX, LSI1SK), pk.clone(), &prefix)
            .await?;
        let (_, after) = slot_counts(self.get(day).await?.as_ref(), slot)?;
        if before != after {
            return Ok(());
        }
        let keys = fences_of(&members, LSI1SK);
        match self
            .write_fences(&pk, slot, before, keys, Some(customer))
            .await
        {
            Err(StoreError::CustomerNotFound) => Ok(()),
            other => other,
        }
    }

    /// Writes the fences of every minute of a customer's members directory
    /// that holds more than [`tally::FENCE_EVERY`] members, as the stream
    /// consumer does when a minute changes (for minutes written before their
    /// change counts were kept, and for benchmarks). Returns the minutes.
    pub async fn refresh_all_member_fences(
        &self,
        customer: &CustomerId,
    ) -> Result<u64, StoreError> {
        let days = self
            .query_prefix_all(customer_pk(customer), dir::DAY_PREFIX)
            .await?;
        let mut minutes = 0;
        for day in &days {
            let sk = day.get(SK).and_then(|v| v.as_s().ok());
            let Some(name) = sk.and_then(|k| k.strip_prefix(dir::DAY_PREFIX)) else {
                continue;
            };
            for (attr, value) in day {
                let Some(time) = slot_time(attr) else {
                    continue;
                };
                if number(Some(value)) > tally::FENCE_EVERY as i64 {
                    self.refresh_member_fences(customer, &format!("{name}T{time}"))
                        .await?;
                    minutes += 1;
                }
            }
        }
        Ok(minutes)
    }

    /// Puts the fence items of `slot` (a day or a minute) in `dir_pk`, at
    /// `version`, [`PUTS_PER_TX`] per transaction, each checking that
    /// `customer` (when given) is still active.
    async fn write_fences(
        &self,
        dir_pk: &str,
        slot: &str,
        version: i64,
        keys: Vec<AttributeValue>,
        customer: Option<&CustomerId>,
    ) -> Result<(), StoreError> {
        let items: Vec<_> = keys
            .chunks(tally::FENCES_PER_ITEM as usize)
            .enumerate()
            .map(|(i, chunk)| fences_item(dir_pk, slot, i as u64, version, chunk.to_vec()))
            .collect();
        for batch in items.chunks(PUTS_PER_TX) {
            let mut tx = self.tx();
            if let Some(id) = customer {
                tx = tx.check(
                    Write::Customer,
                    customer_key(id),
                    CUSTOMER_ACTIVE,
                    &[(":active", s("active"))],
                )?;
            }
            for item in batch {
                tx = tx.put(
                    Write::Fences,
                    item.clone(),
                    FENCES_PUT,
                    &[(":fences", fences_kind())],
                )?;
            }
            match tx.commit().await {
                Ok(()) => {}
                Err(TxError::Cancelled(c)) if c.failed(Write::Customer) => {
                    return Err(StoreError::CustomerNotFound);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Every [`tally::FENCE_EVERY`]-th sort key (`sort_attr`) of `entries`.
fn fences_of(entries: &[Item], sort_attr: &str) -> Vec<AttributeValue> {
    entries
        .iter()
        .step_by(tally::FENCE_EVERY as usize)
        .filter_map(|e| e.get(sort_attr).cloned())
        .collect()
}
