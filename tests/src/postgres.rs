//! A PostgreSQL database of its own for one test, created from `TEST_POSTGRES_URL` and
//! dropped when the test ends.
//!
//! The schema is owned by the superuser the URL names (as migrations are in production);
//! the test's server connects as `portico_test_server`, a login role that owns nothing and
//! is a member of `portico_app`, so row-level security binds it.

use sea_orm::{ConnectionTrait, Database};
use tokio::sync::OnceCell;

/// The login role test servers connect as.
pub const SERVER_ROLE: &str = "portico_test_server";

/// A database that lives as long as this value.
#[derive(Debug)]
pub struct PostgresTestDb {
    admin_url: String,
    name: String,
}

static ROLES: OnceCell<()> = OnceCell::const_new();

impl PostgresTestDb {
    /// Creates an empty database. Panics, saying what to do, if PostgreSQL is not reachable.
    pub async fn create() -> Self {
        let admin_url = std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| {
            panic!("TEST_POSTGRES_URL is not set; run the PostgreSQL pass through ./tests/run")
        });
        let run = std::env::var("TEST_RUN_ID").unwrap_or_else(|_| "adhoc".to_owned());
        let name = format!("portico_test_{run}_{}", unique_suffix());

        let admin = Database::connect(admin_url.as_str())
            .await
            .unwrap_or_else(|err| panic!("cannot reach PostgreSQL at TEST_POSTGRES_URL: {err}"));
        ROLES
            .get_or_init(|| async {
                // Roles are cluster-wide; create them once per test process, tolerating a
                // concurrent creator.
                for role in [
                    "portico_app NOLOGIN".to_owned(),
                    format!("{SERVER_ROLE} LOGIN"),
                ] {
                    admin
                        .execute_unprepared(&format!(
                            "DO $$ BEGIN CREATE ROLE {role}; \
                             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
                        ))
                        .await
                        .unwrap();
                }
                admin
                    .execute_unprepared(&format!("GRANT portico_app TO {SERVER_ROLE}"))
                    .await
                    .ok();
            })
            .await;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        admin.close().await.ok();

        Self { admin_url, name }
    }

    /// A URL for the database as its owner (for migrations).
    pub fn owner_url(&self) -> String {
        with_database(&self.admin_url, &self.name)
    }

    /// A URL for the database as the unprivileged server role.
    pub fn server_url(&self) -> String {
        let url = with_database(&self.admin_url, &self.name);
        let (scheme, rest) = url.split_once("://").unwrap();
        let host_and_path = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        format!("{scheme}://{SERVER_ROLE}@{host_and_path}")
    }
}

impl Drop for PostgresTestDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs outside any runtime; a small one of its own does the work.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(admin) = Database::connect(admin_url.as_str()).await {
                    admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await
                        .ok();
                    admin.close().await.ok();
                }
            });
        });
        dropper.join().ok();
    }
}

fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(base, query)| (base, Some(query)));
    let (scheme, rest) = base.split_once("://").unwrap();
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    match query {
        Some(query) => format!("{scheme}://{authority}/{database}?{query}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

/// A name part unique across processes and calls.
#[allow(
    clippy::disallowed_methods,
    reason = "naming test databases, not product logic"
)]
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_swap_the_database_and_the_role() {
        let db = PostgresTestDb {
            admin_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            name: "x".into(),
        };
        assert_eq!(db.owner_url(), "postgres://postgres@127.0.0.1:5432/x");
        assert_eq!(
            db.server_url(),
            "postgres://portico_test_server@127.0.0.1:5432/x"
        );
        std::mem::forget(db);
    }
}
