//! The embedded key service: each tenant's master key kept in the database, sealed under a
//! root key that lives in a file beside it — never in the database.
//!
//! Protecting the root key is protecting every tenant's data: whoever has both the root
//! key file and a copy of the database can read everything; whoever has only the database
//! can read nothing. Keep the file on a different volume or secret store from backups of
//! the database, readable by the `portico` user alone (the service refuses to start if
//! group or others can read it).
//!
//! Cryptography is the same as a KMS's: AES-256-GCM throughout. A master key version wraps
//! data keys with associated data that binds the key id, the version and the canonical
//! encryption context, so a wrapped key presented with another tenant's context does not
//! open.

#![allow(
    clippy::disallowed_methods,
    reason = "the local key service's store belongs to no tenant: it stands in for a KMS"
)]

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use portico_platform::clock::Clock;
use portico_platform::crypto::keys::{
    DATA_KEY_LEN, DataKey, EncryptionContext, GeneratedKey, KeyError, KeyRef, KeyService, KeyState,
    check_deletion_window,
};
use portico_platform::db::Db;
use portico_platform::entropy::Entropy;
use portico_platform::ids::{TenantId, new_uuid};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use sha2::Sha256;
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;

/// The id prefix of a key that wraps data keys (a tenant's key).
const ENCRYPTION_KEY: &str = "lk-";
/// The id prefix of a key that makes HMACs (the platform's checkpoint key).
const MAC_KEY: &str = "lm-";

type HmacSha256 = Hmac<Sha256>;

/// The root key, read from its file. Prints as `***`.
pub struct RootKey(DataKey);

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey(***)")
    }
}

/// Why the root key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RootKeyError {
    /// Group or others may read or write it.
    #[error("the root key file is accessible to other users (mode {0:o}); run `chmod 600` on it")]
    TooOpen(u32),
    /// It is not 64 hexadecimal digits.
    #[error("the root key file does not hold a root key (expected 64 hexadecimal digits)")]
    Malformed,
    /// It cannot be read or created.
    #[error("cannot read or create the root key file: {0}")]
    Io(#[from] std::io::Error),
}

impl RootKey {
    /// Reads the root key, or makes one (mode 0600) if the file does not exist.
    pub fn load_or_create(path: &Path, entropy: &dyn Entropy) -> Result<Self, RootKeyError> {
        if !path.exists() {
            let mut bytes = Zeroizing::new([0u8; DATA_KEY_LEN]);
            entropy.fill(bytes.as_mut());
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            let text = Zeroizing::new(hex_encode(bytes.as_ref()) + "\n");
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            tracing::info!("created a new root key file");
            return Ok(Self(DataKey::from_bytes(*bytes)));
        }

        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(RootKeyError::TooOpen(mode));
        }
        let text = Zeroizing::new(std::fs::read_to_string(path)?);
        let bytes = hex_decode(text.trim()).ok_or(RootKeyError::Malformed)?;

        DataKey::from_slice(&bytes)
            .map(Self)
            .ok_or(RootKeyError::Malformed)
    }
}

/// The local key service.
#[derive(Debug)]
pub struct LocalKeyService {
    db: Db,
    root: RootKey,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
}

impl LocalKeyService {
    /// A key service storing its keys in `db`, sealed under `root`.
    pub fn new(db: Db, root: RootKey, clock: Arc<dyn Clock>, entropy: Arc<dyn Entropy>) -> Self {
        Self {
            db,
            root,
            clock,
            entropy,
        }
    }

    /// Makes a key with fresh material, sealed under the root key. Like a KMS key id, the id
    /// is opaque and not derived from its owner; its prefix records what it may be used for.
    async fn create_key(&self, usage: &str, alias: &str) -> Result<KeyRef, KeyError> {
        let key_id = format!(
            "{usage}{}",
            new_uuid(self.clock.as_ref(), self.entropy.as_ref())
        );
        let now = self.clock.now();
        let mut material = Zeroizing::new([0u8; DATA_KEY_LEN]);
        self.entropy.fill(material.as_mut());
        let sealed = seal(
            &self.root.0,
            &material_aad(&key_id, 1),
            material.as_ref(),
            self.entropy.as_ref(),
        );

        entity::keys::Entity::insert(entity::keys::ActiveModel {
            key_id: Set(key_id.clone()),
            alias: Set(alias.to_owned()),
            state: Set("enabled".to_owned()),
            deletion_at: Set(None),
            created_at: Set(now),
        })
        .exec(self.db.platform())
        .await
        .map_err(Self::unavailable)?;
        entity::versions::Entity::insert(entity::versions::ActiveModel {
            key_id: Set(key_id.clone()),
            version: Set(1),
            material: Set(sealed),
            created_at: Set(now),
        })
        .exec(self.db.platform())
        .await
        .map_err(Self::unavailable)?;

        Ok(KeyRef(key_id))
    }

    /// The HMAC under a MAC key's newest version.
    async fn mac(&self, key: &KeyRef) -> Result<HmacSha256, KeyError> {
        if !key.0.starts_with(MAC_KEY) {
            return Err(KeyError::Invalid("not a MAC key"));
        }
        self.usable(key).await?;
        let (_, material) = self.material(key, None).await?;

        <HmacSha256 as Mac>::new_from_slice(material.expose())
            .map_err(|_| KeyError::Invalid("MAC key"))
    }

    fn unavailable(err: sea_orm::DbErr) -> KeyError {
        KeyError::Unavailable(Box::new(err))
    }

    /// The key's record, refusing one scheduled for deletion.
    async fn usable(&self, key: &KeyRef) -> Result<entity::keys::Model, KeyError> {
        let row = entity::keys::Entity::find_by_id(key.0.clone())
            .one(self.db.platform())
            .await
            .map_err(Self::unavailable)?
            .ok_or(KeyError::NotFound)?;
        if row.state != "enabled" {
            return Err(KeyError::PendingDeletion);
        }

        Ok(row)
    }

    /// Unseals one version of a master key from the store (the newest if `version` is
    /// `None`).
    async fn material(
        &self,
        key: &KeyRef,
        version: Option<i32>,
    ) -> Result<(i32, DataKey), KeyError> {
        let query = entity::versions::Entity::find()
            .filter(entity::versions::Column::KeyId.eq(key.0.clone()));
        let query = match version {
            Some(version) => query.filter(entity::versions::Column::Version.eq(version)),
            None => query.order_by_desc(entity::versions::Column::Version),
        };
        let row = query
            .one(self.db.platform())
            .await
            .map_err(Self::unavailable)?
            .ok_or(KeyError::InvalidCiphertext)?;
        let aad = material_aad(&key.0, row.version);
        let plain = open(&self.root.0, &aad, &row.material).ok_or_else(|| {
            KeyError::Other(
                "a master key does not open under the root key: wrong root key file?".into(),
            )
        })?;
        let key = DataKey::from_slice(&plain)
            .ok_or(KeyError::Invalid("master key of the wrong length"))?;

        Ok((row.version, key))
    }
}

#[async_trait]
impl KeyService for LocalKeyService {
    fn provider(&self) -> &'static str {
        "local"
    }

    async fn create_tenant_key(&self, _tenant: TenantId, slug: &str) -> Result<KeyRef, KeyError> {
        self.create_key(ENCRYPTION_KEY, &format!("alias/portico/tenant/{slug}"))
            .await
    }

    async fn generate_data_key(
        &self,
        key: &KeyRef,
        context: &EncryptionContext,
    ) -> Result<GeneratedKey, KeyError> {
        if !key.0.starts_with(ENCRYPTION_KEY) {
            return Err(KeyError::Invalid("not an encryption key"));
        }
        self.usable(key).await?;
        let (version, master) = self.material(key, None).await?;
        let mut plaintext = [0u8; DATA_KEY_LEN];
        self.entropy.fill(&mut plaintext);
        let plaintext = DataKey::from_bytes(plaintext);

        let mut wrapped = version.to_be_bytes().to_vec();
        let aad = wrap_aad(&key.0, version, context);
        wrapped.extend(seal(
            &master,
            &aad,
            plaintext.expose(),
            self.entropy.as_ref(),
        ));

        Ok(GeneratedKey { plaintext, wrapped })
    }

    async fn decrypt_data_key(
        &self,
        key: &KeyRef,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<DataKey, KeyError> {
        self.usable(key).await?;
        let (version, sealed) = wrapped
            .split_at_checked(4)
            .ok_or(KeyError::InvalidCiphertext)?;
        let version = i32::from_be_bytes(
            version
                .try_into()
                .map_err(|_| KeyError::InvalidCiphertext)?,
        );
        let (version, master) = self.material(key, Some(version)).await?;
        let plain = open(&master, &wrap_aad(&key.0, version, context), sealed)
            .ok_or(KeyError::InvalidCiphertext)?;

        DataKey::from_slice(&plain).ok_or(KeyError::InvalidCiphertext)
    }

    async fn rotate_tenant_key(&self, key: &KeyRef) -> Result<(), KeyError> {
        self.usable(key).await?;
        let (current, _) = self.material(key, None).await?;
        let version = current + 1;
        let mut material = Zeroizing::new([0u8; DATA_KEY_LEN]);
        self.entropy.fill(material.as_mut());
        let aad = material_aad(&key.0, version);
        let sealed = seal(&self.root.0, &aad, material.as_ref(), self.entropy.as_ref());
        entity::versions::Entity::insert(entity::versions::ActiveModel {
            key_id: Set(key.0.clone()),
            version: Set(version),
            material: Set(sealed),
            created_at: Set(self.clock.now()),
        })
        .exec(self.db.platform())
        .await
        .map_err(Self::unavailable)?;

        Ok(())
    }

    async fn rewrap_data_key(
        &self,
        key: &KeyRef,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, KeyError> {
        let plaintext = self.decrypt_data_key(key, wrapped, context).await?;
        let (version, master) = self.material(key, None).await?;
        let aad = wrap_aad(&key.0, version, context);
        let mut rewrapped = version.to_be_bytes().to_vec();
        rewrapped.extend(seal(
            &master,
            &aad,
            plaintext.expose(),
            self.entropy.as_ref(),
        ));

        Ok(rewrapped)
    }

    async fn schedule_deletion(
        &self,
        key: &KeyRef,
        window_days: u32,
    ) -> Result<DateTime<Utc>, KeyError> {
        check_deletion_window(window_days)?;
        self.usable(key).await?;
        let at = self.clock.now() + Duration::days(i64::from(window_days));
        entity::keys::Entity::update_many()
            .col_expr(entity::keys::Column::State, "pending_deletion".into())
            .col_expr(entity::keys::Column::DeletionAt, Some(at).into())
            .filter(entity::keys::Column::KeyId.eq(key.0.clone()))
            .exec(self.db.platform())
            .await
            .map_err(Self::unavailable)?;

        Ok(at)
    }

    async fn create_mac_key(&self, name: &str) -> Result<KeyRef, KeyError> {
        self.create_key(MAC_KEY, &format!("alias/portico/platform/{name}"))
            .await
    }

    async fn generate_mac(&self, key: &KeyRef, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        check_mac_message(message)?;
        let mut mac = self.mac(key).await?;
        mac.update(message);

        Ok(mac.finalize().into_bytes().to_vec())
    }

    async fn verify_mac(&self, key: &KeyRef, message: &[u8], tag: &[u8]) -> Result<bool, KeyError> {
        check_mac_message(message)?;
        let mut mac = self.mac(key).await?;
        mac.update(message);

        // Constant-time comparison.
        Ok(mac.verify_slice(tag).is_ok())
    }

    async fn describe(&self, key: &KeyRef) -> Result<KeyState, KeyError> {
        let row = entity::keys::Entity::find_by_id(key.0.clone())
            .one(self.db.platform())
            .await
            .map_err(Self::unavailable)?
            .ok_or(KeyError::NotFound)?;

        Ok(match row.deletion_at {
            Some(at) if row.state == "pending_deletion" => KeyState::PendingDeletion { at },
            _ => KeyState::Enabled,
        })
    }
}

/// KMS's own bound on a MAC message.
fn check_mac_message(message: &[u8]) -> Result<(), KeyError> {
    if message.is_empty() || message.len() > 4096 {
        return Err(KeyError::Invalid("a MAC message must be 1 to 4096 bytes"));
    }
    Ok(())
}

fn material_aad(key_id: &str, version: i32) -> Vec<u8> {
    let mut aad = b"portico-local-master".to_vec();
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

fn wrap_aad(key_id: &str, version: i32, context: &EncryptionContext) -> Vec<u8> {
    let mut aad = b"portico-local-wrap".to_vec();
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(
        &u32::try_from(key_id.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    aad.extend_from_slice(key_id.as_bytes());
    aad.extend_from_slice(&context.canonical_bytes());
    aad
}

/// `nonce ‖ ciphertext ‖ tag`.
fn seal(key: &DataKey, aad: &[u8], plaintext: &[u8], entropy: &dyn Entropy) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    entropy.fill(&mut nonce);
    let cipher = Aes256Gcm::new(key.expose().into());
    let mut out = nonce.to_vec();
    // AES-GCM fails only past 64 GiB; keys are 32 bytes.
    if let Ok(ciphertext) = cipher.encrypt(
        Nonce::from_slice(&nonce),
        Payload {
            msg: plaintext,
            aad,
        },
    ) {
        out.extend(ciphertext);
    }
    out
}

fn open(key: &DataKey, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let (nonce, ciphertext) = sealed.split_at_checked(NONCE_LEN)?;
    let cipher = Aes256Gcm::new(key.expose().into());
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

mod entity {
    //! The local key service's store.

    pub(super) mod keys {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "local_keys")]
        pub(crate) struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub key_id: String,
            pub alias: String,
            pub state: String,
            pub deletion_at: Option<DateTimeUtc>,
            pub created_at: DateTimeUtc,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub(crate) enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub(super) mod versions {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "local_key_versions")]
        pub(crate) struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub key_id: String,
            #[sea_orm(primary_key, auto_increment = false)]
            pub version: i32,
            pub material: Vec<u8>,
            pub created_at: DateTimeUtc,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub(crate) enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }
}

#[cfg(test)]
mod tests {
    use portico_platform::entropy::SeededEntropy;

    use super::*;

    #[test]
    fn a_new_root_key_file_is_private_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/root.key");

        let created = RootKey::load_or_create(&path, &SeededEntropy::new(1)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let loaded = RootKey::load_or_create(&path, &SeededEntropy::new(2)).unwrap();

        assert_eq!(mode, 0o600);
        assert_eq!(created.0.expose(), loaded.0.expose());
    }

    #[test]
    fn a_readable_root_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        RootKey::load_or_create(&path, &SeededEntropy::new(1)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();

        let err = RootKey::load_or_create(&path, &SeededEntropy::new(1)).unwrap_err();

        assert!(matches!(err, RootKeyError::TooOpen(0o644)), "{err}");
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn a_malformed_root_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        std::fs::write(&path, "not a key\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

        let err = RootKey::load_or_create(&path, &SeededEntropy::new(1)).unwrap_err();

        assert!(matches!(err, RootKeyError::Malformed));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(
            hex_decode(&hex_encode(&[0, 1, 254, 255])).unwrap(),
            vec![0, 1, 254, 255]
        );
        assert!(hex_decode("abc").is_none());
        assert!(hex_decode("zz").is_none());
    }
}
