//! The database handle and the tenant-scoped transaction: the only way to reach tenant data.
//!
//! Isolation is enforced twice (ARCHITECTURE.md rule 2):
//!
//! 1. In the application: [`TenantTx::find`], [`TenantTx::update_many`],
//!    [`TenantTx::delete_many`] and [`TenantTx::insert`] add or set the tenant column of any
//!    [`TenantOwned`] entity. Building statements any other way is refused by clippy
//!    (`clippy.toml`, `disallowed-methods`).
//! 2. On PostgreSQL, in the database: each [`TenantTx`] is a transaction that first runs
//!    `set_config('app.tenant_id', …, true)` (the function form of `SET LOCAL`), and every
//!    tenant-owned table has a row-level security policy comparing `tenant_id` to that
//!    setting, with `FORCE ROW LEVEL SECURITY`. The server connects as a role that owns no
//!    table, so even a statement that forgets the filter sees only its own tenant's rows.
//!
//! The setting is transaction-local, so a pooled connection never carries one tenant's
//! scope into another's work.

use sea_orm::sea_query::IntoCondition;
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, DeleteMany, EntityTrait, IntoActiveModel, QueryFilter,
    Select, SqlErr, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
    UpdateMany,
};

use crate::ids::TenantId;

/// Which database engine is behind a [`Db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: one file, no server.
    Sqlite,
    /// PostgreSQL (Aurora in production), with row-level security.
    Postgres,
}

/// A database failure, in terms the services can act on. The driver's error is kept as the
/// source for the server log; it never reaches a client.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A unique constraint refused the write.
    #[error("a row with the same unique key already exists")]
    Conflict(#[source] DbErr),
    /// The row was not there (or belongs to another tenant, which is the same to the caller).
    #[error("not found")]
    NotFound,
    /// Anything else: connection lost, bad SQL, a policy violation.
    #[error("database error")]
    Other(#[source] DbErr),
}

impl From<DbErr> for DbError {
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => Self::Conflict(err),
            _ => match err {
                DbErr::RecordNotFound(_) => Self::NotFound,
                other => Self::Other(other),
            },
        }
    }
}

/// An entity whose rows belong to one tenant.
///
/// Its table must have a non-null `tenant_id` column and, on PostgreSQL, the row-level
/// security policy that `portico_migrations::isolate_tenant_table` installs; a test in the
/// migrations suite checks that every table with a `tenant_id` column has one.
pub trait TenantOwned: EntityTrait {
    /// The column holding the owning tenant's id.
    fn tenant_column() -> Self::Column;
}

/// The connection pool, and the door to tenant-scoped transactions.
#[derive(Debug, Clone)]
pub struct Db {
    conn: DatabaseConnection,
}

impl Db {
    /// Wraps an open connection pool.
    pub fn new(conn: DatabaseConnection) -> Self {
        Self { conn }
    }

    /// The engine behind this handle.
    pub fn backend(&self) -> Backend {
        match self.conn.get_database_backend() {
            DbBackend::Postgres => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.conn.ping().await.map_err(DbError::from)
    }

    /// The pool itself, for platform-level tables that no tenant owns (the tenant registry,
    /// the migration ledger). Tenant-owned tables are unreachable from here on PostgreSQL:
    /// with no tenant set, their policies match no row.
    pub fn platform(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Starts a unit of work on one tenant's data.
    pub async fn begin(&self, tenant: TenantId) -> Result<TenantTx, DbError> {
        self.begin_with(tenant, TransactionOptions::default()).await
    }

    /// Starts a unit of work that will write after it has read, such as an audited access.
    ///
    /// On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`): a deferred transaction
    /// that reads and then writes fails outright if another connection committed in
    /// between. Anything that needs its own write (the vault making a data key) must
    /// happen before such a unit starts. On PostgreSQL it is an ordinary transaction.
    pub async fn begin_serialized(&self, tenant: TenantId) -> Result<TenantTx, DbError> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        self.begin_with(tenant, options).await
    }

    async fn begin_with(
        &self,
        tenant: TenantId,
        options: TransactionOptions,
    ) -> Result<TenantTx, DbError> {
        let tx = self.conn.begin_with_options(options).await?;
        if tx.get_database_backend() == DbBackend::Postgres {
            // `SET LOCAL` takes no bind parameters; `set_config(…, true)` is the same thing
            // as a function, so the id is bound rather than spliced into SQL.
            tx.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT set_config('app.tenant_id', $1, true)",
                [tenant.to_string().into()],
            ))
            .await?;
        }

        Ok(TenantTx { tx, tenant })
    }
}

/// One transaction on one tenant's data. Dropping it without [`TenantTx::commit`] rolls
/// back.
#[derive(Debug)]
pub struct TenantTx {
    tx: DatabaseTransaction,
    tenant: TenantId,
}

impl TenantTx {
    /// The tenant this transaction is scoped to.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The connection to run this transaction's statements on.
    ///
    /// Statements built by [`find`](Self::find), [`update_many`](Self::update_many) and
    /// [`delete_many`](Self::delete_many) carry the tenant filter. A statement built any
    /// other way has only PostgreSQL's row-level security behind it (and nothing on SQLite),
    /// which is why clippy refuses the unscoped builders outside this module.
    pub fn conn(&self) -> &DatabaseTransaction {
        &self.tx
    }

    /// Selects this tenant's rows of `E`.
    #[allow(
        clippy::disallowed_methods,
        reason = "this is where the tenant filter is added"
    )]
    pub fn find<E: TenantOwned>(&self) -> Select<E> {
        E::find().filter(self.condition::<E>())
    }

    /// Updates this tenant's rows of `E` that the caller's filter selects.
    #[allow(
        clippy::disallowed_methods,
        reason = "this is where the tenant filter is added"
    )]
    pub fn update_many<E: TenantOwned>(&self) -> UpdateMany<E> {
        E::update_many().filter(self.condition::<E>())
    }

    /// Deletes this tenant's rows of `E` that the caller's filter selects.
    #[allow(
        clippy::disallowed_methods,
        reason = "this is where the tenant filter is added"
    )]
    pub fn delete_many<E: TenantOwned>(&self) -> DeleteMany<E> {
        E::delete_many().filter(self.condition::<E>())
    }

    /// Inserts a row of `E`, setting its tenant to this transaction's, whatever the model
    /// said.
    pub async fn insert<A>(
        &self,
        mut model: A,
    ) -> Result<<A::Entity as EntityTrait>::Model, DbError>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Send,
        A::Entity: TenantOwned,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    {
        model.set(
            <A::Entity as TenantOwned>::tenant_column(),
            self.tenant.into(),
        );

        Ok(model.insert(&self.tx).await?)
    }

    /// Makes the unit of work permanent.
    pub async fn commit(self) -> Result<(), DbError> {
        Ok(self.tx.commit().await?)
    }

    fn condition<E: TenantOwned>(&self) -> impl IntoCondition {
        E::tenant_column().eq(self.tenant.as_uuid())
    }
}

/// Declares an entity module's `TenantOwned` impl (its `tenant_id` column), an empty
/// `Relation` and the default `ActiveModelBehavior`: the shape every tenant-owned table of
/// the platform has.
macro_rules! tenant_owned_entity {
    () => {
        impl crate::db::TenantOwned for Entity {
            fn tenant_column() -> Column {
                Column::TenantId
            }
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub(crate) enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    };
}

pub(crate) use tenant_owned_entity;
