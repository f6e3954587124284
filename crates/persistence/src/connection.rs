//! The connection pool and the helpers every query goes through: queries run on the
//! database's own threads (`executor`), so async workers never wait on the database;
//! reads on a pooled connection, SQLite's writes on its one writing connection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection, Pool};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use mediabox_domain::RepoError;

use crate::executor::Executor;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// One connection to either backend. `Sqlite` comes last: establish tries variants in
/// order and SQLite would accept any string as a path.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs `$body` with `$c` bound to the concrete connection inside an [`AnyConnection`]
/// (the body is compiled once per backend). For the hottest reads: through the
/// multi-connection diesel writes every statement's SQL text out again on each run, even
/// when the prepared statement is cached (a third of a metadata read's database time).
macro_rules! per_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::connection::AnyConnection::Postgresql($c) => $body,
            $crate::connection::AnyConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use per_backend;

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("unsupported database URL (expected sqlite://PATH or postgres://...)")]
    BadUrl,
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("cannot apply migrations: {0}")]
    Migrate(String),
}

#[derive(Debug, Clone)]
enum Target {
    Postgres(String),
    Sqlite(String),
}

impl Target {
    fn parse(url: &str) -> Result<Self, ConnectError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(url.to_owned()))
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Ok(Self::Sqlite(path.to_owned()))
        } else if let Some(path) = url.strip_prefix("sqlite:") {
            Ok(Self::Sqlite(path.to_owned()))
        } else {
            Err(ConnectError::BadUrl)
        }
    }
}

/// An r2d2 manager that builds the concrete connection from the URL's scheme, so that a
/// bad PostgreSQL URL fails fast with its own error.
#[derive(Debug)]
struct Manager(Target);

/// A pooled connection and when it last proved alive.
pub(crate) struct Pooled {
    conn: AnyConnection,
    alive_at: std::time::Instant,
}

/// A connection that proved alive this recently is handed out without a `SELECT 1`: under
/// load every statement would otherwise pay a round trip for it. One that breaks within
/// the window fails its request (503) and is dropped (`has_broken`).
const ALIVE_WINDOW: Duration = Duration::from_secs(1);

impl ManageConnection for Manager {
    type Connection = Pooled;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<Pooled, r2d2::Error> {
        let conn = self.open()?;
        Ok(Pooled { conn, alive_at: std::time::Instant::now() })
    }

    fn is_valid(&self, pooled: &mut Pooled) -> Result<(), r2d2::Error> {
        if pooled.alive_at.elapsed() < ALIVE_WINDOW {
            return Ok(());
        }
        pooled.conn.batch_execute("SELECT 1").map_err(r2d2::Error::QueryError)?;
        pooled.alive_at = std::time::Instant::now();
        Ok(())
    }

    /// A connection whose server went away, or left in a failed transaction, is not
    /// returned to the pool (diesel's own check: no round trip).
    fn has_broken(&self, pooled: &mut Pooled) -> bool {
        use diesel::r2d2::R2D2Connection;
        match &mut pooled.conn {
            AnyConnection::Postgresql(c) => c.is_broken(),
            AnyConnection::Sqlite(c) => c.is_broken(),
        }
    }
}

impl Manager {
    fn open(&self) -> Result<AnyConnection, r2d2::Error> {
        match &self.0 {
            Target::Postgres(url) => {
                PgConnection::establish(url).map(AnyConnection::Postgresql).map_err(r2d2::Error::ConnectionError)
            }
            Target::Sqlite(path) => {
                let mut c = SqliteConnection::establish(path).map_err(r2d2::Error::ConnectionError)?;
                c.batch_execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                )
                .map_err(r2d2::Error::QueryError)?;
                Ok(AnyConnection::Sqlite(c))
            }
        }
    }
}

/// SQLite's one writing connection, opened when first needed and again after it broke.
/// SQLite has one writer at a time; taking turns here avoids `SQLITE_BUSY` on lock
/// upgrades inside transactions. Writing always on the same connection keeps its page
/// cache and prepared statements warm: a connection that did not make the last write
/// drops its whole page cache and reads the pages again.
struct Writer {
    manager: Manager,
    conn: Mutex<Option<AnyConnection>>,
}

impl Writer {
    /// Runs `f` on the writing connection, once the writes before it are done.
    fn with<T>(&self, f: impl FnOnce(&mut AnyConnection) -> Result<T, DieselError>) -> Result<T, RepoError> {
        use diesel::r2d2::R2D2Connection;
        let mut held = self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let conn = match &mut *held {
            Some(conn) => conn,
            None => held.insert(self.manager.open().map_err(|e| RepoError::Unavailable(Box::new(e)))?),
        };
        let done = f(conn).map_err(repo_error);
        let broken = match conn {
            AnyConnection::Sqlite(c) => c.is_broken(),
            AnyConnection::Postgresql(c) => c.is_broken(),
        };
        if broken {
            *held = None;
        }
        done
    }
}

/// The database: a pool plus, on SQLite, the one connection that writes.
#[derive(Clone)]
pub struct Db {
    pool: Pool<Manager>,
    writer: Option<Arc<Writer>>,
    /// The threads that run the queries, one per pooled connection at most.
    threads: Arc<Executor>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("sqlite", &self.writer.is_some()).finish_non_exhaustive()
    }
}

/// Inside a transaction: a diesel error, or a rule that asks for a rollback.
#[derive(Debug)]
pub(crate) enum TxError<E> {
    Db(DieselError),
    Rollback(E),
}

impl<E> From<DieselError> for TxError<E> {
    fn from(e: DieselError) -> Self {
        TxError::Db(e)
    }
}

/// A deadlock or serialization failure: the database aborted the transaction, and
/// running it again is the documented remedy.
fn is_retryable(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(_, info) => info.message().contains("deadlock detected"),
        _ => false,
    }
}

/// Whether `e` is a unique-constraint violation (a concurrent insert got there first).
pub(crate) fn is_unique_violation(e: &DieselError) -> bool {
    matches!(e, DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))
}

/// Whether `e` is a foreign-key violation.
pub(crate) fn is_fk_violation(e: &DieselError) -> bool {
    matches!(e, DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _))
}

/// The PostgreSQL connection inside, for the few statements SQLite has no use for
/// (row locks: SQLite writers already take turns).
pub(crate) fn as_pg(c: &mut AnyConnection) -> Option<&mut PgConnection> {
    match c {
        AnyConnection::Postgresql(pg) => Some(pg),
        AnyConnection::Sqlite(_) => None,
    }
}

pub(crate) fn repo_error(e: DieselError) -> RepoError {
    match &e {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _)
        | DieselError::BrokenTransactionManager => RepoError::Unavailable(Box::new(e)),
        _ => RepoError::Other(Box::new(e)),
    }
}

impl Db {
    /// Opens a pool on `url` (`sqlite://PATH` or `postgres://...`) and checks that one
    /// connection can be made. Waiting for a connection gives up after `timeout`, so a
    /// database that went away answers errors quickly instead of hanging requests.
    ///
    /// # Errors
    /// [`ConnectError`] for an unknown scheme or when no connection can be made.
    pub fn connect(url: &str, max_connections: u32, timeout: Duration) -> Result<Self, ConnectError> {
        let target = Target::parse(url)?;
        let sqlite = matches!(target, Target::Sqlite(_));
        if let Target::Sqlite(path) = &target {
            if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| ConnectError::Connect(e.to_string()))?;
            }
        }
        let manager = Manager(target.clone());
        // Prove the URL works before building the pool: errors come back at once and whole.
        manager.open().map_err(|e| ConnectError::Connect(e.to_string()))?;
        let pool = Pool::builder()
            .max_size(max_connections)
            .min_idle(Some(0))
            .connection_timeout(timeout)
            .build_unchecked(manager);
        // A query that waited for a thread longer than for a connection fails the same way.
        let threads = Arc::new(Executor::new("mediabox-db", max_connections as usize, timeout));
        let writer = sqlite.then(|| Arc::new(Writer { manager: Manager(target), conn: Mutex::new(None) }));
        Ok(Self { pool, writer, threads })
    }

    /// Applies pending migrations (under an advisory lock on PostgreSQL, so several
    /// instances starting at once take turns).
    ///
    /// # Errors
    /// [`ConnectError::Migrate`] when a migration fails.
    pub fn migrate(&self) -> Result<usize, ConnectError> {
        let mut conn = self.pool.get().map_err(|e| ConnectError::Connect(e.to_string()))?;
        let applied = match &mut conn.conn {
            AnyConnection::Postgresql(c) => {
                c.batch_execute("SELECT pg_advisory_lock(727272)").map_err(|e| ConnectError::Migrate(e.to_string()))?;
                let r = c.run_pending_migrations(PG_MIGRATIONS).map(|v| v.len());
                c.batch_execute("SELECT pg_advisory_unlock(727272)")
                    .map_err(|e| ConnectError::Migrate(e.to_string()))?;
                r
            }
            AnyConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        };
        applied.map_err(|e| ConnectError::Migrate(e.to_string()))
    }

    /// Runs `f` with a pooled connection on one of the database's threads.
    ///
    /// # Errors
    /// `Unavailable` when no connection comes within the timeout (waiting for a thread
    /// included) or the connection broke; `Other` for any other database error.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, RepoError>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, DieselError> + Send + 'static,
    {
        let pool = self.pool.clone();
        self.on_thread(move || {
            let mut conn = pool.get().map_err(|e| RepoError::Unavailable(Box::new(e)))?;
            let done = f(&mut conn.conn);
            if done.is_ok() {
                conn.alive_at = std::time::Instant::now();
            }
            done.map_err(repo_error)
        })
        .await
    }

    /// Runs `job` on one of the database's threads; a job that waited there longer than
    /// the timeout answers `Unavailable` without running.
    async fn on_thread<T, J>(&self, job: J) -> Result<T, RepoError>
    where
        T: Send + 'static,
        J: FnOnce() -> Result<T, RepoError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.threads.submit(Box::new(move |stale| {
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if stale {
                    return Err(RepoError::Unavailable("no database connection within the timeout".into()));
                }
                job()
            }));
            // The caller may have gone (a dropped request): the work is done all the same.
            let _ = tx.send(done);
        }));
        match rx.await {
            Ok(Ok(r)) => r,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(RepoError::Unavailable("the database threads have stopped".into())),
        }
    }

    /// Runs `f` in one write transaction. `Err(TxError::Rollback(e))` from `f` rolls back
    /// and comes back as `Ok(Err(e))`.
    ///
    /// # Errors
    /// As [`Self::run`].
    ///
    /// A transaction that PostgreSQL aborts to break a deadlock or a serialization
    /// conflict is run again (a few times), so `f` may run more than once.
    pub(crate) async fn write<T, E, F>(&self, mut f: F) -> Result<Result<T, E>, RepoError>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnMut(&mut AnyConnection) -> Result<T, TxError<E>> + Send + 'static,
    {
        let transact = move |conn: &mut AnyConnection| {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match conn.transaction::<T, TxError<E>, _>(&mut f) {
                    Ok(v) => return Ok(Ok(v)),
                    Err(TxError::Rollback(e)) => return Ok(Err(e)),
                    Err(TxError::Db(e)) if attempt < 5 && is_retryable(&e) => {
                        tracing::debug!(attempt, "transaction aborted by the database; running it again");
                    }
                    Err(TxError::Db(e)) => return Err(e),
                }
            }
        };
        match &self.writer {
            Some(writer) => {
                let writer = Arc::clone(writer);
                self.on_thread(move || writer.with(transact)).await
            }
            None => self.run(transact).await,
        }
    }

    /// Runs `f` in one write transaction; any error rolls it back (see [`Self::write`]).
    ///
    /// # Errors
    /// As [`Self::run`].
    pub(crate) async fn tx<T, F>(&self, mut f: F) -> Result<T, RepoError>
    where
        T: Send + 'static,
        F: FnMut(&mut AnyConnection) -> Result<T, DieselError> + Send + 'static,
    {
        self.write::<T, std::convert::Infallible, _>(move |c| f(c).map_err(TxError::Db))
            .await
            .map(|r| r.unwrap_or_else(|never| match never {}))
    }

    /// Checks that the database answers (for `/readyz`).
    ///
    /// # Errors
    /// `Unavailable` when it does not.
    pub async fn ping(&self) -> Result<(), RepoError> {
        self.run(|c| diesel::sql_query("SELECT 1").execute(c).map(|_| ())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.cargo/config.toml` builds SQLite with `SQLITE_ENABLE_QPSG`. Without it every
    /// statement with a `LIMIT` (diesel binds them all) is parsed again on every run:
    /// reads lose a third of their speed, and nothing else would notice.
    #[test]
    fn sqlite_is_built_with_the_query_planner_stability_guarantee() -> Result<(), Box<dyn std::error::Error>> {
        let mut c = SqliteConnection::establish(":memory:")?;
        let on: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
            "EXISTS (SELECT 1 FROM pragma_compile_options WHERE compile_options = 'ENABLE_QPSG')",
        ))
        .get_result(&mut c)?;
        assert!(on, "SQLite was built without SQLITE_ENABLE_QPSG: is LIBSQLITE3_FLAGS overridden?");
        Ok(())
    }
}
