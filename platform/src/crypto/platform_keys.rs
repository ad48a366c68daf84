//! Keys the platform holds in the key service for itself — not a tenant's — such as the
//! audit checkpoint signing key and the key that makes e-mail lookups blind. Each is made
//! on first use and recorded in `platform_keys` by purpose, so every node and every later
//! run uses the same one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sea_orm::{ActiveValue::Set, EntityTrait};
use zeroize::Zeroize;

use crate::clock::Clock;
use crate::crypto::keys::{KeyError, KeyRef, KeyService};
use crate::db::{Db, DbError};
use crate::ids::TenantId;

/// The platform's own MAC keys, by purpose, created on first use.
#[derive(Debug, Clone)]
pub struct PlatformKeys {
    db: Db,
    keys: Arc<dyn KeyService>,
    clock: Arc<dyn Clock>,
    known: Arc<Mutex<HashMap<&'static str, KeyRef>>>,
}

/// Why a platform key cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum PlatformKeyError {
    /// The key service failed.
    #[error("the key service failed")]
    KeyService(#[from] KeyError),
    /// The database failed.
    #[error("database error")]
    Database(#[from] DbError),
}

impl PlatformKeys {
    /// Platform keys in `keys`, recorded in `db`.
    pub fn new(db: Db, keys: Arc<dyn KeyService>, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            keys,
            clock,
            known: Arc::default(),
        }
    }

    /// The key service.
    pub fn key_service(&self) -> &Arc<dyn KeyService> {
        &self.keys
    }

    /// The MAC key for `purpose`, created in the key service the first time.
    pub async fn mac_key(&self, purpose: &'static str) -> Result<KeyRef, PlatformKeyError> {
        if let Some(key) = self.cached(purpose) {
            return Ok(key);
        }
        let key = match self.recorded(purpose).await? {
            Some(key) => key,
            None => self.create(purpose).await?,
        };
        if let Ok(mut known) = self.known.lock() {
            known.insert(purpose, key.clone());
        }

        Ok(key)
    }

    /// A blind index of `value` at `tenant`: HMAC-SHA-256 under the platform key for
    /// `purpose`, so the database can find a row by a value it never holds in the clear,
    /// and the same value at another tenant indexes differently.
    pub async fn blind_index(
        &self,
        purpose: &'static str,
        tenant: TenantId,
        value: &str,
    ) -> Result<[u8; 32], PlatformKeyError> {
        let key = self.mac_key(purpose).await?;
        let mut message = tenant.as_uuid().as_bytes().to_vec();
        message.extend_from_slice(value.as_bytes());
        let mac = self.keys.generate_mac(&key, &message).await;
        message.zeroize();
        <[u8; 32]>::try_from(mac?.as_slice())
            .map_err(|_| PlatformKeyError::KeyService(KeyError::Invalid("MAC length")))
    }

    fn cached(&self, purpose: &'static str) -> Option<KeyRef> {
        self.known.lock().ok()?.get(purpose).cloned()
    }

    async fn create(&self, purpose: &'static str) -> Result<KeyRef, PlatformKeyError> {
        let key = self.keys.create_mac_key(purpose).await?;
        let inserted = entity::Entity::insert(entity::ActiveModel {
            purpose: Set(purpose.to_owned()),
            provider: Set(self.keys.provider().to_owned()),
            key_ref: Set(key.0.clone()),
            created_at: Set(self.clock.now()),
        })
        .exec(self.db.platform())
        .await;
        match inserted {
            Ok(_) => Ok(key),
            // Another node recorded one at the same moment: use theirs.
            Err(_) => self
                .recorded(purpose)
                .await?
                .ok_or(PlatformKeyError::Database(DbError::NotFound)),
        }
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "platform_keys belongs to no tenant"
    )]
    async fn recorded(&self, purpose: &str) -> Result<Option<KeyRef>, PlatformKeyError> {
        let row = entity::Entity::find_by_id(purpose.to_owned())
            .one(self.db.platform())
            .await
            .map_err(DbError::from)?;
        Ok(row.map(|row| KeyRef(row.key_ref)))
    }
}

mod entity {
    //! `platform_keys`: keys the platform holds in the key service for itself.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "platform_keys")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub purpose: String,
        pub provider: String,
        pub key_ref: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
