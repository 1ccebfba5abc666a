//! The source of truth: SQLite (embedded, the default) or PostgreSQL, through bounded sqlx
//! pools. Statements are run with their parameters bound; rows come back as JSON objects.
//! Reads go to the read pool (a replica, when `read_url` is set), writes to the primary.

use super::{params::Value, sql::Statement};
use serde_json::{Map, Value as Json};
use sqlx::{
    Column, Row, TypeInfo, ValueRef,
    pool::PoolOptions,
    postgres::{PgConnectOptions, PgPool},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool},
};
use std::{
    str::FromStr,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// A database failure, by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Could not reach the database or get a connection in time (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The statement failed (type, syntax, ...): the request is not served (500).
    #[error("query failed: {0}")]
    Query(String),
    /// The data broke a constraint (unique, foreign key: 409; not null, check: 422). The
    /// statement was rolled back.
    #[error("{0}")]
    Constraint(Constraint),
    /// The connection failed while the statement ran: a write may have committed (503).
    #[error("connection lost during the statement: {0}")]
    Interrupted(String),
    /// The database cancelled the statement at its server-side `statement_timeout` and rolled
    /// it back (503).
    #[error("statement timed out: the database cancelled it at its statement_timeout")]
    Cancelled,
    /// The statement did not finish within `statement_timeout`; a write may or may not have
    /// happened (503).
    #[error("statement timed out after {0:?}")]
    Timeout(Duration),
    /// The statement ran but a row could not be turned into JSON (a write may have committed).
    #[error("cannot render the result: {0}")]
    Render(String),
    #[error("invalid database url: {0}")]
    Config(String),
}

/// Which constraint a write broke, and the database's words for it.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Constraint {
    /// Which kind of constraint (`unique constraint`, ...): what the client's message leads with.
    pub(crate) kind: &'static str,
    /// The database's own words, which name the constraint.
    pub(crate) message: String,
    /// 409 when the data clashes with other rows, 422 when the values themselves are refused.
    pub(crate) conflict: bool,
}

impl DbError {
    /// Might a write that ended with this error have changed the data? Then what it
    /// invalidates must be invalidated anyway.
    pub(crate) fn may_have_written(&self) -> bool {
        matches!(
            self,
            DbError::Interrupted(_) | DbError::Timeout(_) | DbError::Render(_)
        )
    }
}

/// An error from running a statement on a connection already acquired.
impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                DbError::Unavailable(e.to_string())
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => DbError::Interrupted(e.to_string()),
            sqlx::Error::Database(db) => {
                // PostgreSQL's query_canceled: its statement_timeout, set per connection.
                if db.code().as_deref() == Some("57014") {
                    return DbError::Cancelled;
                }
                let (kind, conflict) = match db.kind() {
                    sqlx::error::ErrorKind::UniqueViolation => ("unique constraint", true),
                    sqlx::error::ErrorKind::ForeignKeyViolation => ("foreign key constraint", true),
                    sqlx::error::ErrorKind::ExclusionViolation => ("exclusion constraint", true),
                    sqlx::error::ErrorKind::NotNullViolation => ("not-null constraint", false),
                    sqlx::error::ErrorKind::CheckViolation => ("check constraint", false),
                    _ => return DbError::Query(db.message().to_string()),
                };
                DbError::Constraint(Constraint {
                    kind,
                    message: db.message().to_string(),
                    conflict,
                })
            }
            other => DbError::Query(other.to_string()),
        }
    }
}

/// What a write did: the rows it returned (RETURNING) and how many it changed.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// The rows the statement returned, as JSON objects (a write's with RETURNING).
    pub(crate) rows: Vec<Map<String, Json>>,
    /// Rows it changed: with `rows`, whether a write must invalidate its tags.
    pub(crate) affected: u64,
}

/// Binds values in order; a macro because sqlx's query types differ per backend.
macro_rules! bind_values {
    ($q:expr, $values:expr) => {{
        let mut q = $q;
        for v in $values {
            q = match v {
                Value::Null => q.bind(None::<String>),
                Value::Int(i) => q.bind(*i),
                Value::Float(f) => q.bind(*f),
                Value::Str(s) => q.bind(s.clone()),
                Value::Bool(b) => q.bind(*b),
            };
        }
        q
    }};
}

/// Runs a bound query on a connection and gathers a [`Written`]: rows turned into JSON by
/// `$row`, and the rows changed (for reads too: it costs nothing). A macro for the same reason as `bind_values!`.
macro_rules! collect_written {
    ($conn:expr, $q:expr, $row:expr) => {{
        use futures_util::TryStreamExt;
        use sqlx::{Either, Executor};
        let mut out = Written::default();
        let mut steps = $conn.fetch_many($q);
        while let Some(step) = steps.try_next().await? {
            match step {
                Either::Left(done) => out.affected += done.rows_affected(),
                Either::Right(row) => out.rows.push($row(&row).map_err(rendering)?),
            }
        }
        Ok(out)
    }};
}

/// One pool of either kind.
#[derive(Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub(crate) struct DbSettings {
    /// The primary (`database.url`): writes, and reads without a replica.
    pub(crate) url: String,
    /// The read replica (`database.read_url`), if any.
    pub(crate) read_url: Option<String>,
    /// Connections in each pool.
    pub(crate) max_connections: u32,
    /// How long a statement waits for a pool connection (also SQLite's busy timeout).
    pub(crate) acquire_timeout: Duration,
    /// How long a statement may run (also PostgreSQL's server-side `statement_timeout`).
    pub(crate) statement_timeout: Duration,
}

/// The primary and (optionally) a read replica, with query counters for tests and metrics.
pub struct Database {
    /// Where writes go, and reads when there is no replica or they must see a recent write.
    primary: Pool,
    /// The read replica, if any: cache-miss reads go here.
    replica: Option<Pool>,
    /// Statements run on the primary: tests check where the reads went.
    primary_queries: AtomicU64,
    /// Statements run on the replica.
    replica_queries: AtomicU64,
    /// How long a statement waits for a connection: part of a PostgreSQL write's `write_wait`.
    acquire_timeout: Duration,
    /// Bounds a read, what a client waits for a write, and a PostgreSQL write's backstop.
    statement_timeout: Duration,
}

impl Pool {
    /// Opens a pool lazily (PostgreSQL) so the edge starts even while the database is down;
    /// SQLite files are created on first use.
    pub fn open(
        url: &str,
        max: u32,
        acquire: Duration,
        statement_timeout: Duration,
    ) -> Result<Self, DbError> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| DbError::Config(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(acquire);
            if let Some(dir) = opts
                .get_filename()
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    DbError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let pool = PoolOptions::new()
                .max_connections(max)
                .acquire_timeout(acquire)
                .connect_lazy_with(opts);
            Ok(Pool::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            // The server enforces statement_timeout itself: a statement the edge stopped
            // waiting for must not keep running (and commit) behind its back.
            let ms = statement_timeout.as_millis().max(1).to_string();
            let opts = PgConnectOptions::from_str(url)
                .map_err(|e| DbError::Config(e.to_string()))?
                .options([("statement_timeout", ms.as_str())]);
            let pool = PoolOptions::new()
                .max_connections(max)
                .acquire_timeout(acquire)
                .connect_lazy_with(opts);
            Ok(Pool::Postgres(pool))
        } else {
            Err(DbError::Config(format!(
                "`{url}`: use sqlite:... or postgres://..."
            )))
        }
    }

    /// Runs a statement and returns its rows as JSON objects.
    pub async fn rows(
        &self,
        stmt: &Statement,
        values: &[Value],
    ) -> Result<Vec<Map<String, Json>>, DbError> {
        self.run(stmt, values).await.map(|w| w.rows)
    }

    /// Runs a statement: its rows as JSON objects (a write's with RETURNING) and the number
    /// of rows it changed.
    pub(crate) async fn run(&self, stmt: &Statement, values: &[Value]) -> Result<Written, DbError> {
        // Operator-written statements from the config, with every value bound: never client text.
        match self {
            Pool::Sqlite(p) => {
                let q = sqlx::query(sqlx::AssertSqlSafe(stmt.sqlite.clone()));
                let mut conn = p.acquire().await.map_err(unavailable)?;
                collect_written!(conn, bind_values!(q, values), sqlite_row)
            }
            Pool::Postgres(p) => {
                let q = sqlx::query(sqlx::AssertSqlSafe(stmt.postgres.clone()));
                let mut conn = p.acquire().await.map_err(unavailable)?;
                collect_written!(conn, bind_values!(q, values), pg_row)
            }
        }
    }

    /// Runs statements that set a database up (schema, seed), one by one.
    pub(crate) async fn execute_script(&self, statements: &[&'static str]) -> Result<(), DbError> {
        for s in statements {
            match self {
                Pool::Sqlite(p) => {
                    let mut conn = p.acquire().await.map_err(unavailable)?;
                    sqlx::query(*s).execute(&mut *conn).await?;
                }
                Pool::Postgres(p) => {
                    let mut conn = p.acquire().await.map_err(unavailable)?;
                    sqlx::query(*s).execute(&mut *conn).await?;
                }
            }
        }
        Ok(())
    }
}

/// A row as a JSON object. `decode` turns one non-null column of the given (upper-case) type
/// name into JSON, or `None` for a type edgecache does not render.
fn row_json<R, F>(row: &R, decode: F) -> Result<Map<String, Json>, DbError>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    F: Fn(&R, usize, &str) -> Result<Option<Json>, sqlx::Error>,
{
    let mut out = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i)?;
        let v = if raw.is_null() {
            Json::Null
        } else {
            let ty = raw.type_info().name().to_ascii_uppercase();
            decode(row, i, &ty)?.ok_or_else(|| unsupported(col.name(), &ty))?
        };
        out.insert(col.name().to_string(), v);
    }
    Ok(out)
}

fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> Result<Map<String, Json>, DbError> {
    row_json(row, |row, i, ty| {
        Ok(Some(match ty {
            "INTEGER" | "INT" | "BIGINT" => Json::from(row.try_get::<i64, _>(i)?),
            "REAL" | "FLOAT" | "DOUBLE" | "NUMERIC" => Json::from(row.try_get::<f64, _>(i)?),
            "BOOLEAN" | "BOOL" => Json::from(row.try_get::<bool, _>(i)?),
            "TEXT" | "DATETIME" | "DATE" | "TIME" => Json::from(row.try_get::<String, _>(i)?),
            _ => return Ok(None),
        }))
    })
}

fn pg_row(row: &sqlx::postgres::PgRow) -> Result<Map<String, Json>, DbError> {
    row_json(row, |row, i, ty| {
        Ok(Some(match ty {
            "INT2" => Json::from(row.try_get::<i16, _>(i)?),
            "INT4" => Json::from(row.try_get::<i32, _>(i)?),
            "INT8" => Json::from(row.try_get::<i64, _>(i)?),
            "FLOAT4" => Json::from(row.try_get::<f32, _>(i)?),
            "FLOAT8" => Json::from(row.try_get::<f64, _>(i)?),
            "BOOL" => Json::from(row.try_get::<bool, _>(i)?),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" => {
                Json::from(row.try_get::<String, _>(i)?)
            }
            "JSON" | "JSONB" => row.try_get::<Json, _>(i)?,
            _ => return Ok(None),
        }))
    })
}

/// Errors while turning fetched rows into JSON: after the statement ran.
fn rendering(e: DbError) -> DbError {
    match e {
        DbError::Query(m) => DbError::Render(m),
        other => other,
    }
}

/// Any failure to get a connection (refused, unknown database, too many clients, pool timeout)
/// means the database is unavailable, whatever sqlx calls it; errors after that are the query's.
fn unavailable(e: sqlx::Error) -> DbError {
    DbError::Unavailable(e.to_string())
}

fn unsupported(col: &str, ty: &str) -> DbError {
    DbError::Query(format!(
        "column `{col}` has type {ty}, which edgecache cannot render as JSON; cast it to text in the SQL"
    ))
}

/// How many `statement_timeout`s a write may run before the edge gives up on it.
pub(crate) const WRITE_BACKSTOP: u32 = 4;

impl Database {
    pub(crate) fn open(s: &DbSettings) -> Result<Self, DbError> {
        let open =
            |u: &str| Pool::open(u, s.max_connections, s.acquire_timeout, s.statement_timeout);
        let primary = open(&s.url)?;
        let replica = s.read_url.as_deref().map(open).transpose()?;
        Ok(Self {
            primary,
            replica,
            primary_queries: AtomicU64::new(0),
            replica_queries: AtomicU64::new(0),
            acquire_timeout: s.acquire_timeout,
            statement_timeout: s.statement_timeout,
        })
    }

    pub(crate) fn primary(&self) -> &Pool {
        &self.primary
    }

    /// A read: on the replica when there is one.
    pub(crate) async fn read(
        &self,
        stmt: &Statement,
        values: &[Value],
        from_primary: bool,
    ) -> Result<Vec<Map<String, Json>>, DbError> {
        match self.replica.as_ref().filter(|_| !from_primary) {
            Some(r) => {
                self.replica_queries.fetch_add(1, Ordering::Relaxed);
                self.bounded(r.rows(stmt, values)).await
            }
            None => {
                self.primary_queries.fetch_add(1, Ordering::Relaxed);
                self.bounded(self.primary.rows(stmt, values)).await
            }
        }
    }

    /// A write: always on the primary. It is not abandoned at `statement_timeout`, since
    /// dropping it would not stop the database from committing it later, unseen: the caller
    /// stops waiting instead, and whoever runs this learns when it really ended.
    /// - PostgreSQL cancels it itself at `statement_timeout`. Only a connection gone silent
    ///   for [`WRITE_BACKSTOP`] times that is given up on, as [`DbError::Timeout`]: by then
    ///   the server has ended the statement, one way or the other.
    /// - SQLite runs it in the process, on a thread of its own that dropping the future would
    ///   not stop: it is waited for to the end (lock waits are bounded by `busy_timeout`).
    pub(crate) async fn write(
        &self,
        stmt: &Statement,
        values: &[Value],
    ) -> Result<Written, DbError> {
        self.primary_queries.fetch_add(1, Ordering::Relaxed);
        match self.primary {
            Pool::Sqlite(_) => self.primary.run(stmt, values).await,
            Pool::Postgres(_) => {
                let backstop = self.statement_timeout.saturating_mul(WRITE_BACKSTOP);
                tokio::time::timeout(backstop, self.primary.run(stmt, values))
                    .await
                    .unwrap_or(Err(DbError::Timeout(backstop)))
            }
        }
    }

    /// How long a client waits for a write's outcome. PostgreSQL's own `statement_timeout`
    /// starts when the statement arrives, after the connection was acquired: waiting for
    /// both, and a second more, lets the client hear the server's answer (committed, or
    /// cancelled and rolled back) rather than "it may still be applied". SQLite has no such
    /// limit: the client waits `statement_timeout`.
    pub(crate) fn write_wait(&self) -> Duration {
        match self.primary {
            Pool::Sqlite(_) => self.statement_timeout,
            Pool::Postgres(_) => {
                self.acquire_timeout + self.statement_timeout + Duration::from_secs(1)
            }
        }
    }

    /// Has a replica (reads may lag behind writes)?
    pub(crate) fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// Bounds a statement by `statement_timeout`: a query stuck on a lock must not keep its key
    /// locked and its callers waiting.
    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, DbError>>,
    ) -> Result<T, DbError> {
        tokio::time::timeout(self.statement_timeout, f)
            .await
            .unwrap_or_else(|_| Err(DbError::Timeout(self.statement_timeout)))
    }

    /// Statements run on the primary since start.
    pub fn primary_queries(&self) -> u64 {
        self.primary_queries.load(Ordering::Relaxed)
    }

    /// Statements run on the replica since start.
    pub fn replica_queries(&self) -> u64 {
        self.replica_queries.load(Ordering::Relaxed)
    }

    /// All statements since start.
    pub fn queries(&self) -> u64 {
        self.primary_queries() + self.replica_queries()
    }
}
