//! The audit trail: an entry written in the transaction of the change it
//! records ([`super::tx::Tx::audit`] numbers it), and the newest-first pages
//! of a customer's entries.

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::Select;

use crate::domain::CustomerId;
use crate::domain::audit::AuditEntry;

use super::error::StoreError;
use super::handle::Store;
use super::observe::observe;
use super::page::Page;
use super::page::PageAt;
use super::table::{
    AuditItem, ENTRIES_FROM, Item, LEGACY_TO, PK, SK, audit_number, audit_pk, audit_sequence_key,
    audit_sequence_of, audit_sort, key, s,
};

/// A sort key range of a customer's audit partition.
#[derive(Debug, Clone, Copy)]
struct Range<'a> {
    from: &'a str,
    to: Option<&'a str>,
}

impl Range<'_> {
    /// Every entry, numbered or not (not the sequence item).
    const ENTRIES: Range<'static> = Range {
        from: ENTRIES_FROM,
        to: None,
    };
    /// The entries written before numbering.
    const LEGACY: Range<'static> = Range {
        from: ENTRIES_FROM,
        to: Some(LEGACY_TO),
    };
}

/// What a trail holds: its newest number, and how its oldest entry is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extent {
    /// The customer's sequence: the newest entry's number (0: none yet).
    newest: u64,
    /// The oldest entry kept.
    oldest: Oldest,
}

/// The oldest entry of a trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Oldest {
    /// No entry at all.
    None,
    /// A numbered entry: every entry is numbered, from it to the newest.
    Numbered(u64),
    /// An entry written before numbering: those sort below (and are older
    /// than) every numbered entry.
    Legacy,
}

impl Extent {
    /// How many numbered entries are kept: from the oldest kept to the
    /// newest (numbers are dense; the time to live removes the oldest first).
    /// Below entries written before numbering, none has expired yet: 1 to
    /// the newest.
    fn numbered(self) -> u64 {
        match self.oldest {
            Oldest::None => 0,
            Oldest::Numbered(oldest) => self.newest.saturating_sub(oldest) + 1,
            Oldest::Legacy => self.newest,
        }
    }
}

impl Store {
    /// One page of a customer's audit entries, newest first, and their total;
    /// strongly consistent. Entries outlive the customer (for
    /// [`super::table::AUDIT_RETENTION_DAYS`]); a customer without any has
    /// an empty page.
    ///
    /// The total is the customer's sequence less the oldest number kept (a
    /// GetItem and a one-item Query, beside the page's own Query); numbered
    /// page *n* is the key range below number `newest - offset`, read after
    /// them. Only entries written before numbering cost what they did:
    /// counting them, and skipping them to a page among them.
    pub async fn list_audit(
        &self,
        customer: &CustomerId,
        at: PageAt,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let span = store_span!("list_audit", customer = %customer, at = ?at);
        observe(span, async {
            let pk = audit_pk(customer);
            let (extent, items, take) = match at {
                PageAt::After { after, limit } => {
                    let take = limit as usize;
                    let upper = Range {
                        from: ENTRIES_FROM,
                        to: Some(&after),
                    };
                    let start = Some(key(pk.clone(), &after));
                    let (extent, items) = tokio::join!(
                        self.audit_extent(customer),
                        self.newest_first(&pk, upper, start, 0, take + 1)
                    );
                    (extent?, items?, take)
                }
                PageAt::Number(p) if p.offset() == 0 => {
                    let take = p.limit as usize;
                    let (extent, items) = tokio::join!(
                        self.audit_extent(customer),
                        self.newest_first(&pk, Range::ENTRIES, None, 0, take + 1)
                    );
                    (extent?, items?, take)
                }
                PageAt::Number(p) => {
                    let (offset, take) = (p.offset(), p.limit as usize);
                    let extent = self.audit_extent(customer).await?;
                    let items = if offset < extent.numbered() {
                        // The numbered entry at `offset`, and down from it.
                        let first = audit_sort(extent.newest - offset);
                        let below = Range {
                            from: ENTRIES_FROM,
                            to: Some(&first),
                        };
                        self.newest_first(&pk, below, None, 0, take + 1).await?
                    } else {
                        let skip = offset - extent.numbered();
                        self.newest_first(&pk, Range::LEGACY, None, skip, take + 1)
                            .await?
                    };
                    (extent, items, take)
                }
            };
            let total = extent.numbered()
                + match extent.oldest {
                    Oldest::Legacy => self.count_range(&pk, Range::LEGACY).await?,
                    Oldest::None | Oldest::Numbered(_) => 0,
                };
            page(items, take, total)
        })
        .await
    }

    /// The customer's sequence and its oldest entry, read at once.
    async fn audit_extent(&self, customer: &CustomerId) -> Result<Extent, StoreError> {
        let pk = audit_pk(customer);
        let oldest = self
            .in_range(&pk, Range::ENTRIES)
            .scan_index_forward(true)
            .limit(1)
            .projection_expression("#sk")
            .expression_attribute_names("#sk", SK)
            .send();
        let (sequence, oldest) = tokio::join!(self.get(audit_sequence_key(customer)), oldest);
        let newest = audit_sequence_of(sequence?.as_ref())
            .ok_or_else(|| StoreError::Corrupt(format!("audit sequence of customer {customer}")))?;
        let oldest = oldest
            .map_err(StoreError::dynamo)?
            .items
            .unwrap_or_default()
            .first()
            .and_then(|item| item.get(SK)?.as_s().ok().cloned());
        Ok(Extent {
            newest,
            oldest: match oldest.as_deref() {
                None => Oldest::None,
                Some(sk) => audit_number(sk).map_or(Oldest::Legacy, Oldest::Numbered),
            },
        })
    }

    /// A strongly consistent query of a sort key range of one partition.
    fn in_range(&self, pk: &str, range: Range<'_>) -> QueryFluentBuilder {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":from", s(range.from))
            .consistent_read(true);
        match range.to {
            None => query.key_condition_expression("#pk = :pk AND #sk >= :from"),
            Some(to) => query
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
                .expression_attribute_values(":to", s(to)),
        }
    }

    /// How many items a range of a partition holds.
    async fn count_range(&self, pk: &str, range: Range<'_>) -> Result<u64, StoreError> {
        let mut total = 0u64;
        let mut start = None;
        loop {
            let out = self
                .in_range(pk, range)
                .select(Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(StoreError::dynamo)?;
            total += u64::try_from(out.count).unwrap_or_default();
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(total),
            }
        }
    }

    /// Up to `take` items of a range of a partition from its newest, after
    /// `start` (a key) and past the first `skip`.
    async fn newest_first(
        &self,
        pk: &str,
        range: Range<'_>,
        mut start: Option<Item>,
        mut skip: u64,
        take: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::with_capacity(take);
        loop {
            let wanted = skip + (take - items.len()) as u64;
            let out = self
                .in_range(pk, range)
                .scan_index_forward(false)
                .limit(i32::try_from(wanted).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(StoreError::dynamo)?;
            for item in out.items.unwrap_or_default() {
                if skip > 0 {
                    skip -= 1;
                } else if items.len() < take {
                    items.push(item);
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && items.len() < take => start = Some(k),
                _ => return Ok(items),
            }
        }
    }
}

/// A page of `take` entries from `items` (one more when more follow).
fn page(mut items: Vec<Item>, take: usize, total: u64) -> Result<Page<AuditEntry>, StoreError> {
    let more = items.len() > take;
    items.truncate(take);
    let entries = items
        .into_iter()
        .map(serde_dynamo::from_item::<_, AuditItem>)
        .collect::<Result<Vec<_>, _>>()?;
    let more_after = match (more, entries.last()) {
        (true, Some(last)) => Some(last.sort_key().to_owned()),
        _ => None,
    };
    Ok(Page {
        items: entries
            .into_iter()
            .map(AuditItem::into_entry)
            .collect::<Result<_, _>>()?,
        total,
        more_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_counts_numbered_entries_kept() {
        let extent = |newest, oldest| Extent { newest, oldest };
        // No entry; a trail from 1; one whose oldest entries expired.
        assert_eq!(extent(0, Oldest::None).numbered(), 0);
        assert_eq!(extent(5, Oldest::None).numbered(), 0);
        assert_eq!(extent(10_000, Oldest::Numbered(1)).numbered(), 10_000);
        assert_eq!(extent(10_000, Oldest::Numbered(9_001)).numbered(), 1_000);
        // Entries from before numbering below numbered ones 1..=newest.
        assert_eq!(extent(7, Oldest::Legacy).numbered(), 7);
        assert_eq!(extent(0, Oldest::Legacy).numbered(), 0);
    }
}
