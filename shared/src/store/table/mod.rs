//! The single table: key formats, index names, item shapes and expressions.
//!
//! Nothing outside this module knows an attribute name or a key format:
//! [`keys`] holds the key formats and index names, [`expressions`] the
//! condition and update expressions, [`items`] the stored shapes,
//! [`listing`] the customer listings, [`directory`] their directories'
//! items, [`schema`] the table definition and [`stream`] the stream decoder.
//!
//! | item        | PK                | SK            | LSI1SK                          | GSI keys                          |
//! |-------------|-------------------|---------------|---------------------------------|-----------------------------------|
//! | customer    | `CUSTOMER#<id>`   | `CUSTOMER`    | `#`                             | -                                 |
//! | customer, deleting | `CUSTOMER#<id>` | `CUSTOMER` | `#`                        | GSI1PK `DELETING`, GSI1SK `<deletingSince>#<id>` |
//! | member      | `CUSTOMER#<id>`   | `MEMBER#<uid>`| `MEMBER#<rank>#<joinedAt>#<uid>`| -                                 |
//! | members directory | `CUSTOMER#<id>` | `DIR#...`, `DIRL2#...` ([`dir`]) | -          | -                                 |
//! | membership  | `USER#<uid>`      | `MEMBERSHIP`  | -                               | -                                 |
//! | listing entry | `LIST#<listing>` | `<createdAt>#<id>` | -                          | -                                 |
//! | listing directory | `INDEX#<listing>` | `DIR#...`, `DIRL2#...` ([`dir`]) | -      | -                                 |
//! | reindex marker | `CUSTOMER#REINDEXED` | `REINDEXED` | -                          | - ([`reindexed_key`])              |
//! | api key     | `APIKEY`          | `APIKEY#<keyId>` | -                            | -                                 |
//! | stripe customer | `STRIPE#<cus_...>` | `CUSTOMER`  | -                               | -                                 |
//! | applied event | `EVENT#<source>#<id>` | `EVENT`    | -                               | -                                 |
//! | audit entry | `AUDIT#<customerID>` | `SEQ#<n>` (before numbering: `<at>#<entryID>`) | - | - ([`audit`])  |
//! | audit sequence | `AUDIT#<customerID>` | `#SEQ` | -                                   | -                                 |
//! | idempotency record | `IDEMPOTENCY#<sha256(caller, key)>` | `IDEMPOTENCY` | -       | -                                 |
//! | tombstone   | `TOMBSTONE#CUSTOMER#<id>`, `TOMBSTONE#USER#<uid>` | `TOMBSTONE` | - | - ([`tombstone`])        |
//!
//! A customer listing is a partition of entries, one per active customer,
//! written in the same transaction as the customer ([`Listing`]); there is no
//! index per filter. The only global index holds the customers being deleted.

mod audit;
pub mod directory;
pub mod expressions;
mod idempotency;
pub mod items;
pub mod keys;
pub mod listing;
pub mod schema;
pub mod stream;
mod tombstone;

pub use audit::{
    AUDIT_RETENTION_DAYS, AuditItem, ENTRIES_FROM, LEGACY_TO, SEQUENCE_IS, audit_number, audit_pk,
    audit_sequence_item, audit_sequence_key, audit_sequence_of, audit_sort,
};
pub use directory::*;
pub use expressions::*;
pub use idempotency::{
    CLAIM_FREE, CLAIMED_BY, CLAIMED_RUNNING, CLAIMED_UNANSWERED, COMPLETE_CLAIM, IdempotencyItem,
    IdempotencyState, PENDING_ANSWER, idempotency_key,
};
pub use items::*;
pub use keys::*;
pub use listing::*;
pub use schema::*;
pub use stream::*;
pub use tombstone::{
    NOT_TOMBSTONED, TOMBSTONE_DAYS, TOMBSTONE_FREE_OR_KEPT, customer_tombstone_key,
    tombstone_deleted_at, tombstone_item, tombstone_values, user_tombstone_key,
};
