//! Server-side sessions kept in the database (tower-sessions with its sqlx stores).

use super::db::Db;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

/// What a session store error says when the database is out of reach (see
/// [`is_unavailable`]): the sqlx stores turn their errors into strings, so the kind is
/// established here, once, by asking the database itself.
const UNAVAILABLE: &str = "database unavailable";

/// The session store for whichever backend the app runs on.
#[derive(Clone, Debug)]
pub struct DbSessionStore {
    store: Store,
    db: Db,
}

#[derive(Clone, Debug)]
enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl DbSessionStore {
    /// Creates the store and its table.
    pub async fn new(db: &Db) -> Result<Self, sqlx::Error> {
        let store = match db {
            Db::Sqlite(pool) => {
                let s = SqliteStore::new(pool.clone());
                s.migrate().await?;
                Store::Sqlite(s)
            }
            Db::Postgres(pool) => {
                let s = PostgresStore::new(pool.clone());
                s.migrate().await?;
                Store::Postgres(s)
            }
        };
        Ok(Self {
            store,
            db: db.clone(),
        })
    }

    /// A failed store call whose database does not answer becomes [`UNAVAILABLE`].
    async fn classify<T>(&self, res: session_store::Result<T>) -> session_store::Result<T> {
        match res {
            Err(session_store::Error::Backend(msg)) if transient(&msg) => {
                Err(session_store::Error::Backend(UNAVAILABLE.into()))
            }
            Err(session_store::Error::Backend(msg)) => {
                let ping = tokio::time::timeout(std::time::Duration::from_secs(2), self.db.ping());
                match ping.await {
                    Ok(Err(e)) if super::db::is_unavailable(&e) => {
                        Err(session_store::Error::Backend(UNAVAILABLE.into()))
                    }
                    Err(_) => Err(session_store::Error::Backend(UNAVAILABLE.into())),
                    _ => Err(session_store::Error::Backend(msg)),
                }
            }
            other => other,
        }
    }
}

/// Whether `msg` is how sqlx words one of the errors [`super::db::is_unavailable`] accepts
/// without a database code (the words are taken from sqlx itself, so they cannot drift).
fn transient(msg: &str) -> bool {
    let io = sqlx::Error::Io(std::io::Error::other("")).to_string();
    let tls = sqlx::Error::Tls("".into()).to_string();
    [
        sqlx::Error::PoolTimedOut.to_string(),
        sqlx::Error::PoolClosed.to_string(),
        sqlx::Error::WorkerCrashed.to_string(),
    ]
    .iter()
    .any(|m| msg == m)
        || msg.starts_with(io.trim_end())
        || msg.starts_with(tls.trim_end())
}

/// Whether a session error means the database is out of reach (so the request can be retried).
pub fn is_unavailable(e: &tower_sessions::session::Error) -> bool {
    matches!(e, tower_sessions::session::Error::Store(session_store::Error::Backend(m)) if m == UNAVAILABLE)
}

macro_rules! each {
    ($self:ident, $s:ident => $body:expr) => {{
        let res = match &$self.store {
            Store::Sqlite($s) => $body,
            Store::Postgres($s) => $body,
        };
        $self.classify(res).await
    }};
}

#[async_trait::async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        each!(self, s => s.create(record).await)
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        each!(self, s => s.save(record).await)
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        each!(self, s => s.load(id).await)
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        each!(self, s => s.delete(id).await)
    }
}

#[async_trait::async_trait]
impl ExpiredDeletion for DbSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        each!(self, s => s.delete_expired().await)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlx_words_for_an_unreachable_database_are_recognised() {
        assert!(super::transient(&sqlx::Error::PoolTimedOut.to_string()));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(super::transient(&sqlx::Error::Io(refused).to_string()));
        assert!(!super::transient(&sqlx::Error::RowNotFound.to_string()));
        assert!(!super::transient(
            "error returned from database: syntax error"
        ));
    }
}
