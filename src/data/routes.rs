//! Data routes declared in config: a method, a path template with typed parameters, and one
//! SQL statement. Reads go through [`CacheAside`]; writes go to the primary database and then
//! invalidate the tags they name, before the response is sent.

use super::{
    db::{Database, DbError},
    params::{self, BodySpec, ParamError, ParamType, PathTemplate, Value},
    sql::{self, Statement},
};
use crate::{
    cache::{
        aside::{AsideError, CacheAside, LoadOptions},
        status::{CacheStatus, Outcome},
    },
    config::RouteConfig,
    telemetry::metrics::SiteStats,
};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use serde_json::{Value as Json, json};
use std::sync::Arc;

/// A route ready to serve.
pub struct Route {
    /// The method it answers: GET reads through the cache, the others write.
    pub(crate) method: Method,
    /// The path it owns, with typed parameters.
    pub(crate) path: PathTemplate,
    /// The statement, shared with the load or write task that runs it.
    stmt: Arc<Statement>,
    /// Answer with the first row as an object (404 when there is none), not an array.
    single: bool,
    /// TTLs, stale windows and jitter for a read's cached results.
    opts: LoadOptions,
    /// Tag templates of a read's result, rendered with the request's values.
    tags: Vec<String>,
    /// Tag templates a write invalidates once it may have changed data.
    invalidates: Vec<String>,
    /// The fields a write takes from the JSON body, and those it accepts and ignores.
    body: BodySpec,
}

/// A bad route in the config, naming the field.
#[derive(Debug, thiserror::Error)]
#[error("route[{index}].{field}: {reason}")]
pub struct RouteError {
    /// Position of the route in the config's `[[route]]` list.
    pub(crate) index: usize,
    /// The key at fault (`method`, `sql`, ...).
    pub(crate) field: &'static str,
    /// What is wrong with it.
    pub(crate) reason: String,
}

impl Route {
    /// Compiles and cross-checks one route (no database needed).
    pub(crate) fn compile(index: usize, c: &RouteConfig) -> Result<Self, RouteError> {
        let err = |field, reason: String| RouteError {
            index,
            field,
            reason,
        };
        let method = match c.method.to_ascii_uppercase().as_str() {
            m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE") => {
                Method::from_bytes(m.as_bytes()).expect("valid")
            }
            other => {
                return Err(err(
                    "method",
                    format!("`{other}` is not one of GET, POST, PUT, PATCH, DELETE"),
                ));
            }
        };
        let path = PathTemplate::parse(&c.path).map_err(|e| err("path", e))?;
        let stmt = sql::parse(&c.sql).map_err(|e| err("sql", e))?;
        let body = c
            .body
            .iter()
            .map(|(k, t)| {
                ParamType::parse(t)
                    .map(|t| (k.clone(), t))
                    .map_err(|e| err("body", format!("{k}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let read = method == Method::GET;
        if read && !body.is_empty() {
            return Err(err("body", "a GET route takes no body".into()));
        }
        if read && !c.read_only.is_empty() {
            return Err(err("read_only", "a GET route takes no body".into()));
        }
        if let Some(f) = c.read_only.iter().find(|f| c.body.contains_key(*f)) {
            return Err(err(
                "read_only",
                format!("{f} is a body field; a field is one or the other"),
            ));
        }
        let body = BodySpec {
            fields: body,
            read_only: c.read_only.clone(),
        };
        if read && !c.invalidates.is_empty() {
            return Err(err(
                "invalidates",
                "a GET route does not write; use tags".into(),
            ));
        }
        if !read && !c.tags.is_empty() {
            return Err(err(
                "tags",
                "a write route is not cached; use invalidates".into(),
            ));
        }
        let known: Vec<&str> = path
            .param_names()
            .chain(body.fields.iter().map(|(k, _)| k.as_str()))
            .collect();
        for p in &stmt.params {
            if !known.contains(&p.as_str()) {
                return Err(err(
                    "sql",
                    format!(":{p} is neither a path parameter nor a body field"),
                ));
            }
        }
        for (field, list) in [("tags", &c.tags), ("invalidates", &c.invalidates)] {
            for t in list {
                for n in params::template_names(t).map_err(|e| err(field, e))? {
                    if !known.contains(&n.as_str()) {
                        return Err(err(
                            field,
                            format!("`{t}` uses {{{n}}}, which the route does not have"),
                        ));
                    }
                }
            }
        }
        if !read && c.single && !c.sql.to_ascii_uppercase().contains("RETURNING") {
            // Without RETURNING every write would look like "no row matched".
            return Err(err(
                "sql",
                "a single-row write needs RETURNING (the row it wrote)".into(),
            ));
        }
        if !(0.0..=1.0).contains(&c.ttl_jitter) {
            return Err(err("ttl_jitter", "must be between 0 and 1".into()));
        }
        Ok(Self {
            method,
            path,
            stmt: Arc::new(stmt),
            single: c.single,
            opts: LoadOptions {
                ttl: c.ttl.0,
                negative_ttl: c.negative_ttl.0,
                stale_while_revalidate: c.stale_while_revalidate.0,
                stale_if_error: c.stale_if_error.0,
                jitter: c.ttl_jitter,
            },
            tags: c.tags.clone(),
            invalidates: c.invalidates.clone(),
            body,
        })
    }
}

/// A data response: status, JSON body, and what the cache did.
pub(crate) struct DataResponse {
    /// The HTTP status to answer with.
    pub(crate) status: StatusCode,
    /// The JSON body.
    pub(crate) body: Bytes,
    /// What the cache did, for `Cache-Status`, `X-Cache` and the access log; `None` for errors
    /// before the cache.
    pub(crate) cache: Option<CacheStatus>,
    /// For 405: the methods the path does take.
    pub(crate) allow: Option<HeaderValue>,
    /// Seconds the answer spent in the cache, for reads.
    pub(crate) age: Option<u64>,
}

impl DataResponse {
    fn json(status: StatusCode, body: &Json, cache: Option<CacheStatus>) -> Self {
        Self {
            status,
            body: Bytes::from(body.to_string()),
            cache,
            allow: None,
            age: None,
        }
    }

    /// An error as `{"error": msg}`.
    pub(crate) fn error(status: StatusCode, msg: &str) -> Self {
        Self::json(status, &json!({ "error": msg }), None)
    }

    fn param(status: StatusCode, e: &ParamError) -> Self {
        Self::json(
            status,
            &json!({ "error": format!("{}: {}", e.name, e.message), "param": e.name }),
            None,
        )
    }
}

/// All data routes over one database and the shared cache.
pub struct DataApi {
    /// In config order: the first whose path and method fit serves a request.
    routes: Vec<Route>,
    /// The database the routes read and write.
    db: Arc<Database>,
    /// The cache reads go through and writes invalidate.
    aside: CacheAside,
    /// Tags written within the replica's lag: their reads go to the primary.
    recent_writes: moka::sync::Cache<String, ()>,
    /// Where the time of each query is recorded, if anywhere.
    latency: Option<Arc<SiteStats>>,
}

impl DataApi {
    pub(crate) fn new(
        routes: Vec<Route>,
        db: Arc<Database>,
        aside: CacheAside,
        replica_lag: std::time::Duration,
    ) -> Self {
        let recent_writes = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(replica_lag.max(std::time::Duration::from_millis(1)))
            .build();
        Self {
            routes,
            db,
            aside,
            recent_writes,
            latency: None,
        }
    }

    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// Records each query's time in `stats` (`edgecache_aside_query_seconds`).
    pub(crate) fn with_latency(mut self, stats: Arc<SiteStats>) -> Self {
        self.latency = Some(stats);
        self
    }

    /// Does a route own this path (with any method)?
    pub(crate) fn owns(&self, path: &str) -> bool {
        self.routes.iter().any(|r| r.path.matches(path).is_some())
    }

    /// Serves a request whose path a route owns. `body` is the request body, already bounded.
    pub(crate) async fn serve(
        &self,
        method: &Method,
        path: &str,
        body: Option<Bytes>,
    ) -> DataResponse {
        let lookup = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        let mut shape_ok = false;
        for (index, route) in self.routes.iter().enumerate() {
            let Some(matched) = route.path.matches(path) else {
                continue;
            };
            shape_ok = true;
            if route.method != lookup {
                continue;
            }
            let path_values = match matched {
                Ok(v) => v,
                Err(e) => return DataResponse::param(StatusCode::BAD_REQUEST, &e),
            };
            return if route.method == Method::GET {
                self.read(index, route, path_values).await
            } else {
                self.write(route, path_values, body).await
            };
        }
        debug_assert!(shape_ok, "serve is called for owned paths");
        let allow: Vec<&str> = self
            .routes
            .iter()
            .filter(|r| r.path.matches(path).is_some())
            .map(|r| r.method.as_str())
            .collect();
        let mut r = DataResponse::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed on this path",
        );
        r.allow = HeaderValue::from_str(&allow.join(", ")).ok();
        r
    }

    async fn read(
        &self,
        index: usize,
        route: &Route,
        values: Vec<(String, Value)>,
    ) -> DataResponse {
        let tags = match render_all(&route.tags, &values) {
            Ok(t) => t,
            Err(e) => return DataResponse::error(StatusCode::INTERNAL_SERVER_ERROR, &e),
        };
        let binds = bind_order(&route.stmt, &values);
        let (db, stmt, single) = (self.db.clone(), route.stmt.clone(), route.single);
        let (recent, row_tags) = (self.recent_writes.clone(), tags.clone());
        let latency = self.latency.clone();
        let key = cache_key(index, &values);
        let fetched = self
            .aside
            .get_or_load(&key, &tags, &route.opts, move || async move {
                // A replica may not have the latest write to these tags yet: read the primary.
                // Decided here, after the load took its tag stamp: a write that lands in
                // between is either seen here or makes this load's result outdated.
                let from_primary =
                    db.has_replica() && row_tags.iter().any(|t| recent.contains_key(t));
                let started = tokio::time::Instant::now();
                let rows = db.read(&stmt, &binds, from_primary).await;
                if let Some(l) = &latency {
                    l.latency(started.elapsed().as_secs_f64());
                }
                let rows = rows?;
                Ok::<_, DbError>(render_rows(rows, single))
            })
            .await;
        match fetched {
            Ok(f) => match f.value {
                Some(body) => DataResponse {
                    status: StatusCode::OK,
                    body,
                    cache: Some(f.status),
                    allow: None,
                    age: Some(f.age.as_secs()),
                },
                None => DataResponse::json(
                    StatusCode::NOT_FOUND,
                    &json!({ "error": "not found" }),
                    Some(f.status),
                ),
            },
            Err(AsideError::Load(e)) => match e.downcast_ref::<DbError>() {
                Some(e) => db_error(e),
                None => DataResponse::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            },
            Err(AsideError::Timeout) => DataResponse::error(
                StatusCode::GATEWAY_TIMEOUT,
                "timed out waiting for the database",
            ),
        }
    }

    async fn write(
        &self,
        route: &Route,
        mut values: Vec<(String, Value)>,
        body: Option<Bytes>,
    ) -> DataResponse {
        if !route.body.is_empty() {
            let raw = body.unwrap_or_default();
            let json: Json = match serde_json::from_slice(&raw) {
                Ok(j) => j,
                Err(e) => {
                    return DataResponse::error(
                        StatusCode::BAD_REQUEST,
                        &format!("body is not valid JSON: {e}"),
                    );
                }
            };
            match params::body_values(&json, &route.body, &values) {
                Ok(v) => values.extend(v),
                Err(e) => return DataResponse::param(StatusCode::UNPROCESSABLE_ENTITY, &e),
            }
        }
        let tags = match render_all(&route.invalidates, &values) {
            Ok(t) => t,
            Err(e) => return DataResponse::error(StatusCode::INTERNAL_SERVER_ERROR, &e),
        };
        let binds = bind_order(&route.stmt, &values);
        // The write and its invalidation run in a task of their own: a client that goes away
        // mid-request must not leave a committed write with its tags still cached.
        let (db, stmt, aside, recent) = (
            self.db.clone(),
            route.stmt.clone(),
            self.aside.clone(),
            self.recent_writes.clone(),
        );
        let latency = self.latency.clone();
        let wait = self.db.write_wait();
        let task = tokio::spawn(async move {
            // Runs to its end even when the client stops waiting (see `Database::write`): the
            // invalidation must follow the commit, whenever that comes.
            let started = tokio::time::Instant::now();
            let result = db.write(&stmt, &binds).await;
            if let Some(l) = &latency {
                l.latency(started.elapsed().as_secs_f64());
            }
            // Invalidate when the write may have changed something: it changed or returned
            // rows, or it ended in a way that leaves that open. A statement the database
            // refused (constraint, syntax) was rolled back, and one that never got a
            // connection never ran.
            let touched = match &result {
                Ok(w) => w.affected > 0 || !w.rows.is_empty(),
                Err(e) => e.may_have_written(),
            };
            if touched {
                // Readers check these first: recorded before the invalidation, no reader can
                // miss the entry's removal and still pick the replica.
                for t in &tags {
                    recent.insert(t.clone(), ());
                }
                aside.invalidate(&tags);
            }
            result
        });
        let rows = match tokio::time::timeout(wait, task).await {
            Ok(Ok(Ok(w))) => w.rows,
            Ok(Ok(Err(e))) => return db_error(&e),
            Ok(Err(_)) => {
                return DataResponse::error(StatusCode::INTERNAL_SERVER_ERROR, "write task failed");
            }
            Err(_) => {
                return DataResponse::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!(
                        "the write did not finish within {wait:?}; it may still be applied, \
                         and the cache will follow if it is"
                    ),
                );
            }
        };
        let cache = Some(CacheStatus::new(Outcome::Bypass("method")));
        if route.single && rows.is_empty() {
            // Nothing matched, nothing changed: the cache stays as it was.
            return DataResponse::json(
                StatusCode::NOT_FOUND,
                &json!({ "error": "not found" }),
                cache,
            );
        }
        let body = render_rows(rows, route.single).unwrap_or_else(|| Bytes::from_static(b"{}"));
        DataResponse {
            status: StatusCode::OK,
            body,
            cache,
            allow: None,
            age: None,
        }
    }
}

/// A database failure as the client sees it. Query errors (a table gone, a type the SQL did
/// not expect) are the operator's: their text goes to the log, not to the client.
fn db_error(e: &DbError) -> DataResponse {
    match e {
        DbError::Constraint(c) => {
            let status = if c.conflict {
                StatusCode::CONFLICT
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            DataResponse::error(status, &format!("the data breaks a {c}"))
        }
        DbError::Query(m) => {
            tracing::warn!(error = %m, "data route query failed");
            DataResponse::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "query failed (the edge's log has the details)",
            )
        }
        DbError::Render(_) | DbError::Config(_) => {
            DataResponse::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
        }
        DbError::Unavailable(_)
        | DbError::Interrupted(_)
        | DbError::Cancelled
        | DbError::Timeout(_) => {
            DataResponse::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
    }
}

/// The cache key of a read: the route and its typed parameter values, so that every spelling
/// of one request (`/7`, `/07`, `/%37`) shares one entry and one database query.
fn cache_key(route: usize, values: &[(String, Value)]) -> String {
    use std::fmt::Write;
    let mut key = format!("GET #{route}");
    for (name, v) in values {
        let v = match v {
            Value::Str(s) => Json::from(s.as_str()).to_string(),
            other => other.render(),
        };
        let _ = write!(key, " {name}={v}");
    }
    key
}

fn render_all(templates: &[String], values: &[(String, Value)]) -> Result<Vec<String>, String> {
    templates
        .iter()
        .map(|t| params::render_template(t, values))
        .collect()
}

/// The statement's parameters in bind order (config validation guarantees each is present).
fn bind_order(stmt: &Statement, values: &[(String, Value)]) -> Vec<Value> {
    stmt.params
        .iter()
        .map(|p| {
            values
                .iter()
                .find(|(n, _)| n == p)
                .map_or(Value::Null, |(_, v)| v.clone())
        })
        .collect()
}

/// Rows as JSON: the first row for a single-row route (None when there is none), else an array.
fn render_rows(rows: Vec<serde_json::Map<String, Json>>, single: bool) -> Option<Bytes> {
    if single {
        rows.into_iter()
            .next()
            .map(|r| Bytes::from(Json::Object(r).to_string()))
    } else {
        let arr: Vec<Json> = rows.into_iter().map(Json::Object).collect();
        Some(Bytes::from(Json::Array(arr).to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(toml: &str) -> Result<Route, String> {
        let c: RouteConfig = toml::from_str(toml).map_err(|e| e.to_string())?;
        Route::compile(0, &c).map_err(|e| e.to_string())
    }

    #[test]
    fn read_only_fields_belong_to_writes_and_are_not_body_fields() {
        let put = "method = 'PUT'\npath = '/p/{id:int}'\nsql = 'UPDATE p SET n = :n WHERE id = :id'\n\
                   body = { n = 'str' }\n";
        assert!(compile(&format!("{put}read_only = ['updated_at']")).is_ok());
        let e = compile(&format!("{put}read_only = ['n']")).err().unwrap();
        assert_eq!(
            e,
            "route[0].read_only: n is a body field; a field is one or the other"
        );
        let get = "path = '/p/{id:int}'\nsql = 'SELECT 1'\nread_only = ['updated_at']";
        let e = compile(get).err().unwrap();
        assert_eq!(e, "route[0].read_only: a GET route takes no body");
    }
}
