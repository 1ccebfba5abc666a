//! Origin pools: balancing, backups, passive ejection and active checks, the connection cap,
//! and the retry rules, against several test origins on 127.0.0.1.
#[path = "../common/mod.rs"]
mod common;
#[path = "../revalidation/flaky.rs"]
#[allow(dead_code)]
mod flaky;

mod balance;
mod dns;
mod health;
mod retry;
mod tls;

/// A catch-all site over `servers` (TOML inline tables) with more site keys.
pub fn pool_toml(servers: &[String], site_keys: &str) -> String {
    format!(
        "[[site]]\nname = \"pool\"\nhosts = [\"*\"]\norigins = [{}]\n{site_keys}\n",
        servers.join(", ")
    )
}

/// `{ url = "..." }` with more keys (`weight = 3`, `backup = true`).
pub fn server(url: &str, keys: &str) -> String {
    if keys.is_empty() {
        format!("{{ url = \"{url}\" }}")
    } else {
        format!("{{ url = \"{url}\", {keys} }}")
    }
}

/// A URL on 127.0.0.1 where nothing listens: connections are refused.
pub fn dead_url() -> String {
    format!("http://127.0.0.1:{}", common::free_port())
}
