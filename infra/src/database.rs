//! Opening the database, applying migrations, and refusing a PostgreSQL role that would
//! bypass row-level security.

use std::time::Duration;

use anyhow::{Context, bail};
use portico_migrations::MigratorTrait;
use portico_migrations::{APP_ROLE, Migrator};
use portico_platform::db::Db;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};

use crate::config::{Config, DatabaseProvider};

/// Which credentials a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Serving requests: `database.url`, a role that owns nothing.
    Serve,
    /// Applying migrations: `database.migrate_url` (else `database.url`), the owner.
    Migrate,
}

/// Opens a connection pool for `purpose`. On SQLite, creates the data directory and file.
pub async fn connect(config: &Config, purpose: Purpose) -> anyhow::Result<DatabaseConnection> {
    let url = match config.database.provider {
        DatabaseProvider::Sqlite => {
            create_private_dir(&config.data_dir)?;
            format!("sqlite://{}?mode=rwc", config.sqlite_path().display())
        }
        DatabaseProvider::Postgres => {
            let url = match purpose {
                Purpose::Serve => config.database.url.as_ref(),
                Purpose::Migrate => config
                    .database
                    .migrate_url
                    .as_ref()
                    .or(config.database.url.as_ref()),
            };
            // `Config::load` requires database.url for postgres.
            let Some(url) = url else {
                bail!("database.url is not set")
            };
            url.expose().clone()
        }
    };

    let mut options = ConnectOptions::new(url);
    options
        .max_connections(config.database.max_connections)
        .connect_timeout(Duration::from_secs(config.database.connect_timeout_secs))
        .acquire_timeout(Duration::from_secs(config.database.connect_timeout_secs))
        // Statements can carry PHI in their text once later tables exist; never log them.
        .sqlx_logging(false);
    let conn = Database::connect(options)
        .await
        .with_context(|| format!("cannot connect to the {} database", provider_name(config)))?;
    if conn.get_database_backend() == DbBackend::Sqlite {
        conn.execute_unprepared("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")
            .await
            .context("cannot configure the SQLite database")?;
    }

    Ok(conn)
}

/// Applies every pending migration; returns how many ran.
pub async fn migrate(config: &Config) -> anyhow::Result<usize> {
    let conn = connect(config, Purpose::Migrate).await?;
    let pending = Migrator::get_pending_migrations(&conn)
        .await
        .context("cannot read the migration ledger")?
        .len();
    Migrator::up(&conn, None)
        .await
        .context("a migration failed")?;
    conn.close().await.ok();

    Ok(pending)
}

/// Opens the serving pool and checks it is safe to serve with.
pub async fn open_for_serving(config: &Config) -> anyhow::Result<Db> {
    let conn = connect(config, Purpose::Serve).await?;
    if conn.get_database_backend() == DbBackend::Postgres {
        check_serving_role(&conn).await?;
    }

    Ok(Db::new(conn))
}

/// Whether every migration this binary knows has been applied.
pub async fn migrations_current(db: &Db) -> Result<bool, sea_orm::DbErr> {
    Ok(Migrator::get_pending_migrations_read_only(db.platform())
        .await?
        .is_empty())
}

/// Refuses to serve as a role that row-level security does not bind: a superuser, a role
/// with BYPASSRLS, or one that owns (or is a member of the owner of) any table.
async fn check_serving_role(conn: &DatabaseConnection) -> anyhow::Result<()> {
    let row = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT r.rolsuper, r.rolbypassrls,
                    (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                        AND pg_has_role(current_user, c.relowner, 'USAGE')) AS owned,
                    pg_has_role(current_user, '{APP_ROLE}', 'MEMBER') AS member
               FROM pg_roles r WHERE r.rolname = current_user"
                .replace("{APP_ROLE}", APP_ROLE),
        ))
        .await
        .context("cannot inspect the database role (has `portico migrate` run?)")?
        .context("the database role is not in pg_roles")?;
    let superuser: bool = row.try_get("", "rolsuper")?;
    let bypass: bool = row.try_get("", "rolbypassrls")?;
    let owned: i64 = row.try_get("", "owned")?;
    let member: bool = row.try_get("", "member")?;

    if superuser || bypass {
        bail!(
            "database.url connects as a role that bypasses row-level security (superuser or \
             BYPASSRLS); connect as a role that owns nothing and is a member of {APP_ROLE} \
             (see docs/DATABASE.md)"
        );
    }
    if owned > 0 {
        bail!(
            "database.url connects as a role that owns {owned} of Portico's tables, so \
             row-level security would not bind it; run migrations as the owner \
             (database.migrate_url) and serve as a role that owns nothing (see docs/DATABASE.md)"
        );
    }
    if !member {
        bail!(
            "database.url's role is not a member of {APP_ROLE}; grant it with `GRANT {APP_ROLE} TO <role>`"
        );
    }

    Ok(())
}

fn provider_name(config: &Config) -> &'static str {
    match config.database.provider {
        DatabaseProvider::Sqlite => "SQLite",
        DatabaseProvider::Postgres => "PostgreSQL",
    }
}

/// Creates `dir` readable by its owner only: it will hold PHI.
fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;

    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))
}
