//! A migrated database of its own for one library-level test: an SQLite file, or a
//! PostgreSQL database in the PostgreSQL pass.

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

use portico_migrations::{Migrator, MigratorTrait};

use crate::postgres::PostgresTestDb;
use crate::postgres_requested;

/// A migrated, empty database that lives as long as this value.
#[derive(Debug)]
pub enum TestDatabase {
    /// A file in a temporary directory.
    Sqlite(tempfile::TempDir),
    /// A PostgreSQL database, dropped afterwards.
    Postgres(PostgresTestDb),
}

impl TestDatabase {
    /// A new database on this pass's engine, with every migration applied by its owner.
    pub async fn migrated() -> Self {
        let database = if postgres_requested() {
            Self::Postgres(PostgresTestDb::create().await)
        } else {
            Self::Sqlite(tempfile::tempdir().unwrap())
        };
        let owner = Database::connect(database.owner_url()).await.unwrap();
        if let Self::Sqlite(_) = database {
            // As the server configures it: readers do not block the vault's own writes.
            owner
                .execute_unprepared("PRAGMA journal_mode = WAL")
                .await
                .unwrap();
        }
        Migrator::up(&owner, None).await.unwrap();
        owner.close().await.unwrap();

        database
    }

    /// Connects as the server does: on PostgreSQL, as the role that owns nothing.
    pub async fn connect_as_server(&self) -> DatabaseConnection {
        let url = match self {
            Self::Sqlite(_) => self.owner_url(),
            Self::Postgres(db) => db.server_url(),
        };
        // Like the server's pool: more than one connection, since the vault opens its own
        // transaction (and the local key service reads) while a caller's is open.
        let mut options = ConnectOptions::new(url);
        options.max_connections(8).sqlx_logging(false);
        Database::connect(options).await.unwrap()
    }

    /// A URL for the database as its owner (the migrating role; a superuser on PostgreSQL).
    pub fn owner_url(&self) -> String {
        match self {
            Self::Sqlite(dir) => {
                format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display())
            }
            Self::Postgres(db) => db.owner_url(),
        }
    }
}
