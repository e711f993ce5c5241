//! The database: SQLite by default, Postgres when `DATABASE_URL` says `postgres://`.
//!
//! One query text serves both backends (placeholders are `$1, $2, …`, which SQLite also
//! understands); [`with_pool!`] expands the same body once per backend so each is compiled with
//! its own driver types. Only where the dialects truly differ does code branch on [`Db`].

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    PgPool, SqlitePool,
};
use std::{str::FromStr, time::Duration};

/// A pool for one of the two backends.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same body against whichever backend `$db` holds; `$pool` names the typed pool inside.
#[macro_export]
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::infra::db::Db::Sqlite($pool) => $body,
            $crate::infra::db::Db::Postgres($pool) => $body,
        }
    };
}
pub use with_pool;

/// The token an owner's entries carry in SQLite's full-text indexes (`characters_fts`,
/// `chat_messages_fts`): `o` and the owner's id without dashes, so a search can ask for the
/// searcher's entries only.
pub fn owner_token(owner_id: &str) -> String {
    format!("o{}", owner_id.replace('-', "")).to_lowercase()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Db {
    /// Connects to `url` (creating a SQLite file and its folder if missing) and runs the
    /// migrations for that backend.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(opts)
                .await?;
            Db::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5));
            let file = opts.get_filename();
            if let Some(dir) = file.parent() {
                if !dir.as_os_str().is_empty() {
                    crate::infra::config::create_private_dir(dir).map_err(sqlx::Error::Io)?;
                }
            }
            create_private_file(file).map_err(sqlx::Error::Io)?;
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                // A file on this machine cannot drop a connection the way a network peer can, so the
                // ping before every acquire only costs a worker-thread round trip per query.
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(opts)
                .await?;
            Db::Sqlite(pool)
        } else {
            return Err(sqlx::Error::Configuration(
                // Not the URL itself: it may carry a password.
                format!(
                    "DATABASE_URL must start with sqlite:// or postgres:// (it starts with {:?})",
                    url.split(':').next().unwrap_or_default()
                )
                .into(),
            ));
        };
        db.migrate().await?;
        Ok(db)
    }

    /// Whether every migration this build carries is applied (readiness: a replica started
    /// before a newer one migrated, or a database restored from an old backup, says no).
    pub async fn migrations_applied(&self) -> Result<bool, sqlx::Error> {
        let (expected, applied): (usize, i64) = match self {
            Db::Sqlite(pool) => (
                sqlx::migrate!("../migrations/sqlite").iter().count(),
                sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                    .fetch_one(pool)
                    .await?,
            ),
            Db::Postgres(pool) => (
                sqlx::migrate!("../migrations/postgres").iter().count(),
                sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                    .fetch_one(pool)
                    .await?,
            ),
        };
        Ok(applied as usize >= expected)
    }

    async fn migrate(&self) -> Result<(), sqlx::Error> {
        match self {
            Db::Sqlite(pool) => sqlx::migrate!("../migrations/sqlite").run(pool).await?,
            Db::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
    }

    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}

/// Whether `e` says the database is out of reach — refused or dropped connections, no connection
/// free in time, a server shutting down or starting up, SQLite busy past its timeout — rather than
/// that the query itself was wrong. Such a request can simply be tried again.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            match db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                // SQLITE_BUSY and SQLITE_LOCKED, with their extended codes (low byte 5 or 6).
                Some(_) => code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6)),
                // Postgres: connection exceptions (class 08), and admin/crash shutdown or
                // "the database system is starting up" (57P01–57P03).
                None => code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03"),
            }
        }
        _ => false,
    }
}

/// Creates an empty SQLite database file readable by its owner only (0600) if there is none;
/// SQLite gives its `-wal` and `-shm` files the same mode. `:memory:` is left alone.
fn create_private_file(file: &std::path::Path) -> std::io::Result<()> {
    if file.as_os_str().is_empty() || file.to_str().is_some_and(|f| f.starts_with(':')) {
        return Ok(());
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}
