//! API keys: stored by id with only a hash of the secret.

use super::table::{ApiKeyItem, EXISTS, REVOKE, api_key_key, s};
use super::tx::TxError;
use super::{Store, StoreError};
use crate::domain::{now, time};

/// An API key as the authenticator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    /// The user the key acts as.
    pub user_id: String,
    /// Roles the key carries.
    pub roles: Vec<String>,
    /// Whether the key was revoked.
    pub revoked: bool,
}

impl Store {
    /// Stores a new API key.
    pub async fn put_api_key(&self, key_id: &str, record: &ApiKeyRecord) -> Result<(), StoreError> {
        let item = ApiKeyItem::new(
            key_id,
            record.secret_hash.clone(),
            record.user_id.clone(),
            record.roles.clone(),
        );
        let write = self.put(serde_dynamo::to_item(item)?, super::table::NOT_EXISTS, &[])?;
        self.transact(vec![write]).await.map_err(|e| match e {
            TxError::Cancelled(_) => StoreError::Corrupt("API key id collision".to_owned()),
            TxError::Store(e) => e,
        })
    }

    /// The API key with this id, if any; one consistent read, so revocation is immediate.
    pub async fn get_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let Some(item) = self.get(api_key_key(key_id)).await? else {
            return Ok(None);
        };
        let item: ApiKeyItem = serde_dynamo::from_item(item)?;
        Ok(Some(ApiKeyRecord {
            secret_hash: item.secret_hash,
            user_id: item.user_id,
            roles: item.roles,
            revoked: item.revoked_at.is_some(),
        }))
    }

    /// Revokes an API key; `Ok(false)` when there is no such key.
    pub async fn revoke_api_key(&self, key_id: &str) -> Result<bool, StoreError> {
        let write = self.update(
            api_key_key(key_id),
            REVOKE,
            Some(EXISTS),
            &[(":now", s(time::to_seconds(&now())))],
        )?;
        match self.transact(vec![write]).await {
            Ok(()) => Ok(true),
            Err(TxError::Cancelled(c)) if c.failed(0) => Ok(false),
            Err(TxError::Cancelled(_)) => Err(StoreError::Contention),
            Err(TxError::Store(e)) => Err(e),
        }
    }
}
