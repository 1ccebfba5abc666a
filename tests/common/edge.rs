//! Starts an edge in-process on an ephemeral 127.0.0.1 port, with a reqwest client for it.

use super::origin::TestOrigin;
use edgecache::{app::App, clock::Clock, config::Config};
use std::net::SocketAddr;
use tokio::{sync::oneshot, task::JoinHandle};

pub struct TestEdge {
    /// The clock of the edge's caching decisions: [`TestEdge::advance`] moves it ahead.
    pub clock: Clock,
    /// The edge's state as reloads change it, for counters (e.g. database queries) tests
    /// assert on and for its admin API.
    pub state: std::sync::Arc<edgecache::proxy::LiveEdge>,
    /// Reloads the edge from the file it was started from ([`TestEdge::from_file`]).
    pub reloader: Option<std::sync::Arc<edgecache::app::Reloader>>,
    pub addr: SocketAddr,
    /// The TLS listener's address, when the config has `server.listen_tls` (bound there:
    /// give it a free port).
    pub tls_addr: Option<SocketAddr>,
    pub url: String,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestEdge {
    /// An edge configured from TOML text (validated like a config file).
    pub async fn from_toml(toml: &str) -> TestEdge {
        Self::from_toml_with_clock(toml, Clock::wall()).await
    }

    /// The same on `clock` (pass `origin.clock()` to share a test origin's time).
    pub async fn from_toml_with_clock(toml: &str, clock: Clock) -> TestEdge {
        let cfg = Config::from_toml(toml).expect("test config is valid");
        Self::start_with_clock(cfg, clock).await
    }

    /// Quick mode in front of one origin, with extra TOML (without `[[site]]`) for tuning.
    pub async fn in_front_of(origin: &TestOrigin, extra_toml: &str) -> TestEdge {
        let toml = format!(
            "{extra_toml}\n[[site]]\nname = \"t\"\nhosts = [\"*\"]\norigin = \"{}\"\n",
            origin.url
        );
        Self::from_toml_with_clock(&toml, origin.clock()).await
    }

    pub async fn start(cfg: Config) -> TestEdge {
        Self::start_with_clock(cfg, Clock::wall()).await
    }

    /// An edge started from the config file at `path` (checked as check-config does), which
    /// its `reloader` reads again.
    pub async fn from_file(path: &std::path::Path, clock: Clock) -> TestEdge {
        let cfg = edgecache::app::check_config(path).expect("test config is valid");
        let path = path.to_path_buf();
        let source: edgecache::app::ConfigSource = Box::new(move || {
            let mut cfg = edgecache::app::check_config(&path)?;
            cfg.log.access_log = false;
            Ok(cfg)
        });
        Self::start_inner(cfg, clock, Some(source)).await
    }

    pub async fn start_with_clock(cfg: Config, clock: Clock) -> TestEdge {
        Self::start_inner(cfg, clock, None).await
    }

    async fn start_inner(
        mut cfg: Config,
        clock: Clock,
        source: Option<edgecache::app::ConfigSource>,
    ) -> TestEdge {
        cfg.log.access_log = false;
        let app = App::build_with_clock(&cfg, clock.clone())
            .await
            .expect("edge builds");
        let state = app.live();
        let reloader = source.map(|s| app.reloader(s));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tls_listener = match cfg.server.listen_tls {
            Some(a) => Some(tokio::net::TcpListener::bind(a).await.unwrap()),
            None => None,
        };
        let tls_addr = tls_listener.as_ref().map(|l| l.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            app.serve_tls(listener, tls_listener, &cfg, async {
                let _ = rx.await;
            })
            .await
            .expect("TLS listener set up");
        });
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            // A bug that hangs a response fails its test instead of hanging the run.
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap();
        TestEdge {
            clock,
            state,
            reloader,
            addr,
            tls_addr,
            url: format!("http://{addr}"),
            client,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Moves the edge's time (and its origin's, if they share a clock) `by` ahead: how tests
    /// let `max-age` run out without sleeping.
    pub fn advance(&self, by: std::time::Duration) {
        self.clock.advance(by);
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.url))
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.url))
    }

    /// Signals shutdown and waits for the drain to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for TestEdge {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A response header as a string ("" when absent).
pub fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Sends raw bytes (a whole request, ending the head with `Connection: close`) and returns
/// everything the server sent back before closing, bounded to 5 s.
pub async fn raw_request(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let run = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), run)
        .await
        .expect("server answered or closed within 5 s")
}
