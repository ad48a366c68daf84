//! The outbox: the embedded notifier. Messages are not delivered anywhere; they are kept,
//! sealed under the clinic's key (recipient and text alike), in the `outbox` table, where
//! `portico outbox --tenant <slug>` reads them. That is how the demo and the tests
//! "receive" a verification code without an SMS gateway.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portico_platform::clock::Clock;
use portico_platform::crypto::seal::Place;
use portico_platform::crypto::vault::{Vault, VaultError};
use portico_platform::db::{Db, DbError};
use portico_platform::entropy::Entropy;
use portico_platform::ids::{MessageId, TenantId};
use portico_platform::notify::{Contact, Message, Notifier, NotifyError};
use portico_platform::secret::Secret;
use sea_orm::{ActiveValue::Set, QueryOrder, QuerySelect};

/// The embedded notifier.
#[derive(Debug, Clone)]
pub struct Outbox {
    db: Db,
    vault: Vault,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
}

/// A message as the outbox holds it, opened.
#[derive(Debug)]
pub struct Kept {
    /// When it was sent.
    pub at: DateTime<Utc>,
    /// `sms` or `email`.
    pub channel: String,
    /// The template (`verification_code`, `password_reset`).
    pub kind: String,
    /// The number or address.
    pub to: Secret<String>,
    /// The text.
    pub text: Secret<String>,
}

/// Why the outbox could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// Opening a message failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbError),
}

impl From<sea_orm::DbErr> for OutboxError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Database(err.into())
    }
}

impl Outbox {
    /// The outbox in `db`, sealing with `vault`.
    pub fn new(db: Db, vault: Vault, clock: Arc<dyn Clock>, entropy: Arc<dyn Entropy>) -> Self {
        Self {
            db,
            vault,
            clock,
            entropy,
        }
    }

    /// The clinic's last `limit` messages, newest first.
    pub async fn recent(&self, tenant: TenantId, limit: u64) -> Result<Vec<Kept>, OutboxError> {
        let tx = self.db.begin(tenant).await?;
        let rows = tx
            .find::<entity::Entity>()
            .order_by_desc(entity::Column::CreatedAt)
            .order_by_desc(entity::Column::Id)
            .limit(limit)
            .all(tx.conn())
            .await?;
        let mut kept = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.id.to_string();
            let to = self
                .vault
                .open(&tx, &place(tenant, "recipient", &id), &row.recipient)
                .await?;
            let text = self
                .vault
                .open(&tx, &place(tenant, "body", &id), &row.body)
                .await?;
            kept.push(Kept {
                at: row.created_at,
                channel: row.channel,
                kind: row.kind,
                to: Secret::new(String::from_utf8_lossy(&to).into_owned()),
                text: Secret::new(String::from_utf8_lossy(&text).into_owned()),
            });
        }
        tx.commit().await?;

        Ok(kept)
    }
}

#[async_trait]
impl Notifier for Outbox {
    async fn send(
        &self,
        tenant: TenantId,
        to: &Contact,
        message: &Message,
    ) -> Result<(), NotifyError> {
        let id = MessageId::generate(self.clock.as_ref(), self.entropy.as_ref());
        let row = id.to_string();
        let unavailable = |err: VaultError| NotifyError::Unavailable(Box::new(err));
        let database = |err: DbError| NotifyError::Unavailable(Box::new(err));

        let sealing = self.db.begin(tenant).await.map_err(database)?;
        let recipient = self
            .vault
            .seal(
                &sealing,
                &place(tenant, "recipient", &row),
                to.address().as_bytes(),
            )
            .await
            .map_err(unavailable)?;
        let body = self
            .vault
            .seal(
                &sealing,
                &place(tenant, "body", &row),
                message.text().expose().as_bytes(),
            )
            .await
            .map_err(unavailable)?;
        // Sealing may have made a data key on a connection of its own; the write starts
        // afresh so that SQLite does not refuse it as based on a stale snapshot.
        sealing.commit().await.map_err(database)?;
        let tx = self.db.begin_serialized(tenant).await.map_err(database)?;
        tx.insert(entity::ActiveModel {
            id: Set(id.as_uuid()),
            tenant_id: Set(tenant.as_uuid()),
            channel: Set(to.channel().to_owned()),
            kind: Set(message.kind().to_owned()),
            recipient: Set(recipient),
            body: Set(body),
            created_at: Set(self.clock.now()),
        })
        .await
        .map_err(database)?;
        tx.commit().await.map_err(database)?;
        tracing::info!(tenant.id = %tenant, message.id = %id, channel = to.channel(),
            kind = message.kind(), "message kept in the outbox");

        Ok(())
    }
}

fn place<'a>(tenant: TenantId, column: &'static str, row: &'a str) -> Place<'a> {
    Place {
        tenant,
        table: "outbox",
        column,
        row,
    }
}

mod entity {
    //! `outbox`: messages the embedded notifier keeps, sealed.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub tenant_id: Uuid,
        pub channel: String,
        pub kind: String,
        pub recipient: Vec<u8>,
        pub body: Vec<u8>,
        pub created_at: DateTimeUtc,
    }

    impl portico_platform::db::TenantOwned for Entity {
        fn tenant_column() -> Column {
            Column::TenantId
        }
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
