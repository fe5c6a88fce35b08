//! API keys: stored by id with only a hash of the secret.

use super::error::StoreError;
use super::handle::Store;
use super::observe::observe;
use super::table::{API_KEY_PK, API_KEY_PREFIX, ApiKeyItem, EXISTS, Item, REVOKE, api_key_key, s};
use super::tx::{TxError, Write};
use crate::domain::{Timestamp, now, time};

/// An API key as the authenticator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    /// The user the key acts as.
    pub user_id: String,
    /// Roles the key carries.
    pub roles: Vec<String>,
    /// When the key was issued.
    pub created_at: Timestamp,
    /// When the key stops working, if it ever does.
    pub expires_at: Option<Timestamp>,
    /// Whether the key was revoked.
    pub revoked: bool,
}

/// An API key as an operator lists it: everything but the secret's hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeySummary {
    /// The key id (`api-key` header).
    pub api_key: String,
    /// The user the key acts as.
    #[serde(rename = "userID")]
    pub user_id: String,
    /// Roles the key carries.
    pub roles: Vec<String>,
    /// When the key was issued (RFC 3339).
    pub created_at: String,
    /// When the key stops working, if it ever does.
    pub expires_at: Option<String>,
    /// When the key was revoked, if it was.
    pub revoked_at: Option<String>,
}

impl Store {
    /// Stores a new API key.
    pub async fn put_api_key(&self, key_id: &str, record: &ApiKeyRecord) -> Result<(), StoreError> {
        observe(store_span!("put_api_key", key_id), async {
            let item = ApiKeyItem::new(
                key_id,
                record.secret_hash.clone(),
                record.user_id.clone(),
                record.roles.clone(),
                &record.created_at,
                record.expires_at.as_ref(),
            );
            let tx = self.tx().put(
                Write::Key,
                serde_dynamo::to_item(item)?,
                super::table::NOT_EXISTS,
                &[],
            )?;
            tx.commit().await.map_err(|e| match e {
                TxError::Cancelled(_) => StoreError::Corrupt("API key id collision".to_owned()),
                TxError::Store(e) => e,
            })
        })
        .await
    }

    /// The API key with this id, if any; one consistent read, so revocation is immediate.
    pub async fn get_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        observe(store_span!("get_api_key", key_id), async {
            let Some(item) = self.get(api_key_key(key_id)).await? else {
                return Ok(None);
            };
            let item: ApiKeyItem = serde_dynamo::from_item(item)?;
            Ok(Some(ApiKeyRecord {
                created_at: timestamp(&item.created_at)?,
                expires_at: expiry(&item)?,
                secret_hash: item.secret_hash,
                user_id: item.user_id,
                roles: item.roles,
                revoked: item.revoked_at.is_some(),
            }))
        })
        .await
    }

    /// Every API key, without secrets, in key id order.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeySummary>, StoreError> {
        observe(store_span!("list_api_keys"), async {
            let items = self
                .query_prefix_all(API_KEY_PK.to_owned(), API_KEY_PREFIX)
                .await?;
            items
                .into_iter()
                .map(|item: Item| {
                    let item: ApiKeyItem = serde_dynamo::from_item(item)?;
                    Ok(ApiKeySummary {
                        api_key: item.key_id().to_owned(),
                        expires_at: expiry(&item)?.as_ref().map(time::to_seconds),
                        user_id: item.user_id,
                        roles: item.roles,
                        created_at: item.created_at,
                        revoked_at: item.revoked_at,
                    })
                })
                .collect()
        })
        .await
    }

    /// Revokes an API key; `Ok(false)` when there is no such key.
    pub async fn revoke_api_key(&self, key_id: &str) -> Result<bool, StoreError> {
        observe(store_span!("revoke_api_key", key_id), async {
            let tx = self.tx().update(
                Write::Key,
                api_key_key(key_id),
                REVOKE,
                Some(EXISTS),
                &[(":now", s(time::to_seconds(&now())))],
            )?;
            match tx.commit().await {
                Ok(()) => Ok(true),
                Err(TxError::Cancelled(c)) if c.failed(Write::Key) => Ok(false),
                Err(TxError::Cancelled(_)) => Err(StoreError::Contention),
                Err(TxError::Store(e)) => Err(e),
            }
        })
        .await
    }

    /// Revokes every unrevoked key `user` holds (the keys issued with
    /// `--user <user>`): their ids, in key id order. Keys revoked already are
    /// left as they were.
    pub async fn revoke_user_api_keys(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let mut revoked = Vec::new();
        for key in self.list_api_keys().await? {
            if key.user_id == user
                && key.revoked_at.is_none()
                && self.revoke_api_key(&key.api_key).await?
            {
                revoked.push(key.api_key);
            }
        }
        Ok(revoked)
    }
}

/// A key's expiry, under its name or its old one.
fn expiry(item: &ApiKeyItem) -> Result<Option<Timestamp>, StoreError> {
    item.expires_at()
        .map_err(|_| StoreError::Corrupt(format!("API key {} expiry", item.key_id())))
}

fn timestamp(text: &str) -> Result<Timestamp, StoreError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| StoreError::Corrupt(format!("API key timestamp {text:?}")))
}
