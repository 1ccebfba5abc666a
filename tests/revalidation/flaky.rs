//! A one-resource origin for the stale-if-error tests: its status can be switched at runtime and
//! it can be shut down, after which connections to its port are refused. Every response says
//! `Connection: close`, so the edge never holds a pooled connection that would outlive a stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A "status" under which the origin reads a request and never answers it.
pub const SILENT: u16 = 0;

/// The validator every 200 carries, so an expired copy is kept for revalidation.
pub const ETAG: &str = "\"flaky-1\"";

struct State {
    status: AtomicU16,
    requests: AtomicUsize,
    cache_control: String,
}

pub struct FlakyOrigin {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<State>,
    task: Option<JoinHandle<()>>,
}

impl FlakyOrigin {
    /// Serves every path; a 200 carries `cache_control`, an ETag and the body `fresh <n>`, where
    /// `n` numbers the request. A 304 carries another ETag; other statuses get
    /// `origin error <status>` and no caching headers.
    pub async fn start(cache_control: &str) -> FlakyOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            status: AtomicU16::new(200),
            requests: AtomicUsize::new(0),
            cache_control: cache_control.to_owned(),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(answer(conn, st.clone()));
            }
        });
        FlakyOrigin {
            url,
            state,
            task: Some(task),
        }
    }

    /// The status the following requests get; `SILENT` keeps them waiting for ever.
    pub fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Closes the listening socket; from then on connections are refused.
    pub async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            // Awaiting the aborted task guarantees the listener has been dropped.
            let _ = t.await;
        }
    }

    /// A TOML config with one catch-all site in front of this origin.
    pub fn edge_toml(&self) -> String {
        self.edge_toml_with("")
    }

    /// The same, with more keys for the site (`key = value` lines).
    pub fn edge_toml_with(&self, site_keys: &str) -> String {
        format!(
            "[[site]]\nname = \"flaky\"\nhosts = [\"*\"]\norigin = \"{}\"\n{site_keys}\n",
            self.url
        )
    }
}

impl Drop for FlakyOrigin {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Reads one request head, answers it and closes the connection.
async fn answer(mut conn: TcpStream, state: Arc<State>) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let n = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let status = state.status.load(Ordering::SeqCst);
    if status == SILENT {
        // Hold the connection until the edge gives up on it.
        let _ = conn.read(&mut chunk).await;
        return;
    }
    let (body, extra) = if status == 200 {
        let extra = format!("Cache-Control: {}\r\nETag: {ETAG}\r\n", state.cache_control);
        (format!("fresh {n}\n"), extra)
    } else if status == 304 {
        // A 304, to any request, for a representation the 200s never were.
        (String::new(), "ETag: \"flaky-other\"\r\n".to_owned())
    } else {
        (format!("origin error {status}\n"), String::new())
    };
    let head = format!(
        "HTTP/1.1 {status} Status\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n{extra}\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes()).await;
    let _ = conn.write_all(body.as_bytes()).await;
    let _ = conn.shutdown().await;
}
