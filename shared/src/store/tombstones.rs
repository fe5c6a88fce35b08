//! Tombstones written on their own: a user deleted by the platform is
//! remembered (`table::TOMBSTONE_DAYS`) before anything of theirs is removed.
//! A customer's tombstone is written with its record's removal
//! ([`Store::delete_customer_record`]).

use crate::domain::{UserId, now};

use super::error::StoreError;
use super::handle::Store;
use super::observe::observe;
use super::table::{TOMBSTONE_FREE_OR_KEPT, tombstone_item, tombstone_values, user_tombstone_key};
use super::tx::Write;

impl Store {
    /// Remembers that the platform deleted `user` (their tombstone, put or
    /// renewed in a transaction of its own), so that no customer is created
    /// for them as owner while it lives.
    pub async fn remember_deleted_user(&self, user: &UserId) -> Result<(), StoreError> {
        observe(store_span!("remember_deleted_user", user = %user), async {
            let at = now();
            let item = tombstone_item(user_tombstone_key(user), &at);
            let values = tombstone_values(&at);
            let tx = self
                .tx()
                .put(Write::Tombstone, item, TOMBSTONE_FREE_OR_KEPT, &values)?;
            match tx.commit().await {
                Ok(()) => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }
}
