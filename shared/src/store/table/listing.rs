//! Customer listings: their filters, partitions and entry keys.

use crate::domain::{Customer, CustomerId, SubscriptionStatus, TierName, Timestamp, time};

use super::keys::{Item, key};

/// A customer listing: the filters it applies, each `None` for "any".
///
/// Everything a listing needs is derived from this value in one place: the
/// partition of its entries ([`Listing::entries_pk`]), the partition of its
/// order-statistics directory ([`Listing::index_pk`]) and the listings a
/// customer appears in ([`Listing::of`]). Adding a filter is one field here,
/// its line in [`Listing::fields`] and [`Listing::keep`], and its parsing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    /// Only customers on this tier.
    pub tier: Option<TierName>,
    /// Only customers in this subscription status.
    pub status: Option<SubscriptionStatus>,
}

impl Listing {
    /// Number of filters: a customer appears in `2^FILTERS` listings.
    const FILTERS: u32 = 2;

    /// Every active customer.
    pub fn all() -> Self {
        Self::default()
    }

    /// The listing for optional filters.
    pub fn for_filters(tier: Option<TierName>, status: Option<SubscriptionStatus>) -> Self {
        Self { tier, status }
    }

    /// Every listing a customer appears in: each filter either set to the
    /// customer's value or left open.
    pub fn of(c: &Customer) -> Vec<Self> {
        let full = Self::for_filters(Some(c.tier_name.clone()), Some(c.subscription_status));
        (0..1u32 << Self::FILTERS)
            .map(|mask| full.keep(mask))
            .collect()
    }

    /// This listing with only the filters whose bit is set in `mask`.
    fn keep(&self, mask: u32) -> Self {
        Self {
            tier: self.tier.clone().filter(|_| mask & 1 != 0),
            status: self.status.filter(|_| mask & 2 != 0),
        }
    }

    /// The filters as query parameter names and values, in a fixed order.
    fn fields(&self) -> [(&'static str, Option<&str>); Self::FILTERS as usize] {
        [
            ("tierName", self.tier.as_ref().map(TierName::as_str)),
            ("status", self.status.map(SubscriptionStatus::as_str)),
        ]
    }

    /// The listing's name: `CUSTOMERS`, then `#name=value` per set filter.
    /// Tier names cannot hold `#` or `=`, so the name is unambiguous.
    pub fn key(&self) -> String {
        let mut key = "CUSTOMERS".to_owned();
        for (name, value) in self.fields() {
            if let Some(value) = value {
                key.push_str(&format!("#{name}={value}"));
            }
        }
        key
    }

    /// Partition of the listing's entries (one per customer, by `createdAt#id`).
    pub fn entries_pk(&self) -> String {
        format!("LIST#{}", self.key())
    }

    /// Partition of the listing's order-statistics directory.
    ///
    /// (The partition of its entries from it: [`entries_pk_of_index`].)
    pub fn index_pk(&self) -> String {
        format!("INDEX#{}", self.key())
    }
}

/// The partition of a listing's entries, from the partition of its directory
/// ([`Listing::index_pk`] to [`Listing::entries_pk`]).
pub fn entries_pk_of_index(index_pk: &str) -> String {
    index_pk.replacen("INDEX#", "LIST#", 1)
}

/// Sort key of a customer's entries: `createdAt` (seconds) then its id.
pub fn entry_sort(created_at: &Timestamp, id: &CustomerId) -> String {
    format!("{}#{id}", time::to_seconds(created_at))
}

/// Key of a customer's entry in a listing.
pub fn entry_key(listing: &Listing, created_at: &Timestamp, id: &CustomerId) -> Item {
    key(listing.entries_pk(), &entry_sort(created_at, id))
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Customer, SubscriptionStatus, TierName};

    #[test]
    fn a_customer_is_in_every_listing_its_values_open_or_match() {
        let pro = TierName::parse("pro").unwrap();
        let mut c = Customer::sample();
        c.tier_name = pro.clone();
        c.subscription_status = SubscriptionStatus::PastDue;
        let keys: Vec<String> = Listing::of(&c).iter().map(Listing::key).collect();
        assert_eq!(
            keys,
            [
                "CUSTOMERS",
                "CUSTOMERS#tierName=pro",
                "CUSTOMERS#status=past_due",
                "CUSTOMERS#tierName=pro#status=past_due",
            ]
        );
        let filtered = Listing::for_filters(Some(pro), Some(SubscriptionStatus::PastDue));
        assert_eq!(filtered.entries_pk(), format!("LIST#{}", keys[3]));
        assert_eq!(filtered.index_pk(), format!("INDEX#{}", keys[3]));
        assert_eq!(
            entries_pk_of_index(&filtered.index_pk()),
            filtered.entries_pk()
        );
        assert_eq!(Listing::all().key(), "CUSTOMERS");
    }
}
