//! The connection pool and the helpers every query goes through: queries run on the
//! database's own threads (`executor`), so async workers never wait on the database;
//! reads on a pooled connection, SQLite's writes on its one writing connection.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
/// (the body is compiled once per backend). For the hottest statements: through the
/// multi-connection diesel writes every statement's SQL text out again on each run, even
/// when the prepared statement is cached (a third of a metadata read's database time;
/// a small upload's eight write statements cost 18 % less user CPU per file without it).
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
        is_broken(&mut pooled.conn)
    }
}

/// Statements sent to the database by this process, transaction control included
/// (`/metrics`; the bench divides it by the files uploaded).
static STATEMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many statements this process has sent to its database so far (`BEGIN`, `COMMIT`
/// and savepoints included).
#[must_use]
pub fn statements_sent() -> u64 {
    STATEMENTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts each statement a connection starts.
struct CountStatements;

impl diesel::connection::Instrumentation for CountStatements {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        if let diesel::connection::InstrumentationEvent::StartQuery { .. } = event {
            STATEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Manager {
    fn open(&self) -> Result<AnyConnection, r2d2::Error> {
        match &self.0 {
            Target::Postgres(url) => {
                let mut c = PgConnection::establish(url).map_err(r2d2::Error::ConnectionError)?;
                c.set_instrumentation(CountStatements);
                Ok(AnyConnection::Postgresql(c))
            }
            Target::Sqlite(path) => {
                let mut c = SqliteConnection::establish(path).map_err(r2d2::Error::ConnectionError)?;
                c.set_instrumentation(CountStatements);
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

/// A write waiting for its turn on SQLite's writing connection. It runs in a savepoint of
/// the turn's transaction and answers whether the batch may go on (`true`: it ended
/// normally, or on a constraint, which undoes only its savepoint) and how to tell its
/// caller once the commit is known.
type Pending = Box<dyn FnOnce(&mut AnyConnection) -> (bool, Answer) + Send>;
/// Tells a write's caller its outcome: `None` once its batch committed, else why not.
type Answer = Box<dyn FnOnce(Option<&'static str>) + Send>;

/// The writes waiting for SQLite's writing connection.
struct Queue {
    writes: VecDeque<(Instant, Pending)>,
    /// Whether a database thread has been asked to run them (one at a time is enough: it
    /// runs until the queue is empty).
    draining: bool,
}

/// SQLite's one writing connection, opened when first needed and again after it broke.
/// SQLite has one writer at a time; taking turns here avoids `SQLITE_BUSY` on lock
/// upgrades inside transactions. Writing always on the same connection keeps its page
/// cache and prepared statements warm (a connection that did not make the last write
/// drops its whole page cache). Writes that queue up while others run share one
/// transaction, each in a savepoint of its own, and one commit: SQLite writes each changed
/// page to its log once per commit, so the pages many small writes share (a table's last
/// page, an index's) are written once for all of them. Each caller hears back only after
/// that commit.
struct Writer {
    manager: Manager,
    /// Whether a commit is on disk before it is answered (`PRAGMA synchronous = FULL`:
    /// the log is synced at each commit, once per batch) or only in order (`NORMAL`: a
    /// power loss can take back the last commits, never corrupt the file).
    durable: std::sync::atomic::AtomicBool,
    conn: Mutex<Option<AnyConnection>>,
    queue: Mutex<Queue>,
    /// A write that waited longer than this is not run (its caller hears `Unavailable`).
    max_wait: Duration,
}

/// At most this many writes share one commit: the first of them hears back only after the
/// last has run.
const MAX_BATCH: usize = 32;

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Writer {
    fn open(&self) -> Result<AnyConnection, r2d2::Error> {
        let mut conn = self.manager.open()?;
        if self.durable.load(std::sync::atomic::Ordering::Relaxed) {
            conn.batch_execute("PRAGMA synchronous = FULL").map_err(r2d2::Error::QueryError)?;
        }
        Ok(conn)
    }

    /// Queues `write`; says whether a database thread must be asked to drain the queue.
    fn enqueue(&self, write: Pending) -> bool {
        let mut q = locked(&self.queue);
        q.writes.push_back((Instant::now(), write));
        !std::mem::replace(&mut q.draining, true)
    }

    /// Runs the queued writes, batch after batch, until none is left.
    fn drain(&self) {
        /// Should draining itself panic, the next write asks for a new drain (else every
        /// later write would wait for one that never comes).
        struct Unmark<'a>(&'a Writer);
        impl Drop for Unmark<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    locked(&self.0.queue).draining = false;
                }
            }
        }
        let _unmark = Unmark(self);
        let mut conn = locked(&self.conn);
        loop {
            let batch: Vec<_> = {
                let mut q = locked(&self.queue);
                if q.writes.is_empty() {
                    q.draining = false;
                    return;
                }
                let n = q.writes.len().min(MAX_BATCH);
                q.writes.drain(..n).collect()
            };
            let left = self.run_batch(&mut conn, batch);
            if !left.is_empty() {
                // Writes a failure stopped before: first in the next batch.
                let mut q = locked(&self.queue);
                for write in left.into_iter().rev() {
                    q.writes.push_front(write);
                }
            }
        }
    }

    /// Runs `batch` in one transaction and tells each caller how it went; gives back the
    /// writes it did not reach (after one whose error may have ended the transaction).
    fn run_batch(&self, held: &mut Option<AnyConnection>, batch: Vec<(Instant, Pending)>) -> Vec<(Instant, Pending)> {
        // A write dropped unrun answers nothing: its caller's channel closes, which it
        // reads as the database being unavailable.
        let mut writes = batch.into_iter().filter(|(at, _)| at.elapsed() <= self.max_wait).peekable();
        if writes.peek().is_none() {
            return Vec::new();
        }
        let conn = match held {
            Some(conn) => conn,
            None => match self.open() {
                Ok(conn) => held.insert(conn),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the SQLite writing connection");
                    return Vec::new();
                }
            },
        };
        let mut answers = Vec::new();
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            conn.transaction::<(), DieselError, _>(|c| {
                for (_, write) in writes.by_ref() {
                    let (go_on, answer) = write(c);
                    answers.push(answer);
                    if !go_on {
                        // Another error may have ended SQLite's transaction: nothing more
                        // runs in it.
                        break;
                    }
                }
                Ok(())
            })
        }));
        let failed = match &ran {
            Ok(Ok(())) => None,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "SQLite could not commit a batch of writes");
                Some("the batch of writes could not be committed")
            }
            Err(_) => Some("a write in the same batch panicked"),
        };
        if ran.is_err() || is_broken(conn) {
            // Closing it rolls back whatever it left open.
            *held = None;
        }
        for answer in answers {
            answer(failed);
        }
        writes.collect()
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

/// A write transaction's outcome as [`Db::write`] answers it: committed (`Ok(Ok)`),
/// rolled back on the closure's request (`Ok(Err)`), or a database error.
fn settle<T, E>(done: Result<T, TxError<E>>) -> Result<Result<T, E>, DieselError> {
    match done {
        Ok(v) => Ok(Ok(v)),
        Err(TxError::Rollback(e)) => Ok(Err(e)),
        Err(TxError::Db(e)) => Err(e),
    }
}

/// Whether the connection's server went away or it was left in a failed transaction
/// (diesel's own check: no round trip).
fn is_broken(conn: &mut AnyConnection) -> bool {
    use diesel::r2d2::R2D2Connection;
    per_backend!(conn, |c| c.is_broken())
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
        let writer = sqlite.then(|| {
            Arc::new(Writer {
                manager: Manager(target),
                durable: true.into(),
                conn: Mutex::new(None),
                queue: Mutex::new(Queue { writes: VecDeque::new(), draining: false }),
                max_wait: timeout,
            })
        });
        Ok(Self { pool, writer, threads })
    }

    /// Whether SQLite's commits are synced before they are answered (default: yes; the
    /// server follows `MEDIABOX_FSYNC`). Without, a power loss can take back the last
    /// commits, never corrupt the database. PostgreSQL keeps its own setting.
    #[must_use]
    pub fn with_durable_commits(self, durable: bool) -> Self {
        if let Some(writer) = &self.writer {
            writer.durable.store(durable, std::sync::atomic::Ordering::Relaxed);
            // Opened again, with the setting, by the next write.
            *locked(&writer.conn) = None;
        }
        self
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
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.threads.submit(Box::new(move |stale| {
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if stale {
                    return Err(RepoError::Unavailable("no database connection within the timeout".into()));
                }
                let mut conn = pool.get().map_err(|e| RepoError::Unavailable(Box::new(e)))?;
                let done = f(&mut conn.conn);
                if done.is_ok() {
                    conn.alive_at = std::time::Instant::now();
                }
                done.map_err(repo_error)
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
        if let Some(writer) = &self.writer {
            return self.write_sqlite(writer, f).await;
        }
        let transact = move |conn: &mut AnyConnection| {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match settle(conn.transaction::<T, TxError<E>, _>(&mut f)) {
                    Err(e) if attempt < 5 && is_retryable(&e) => {
                        tracing::debug!(attempt, "transaction aborted by the database; running it again");
                    }
                    done => return done,
                }
            }
        };
        self.run(transact).await
    }

    /// [`Self::write`] on SQLite: queued for the writing connection, run in a savepoint
    /// of a batch's transaction, answered once the batch is committed.
    async fn write_sqlite<T, E, F>(&self, writer: &Arc<Writer>, mut f: F) -> Result<Result<T, E>, RepoError>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnMut(&mut AnyConnection) -> Result<T, TxError<E>> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let write: Pending = Box::new(move |c| {
            let done = settle(c.transaction::<T, TxError<E>, _>(&mut f));
            // A constraint undoes only this write's savepoint; another error may have
            // ended the batch's transaction.
            let go_on = done.as_ref().map_or_else(|e| is_unique_violation(e) || is_fk_violation(e), |_| true);
            let done = done.map_err(repo_error);
            let answer: Answer = Box::new(move |failed| {
                let done = match (failed, done) {
                    // What it wrote was not committed.
                    (Some(why), Ok(Ok(_))) => Err(RepoError::Other(why.into())),
                    (_, done) => done,
                };
                let _ = tx.send(done);
            });
            (go_on, answer)
        });
        if writer.enqueue(write) {
            let writer = Arc::clone(writer);
            self.threads.submit(Box::new(move |_waited_long| writer.drain()));
        }
        rx.await.unwrap_or_else(|_| Err(RepoError::Unavailable("the database did not take the write in time".into())))
    }

    /// Runs `f`, one write statement, atomic by itself. On PostgreSQL it is sent alone
    /// (autocommit: no `BEGIN` and `COMMIT`, two round trips less; run again when the
    /// database aborts it to break a deadlock); on SQLite it is queued as any write (a
    /// savepoint of the batch's transaction, answered once that commits). `f` must send
    /// exactly one write statement: more would not be one transaction on PostgreSQL.
    ///
    /// # Errors
    /// As [`Self::run`].
    pub(crate) async fn write_one<T, F>(&self, mut f: F) -> Result<T, RepoError>
    where
        T: Send + 'static,
        F: FnMut(&mut AnyConnection) -> Result<T, DieselError> + Send + 'static,
    {
        if self.writer.is_some() {
            return self.tx(f).await;
        }
        self.run(move |conn| {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match f(conn) {
                    Err(e) if attempt < 5 && is_retryable(&e) => {
                        tracing::debug!(attempt, "statement aborted by the database; sending it again");
                    }
                    done => return done,
                }
            }
        })
        .await
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

    /// SQLite runs writes that queue up together in one transaction, each in a savepoint:
    /// a write that asks for a rollback, or fails on a constraint, undoes only itself, and
    /// every caller hears its own outcome.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_writes_batched_in_one_commit_keep_their_own_outcomes() -> Result<(), Box<dyn std::error::Error>> {
        let test = crate::testing::TestDb::sqlite();
        let db = Db::connect(&test.url, 4, Duration::from_secs(5))?;
        db.tx(|c| c.batch_execute("CREATE TABLE t (n INTEGER PRIMARY KEY); INSERT INTO t (n) VALUES (-1)")).await?;
        let writes: Vec<_> = (0..200i64)
            .map(|n| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.write(move |c| {
                        // Every fifth takes the number already taken: a unique violation.
                        let taken = if n % 5 == 4 { -1 } else { n };
                        diesel::sql_query(format!("INSERT INTO t (n) VALUES ({taken})")).execute(c)?;
                        // Every third asks for a rollback after writing.
                        if n % 3 == 0 {
                            return Err(TxError::Rollback(n));
                        }
                        Ok(n)
                    })
                    .await
                })
            })
            .collect();
        let mut kept = Vec::new();
        for (n, write) in (0..200i64).zip(writes) {
            match write.await? {
                Ok(Ok(m)) => {
                    assert!(m == n && n % 3 != 0 && n % 5 != 4, "{n} kept");
                    kept.push(m);
                }
                Ok(Err(m)) => assert!(m == n && n % 3 == 0 && n % 5 != 4, "{n} rolled back"),
                Err(RepoError::Other(_)) => assert_eq!(n % 5, 4, "{n} failed"),
                Err(e) => return Err(format!("{n}: {e}").into()),
            }
        }
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let stored: Vec<i64> = db
            .run(|c| diesel::sql_query("SELECT n FROM t ORDER BY n").load::<N>(c))
            .await?
            .into_iter()
            .map(|r| r.n)
            .collect();
        let mut expected = vec![-1];
        expected.extend((0..200).filter(|n| n % 3 != 0 && n % 5 != 4));
        kept.sort_unstable();
        assert_eq!(kept, expected[1..], "these said they were kept");
        assert_eq!(stored, expected, "exactly the writes that said so were kept");
        Ok(())
    }

    /// How many rows the tests' table `t` holds.
    async fn rows_in_t(db: &Db) -> Result<i64, RepoError> {
        db.run(|c| {
            diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>("(SELECT COUNT(*) FROM t)")).get_result(c)
        })
        .await
    }

    /// With `MEDIABOX_FSYNC=true` (the default) a SQLite commit is on disk before it is
    /// answered: the writing connection syncs its log at each commit (`FULL`, 2). Without,
    /// commits stay in order but the last ones may be lost to a power loss (`NORMAL`, 1).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_commits_are_synced_unless_durability_is_turned_off() -> Result<(), Box<dyn std::error::Error>> {
        #[derive(diesel::QueryableByName)]
        struct Level {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            synchronous: i32,
        }
        let level = |db: Db| async move {
            db.tx(|c| diesel::sql_query("PRAGMA synchronous").get_result::<Level>(c)).await.map(|l| l.synchronous)
        };
        let test = crate::testing::TestDb::sqlite();
        let db = Db::connect(&test.url, 2, Duration::from_secs(5))?;
        assert_eq!(level(db.clone()).await?, 2, "FULL by default");
        let db = db.with_durable_commits(false);
        assert_eq!(level(db.clone()).await?, 1, "NORMAL when syncs are off");
        assert_eq!(level(db.with_durable_commits(true)).await?, 2);
        Ok(())
    }

    /// A SQLite write that waited for the writing connection longer than the timeout is
    /// not run: its caller hears that the database is unavailable (a 503 to the client)
    /// and nothing of it is kept, as with a query that waited too long for a connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sqlite_write_that_waited_past_the_timeout_is_not_run() -> Result<(), Box<dyn std::error::Error>> {
        let test = crate::testing::TestDb::sqlite();
        let timeout = Duration::from_millis(100);
        let db = Db::connect(&test.url, 2, timeout)?;
        db.tx(|c| c.batch_execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")).await?;
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (mut started, held) = (Some(started), Mutex::new(held));
        let first = tokio::spawn({
            let db = db.clone();
            async move {
                db.tx(move |c| {
                    started.take().map(|s| s.send(()));
                    // The writing connection stays busy until the test lets go.
                    let _ = locked(&held).recv();
                    diesel::sql_query("INSERT INTO t (n) VALUES (1)").execute(c)
                })
                .await
            }
        });
        running.await?;
        let second = tokio::spawn({
            let db = db.clone();
            async move { db.tx(|c| diesel::sql_query("INSERT INTO t (n) VALUES (2)").execute(c)).await }
        });
        // The second write's wait is what is tested: it outlasts the timeout.
        tokio::time::sleep(timeout * 2).await;
        release.send(())?;
        assert_eq!(first.await??, 1);
        let second = second.await?;
        assert!(matches!(second, Err(RepoError::Unavailable(_))), "{second:?}");
        let count = rows_in_t(&db).await?;
        assert_eq!(count, 1, "the write that waited too long left nothing");
        Ok(())
    }

    /// A write that panics fails the writes that shared its transaction (nothing of them
    /// is kept, and they say so), and the next writes go through on a fresh connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_sqlite_write_keeps_nothing_and_the_next_writes_go_through(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let test = crate::testing::TestDb::sqlite();
        let db = Db::connect(&test.url, 2, Duration::from_secs(5))?;
        db.tx(|c| diesel::sql_query("CREATE TABLE t (n INTEGER PRIMARY KEY)").execute(c)).await?;
        let panicked: Result<usize, _> = db
            .tx(|c| {
                diesel::sql_query("INSERT INTO t (n) VALUES (1)").execute(c)?;
                panic!("a bug in a write");
            })
            .await;
        assert!(matches!(panicked, Err(RepoError::Unavailable(_))), "{panicked:?}");
        db.tx(|c| diesel::sql_query("INSERT INTO t (n) VALUES (2)").execute(c)).await?;
        let count = rows_in_t(&db).await?;
        assert_eq!(count, 1, "the panicking write left nothing; the next one was kept");
        Ok(())
    }

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
