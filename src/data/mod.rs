//! Dynamic data in front of a database, cache-aside: reads come from the edge's cache, misses
//! load from the database (once per key, however many ask), writes go to the database and
//! invalidate the tags they changed before answering. Routes are declared in config.
//!
//! The engine itself ([`crate::cache::aside::CacheAside`]) knows nothing of SQL; this module
//! adds the database (SQLite embedded, PostgreSQL for real deployments), the route compiler and
//! the demo schema.

pub mod db;
mod demo;
pub mod params;
pub(crate) mod routes;
pub mod sql;

use crate::{
    cache::{Store, aside::CacheAside, fill::InflightBudget},
    config::Config,
};
use db::{Database, DbSettings};
use routes::{DataApi, Route, RouteError};
use std::{sync::Arc, time::Duration};

/// Why the data layer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error("database: {0}")]
    Db(#[from] db::DbError),
    #[error("data routes need a [database] section")]
    NoDatabase,
}

/// Compiles every route of a config: what `check-config` and start-up both run.
pub fn compile_routes(cfg: &Config) -> Result<Vec<Route>, DataError> {
    if !cfg.routes.is_empty() && cfg.database.is_none() {
        return Err(DataError::NoDatabase);
    }
    Ok(cfg
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| Route::compile(i, r))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Opens the database (lazily) and builds the routes over the shared store. `None` when the
/// config declares no data routes. A reload passes the database it ran on with `reuse`, when
/// `[database]` did not change: its connections stay, and so does an in-memory database's
/// content.
pub(crate) async fn build(
    cfg: &Config,
    store: &Store,
    budget: Arc<InflightBudget>,
    reuse: Option<Arc<Database>>,
) -> Result<Option<DataApi>, DataError> {
    let routes = compile_routes(cfg)?;
    let Some(dbc) = &cfg.database else {
        return Ok(None);
    };
    let db = match reuse {
        Some(db) => db,
        None => {
            let db = Database::open(&DbSettings {
                url: dbc.url.clone(),
                read_url: dbc.read_url.clone(),
                max_connections: dbc.max_connections,
                acquire_timeout: dbc.acquire_timeout.0,
                statement_timeout: dbc.statement_timeout.0,
            })?;
            if dbc.seed_demo {
                demo::seed(db.primary()).await?;
            }
            Arc::new(db)
        }
    };
    let wait = cfg.cache.fill_wait_timeout.0.max(Duration::from_secs(1));
    let aside = CacheAside::new(store.clone(), budget, wait);
    Ok(Some(DataApi::new(routes, db, aside, dbc.replica_lag.0)))
}
