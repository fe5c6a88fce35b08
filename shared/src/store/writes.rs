//! The names of a transaction's writes: what its cancellation reasons are
//! read by ([`super::tx::Cancelled::failed`]), never by position.

use std::fmt;

/// One write of a transaction, by what it writes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Write {
    /// A customer record.
    Customer,
    /// A customer's entry in a listing.
    Entry,
    /// A shard of a listing's day counts.
    Count,
    /// The item recording that an event was applied.
    Event,
    /// The lookup of a Stripe customer.
    Lookup,
    /// The lookup of the Stripe customer a customer had before.
    OldLookup,
    /// A user's membership.
    Membership,
    /// A member item.
    Member,
    /// The tombstone of a customer's id, checked.
    CustomerTombstone,
    /// The tombstone of an owner, checked.
    OwnerTombstone,
    /// A tombstone, put.
    Tombstone,
    /// A request's idempotency record (its answer).
    Idempotency,
    /// An API key.
    Key,
    /// A pending delta of a listing's directory.
    Delta,
    /// A shard of day counts being compacted.
    Shard,
    /// The members directory, as read.
    Directory,
    /// A month of a directory.
    Month,
    /// A day of a directory.
    Day,
    /// A fence item of a listing's day.
    Fences,
    /// An audit entry.
    Audit,
    /// A customer's audit sequence.
    AuditSequence,
    /// A write DynamoDB reported beyond those sent (never expected).
    Unnamed,
}

impl Write {
    /// The write's name, as logs show it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Entry => "entry",
            Self::Count => "count",
            Self::Event => "event",
            Self::Lookup => "lookup",
            Self::OldLookup => "old lookup",
            Self::Membership => "membership",
            Self::Member => "member",
            Self::CustomerTombstone => "customer tombstone",
            Self::OwnerTombstone => "owner tombstone",
            Self::Tombstone => "tombstone",
            Self::Idempotency => "idempotency",
            Self::Key => "key",
            Self::Delta => "delta",
            Self::Shard => "shard",
            Self::Directory => "directory",
            Self::Month => "month",
            Self::Day => "day",
            Self::Fences => "fences",
            Self::Audit => "audit",
            Self::AuditSequence => "audit sequence",
            Self::Unnamed => "?",
        }
    }

    /// Whether the write numbers audit entries.
    pub(super) fn numbers_audits(self) -> bool {
        matches!(self, Self::Audit | Self::AuditSequence)
    }
}

impl fmt::Debug for Write {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.name(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_shows_its_name() {
        assert_eq!(format!("{:?}", Write::OldLookup), "\"old lookup\"");
        assert!(Write::AuditSequence.numbers_audits());
        assert!(!Write::Customer.numbers_audits());
    }
}
