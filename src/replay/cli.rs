//! The `edgecache replay` command line: what to replay, at which sizes, under which policies,
//! and how to print it.

use super::{POLICIES, Trace, progress, read_trace, recommend, recommendation_text, simulate};
use crate::config::ByteSize;
use std::{path::PathBuf, str::FromStr};

/// `edgecache replay`'s flags.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// One request a line: `KEY [SIZE]`, an access log in common/combined format, or
    /// edgecache's own access log (key=value or JSON lines).
    #[arg(long, value_name = "FILE", required_unless_present = "synthetic")]
    trace: Option<PathBuf>,
    /// Instead of a file, a generated trace: zipf-0.8, zipf-1.0, one-hit, shifting (see
    /// BENCHMARKS.md), of `--requests` requests from `--seed`.
    #[arg(long, value_name = "KIND", conflicts_with = "trace")]
    synthetic: Option<String>,
    /// Requests of a `--synthetic` trace (10M, 500k and the like).
    #[arg(long, default_value = "1M", value_name = "N")]
    requests: Count,
    /// Seed of a `--synthetic` trace.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Cache sizes to simulate, comma-separated: sizes (16MiB) or shares of the bytes of the
    /// trace's distinct objects (1%).
    #[arg(long, value_delimiter = ',', required = true, value_name = "SIZES")]
    capacity: Vec<Capacity>,
    /// Policies, comma-separated: edgecache (the server's own store and second-hit
    /// admission), tinylfu (moka alone: `admission = "always"`), lru, w-tinylfu, belady.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "edgecache,tinylfu,lru,w-tinylfu,belady"
    )]
    policy: Vec<String>,
    /// Say which `admission` setting gives this trace the best byte hit ratio at each size,
    /// what it costs in objects, and the config lines to use it (instead of the table).
    #[arg(long)]
    recommend: bool,
    /// JSON instead of a table: one record per policy and capacity (or per capacity, with
    /// `--recommend`).
    #[arg(long)]
    json: bool,
}

/// A cache size: bytes, or a share of the trace's distinct bytes.
#[derive(Debug, Clone, Copy)]
pub enum Capacity {
    Bytes(u64),
    Share(f64),
}

impl FromStr for Capacity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().strip_suffix('%') {
            Some(p) => match p.trim().parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => Ok(Capacity::Share(p / 100.0)),
                _ => Err(format!("`{s}` is not a share between 0% and 100%")),
            },
            None => ByteSize::from_str(s).map(|b| Capacity::Bytes(b.0)),
        }
    }
}

/// A count with an optional k / M suffix.
#[derive(Debug, Clone, Copy)]
pub struct Count(pub u64);

impl FromStr for Count {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (n, mult) = match s.trim() {
            t if t.ends_with(['k', 'K']) => (&t[..t.len() - 1], 1_000.0),
            t if t.ends_with('M') => (&t[..t.len() - 1], 1_000_000.0),
            t => (t, 1.0),
        };
        match n.parse::<f64>() {
            Ok(v) if v >= 1.0 && v * mult <= 1e9 => Ok(Count((v * mult) as u64)),
            _ => Err(format!("`{s}` is not a request count from 1 to 1000M")),
        }
    }
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("unknown policy `{0}` (known: {known})", known = POLICIES.join(", "))]
    Policy(String),
    #[error("unknown synthetic trace `{0}` (known: {known})", known = super::synthetic::KINDS.join(", "))]
    Synthetic(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

impl ReplayArgs {
    /// Reads or generates the trace, replays it, and prints the result to standard output
    /// (skipped lines are said on standard error).
    pub fn run(&self) -> Result<(), ReplayError> {
        for p in &self.policy {
            if !POLICIES.contains(&p.as_str()) {
                return Err(ReplayError::Policy(p.clone()));
            }
        }
        let t = self.trace()?;
        if t.skipped > 0 {
            eprintln!("replay: skipped {} unreadable line(s)", t.skipped);
        }
        let unique = super::synthetic::unique_bytes(&t);
        let caps: Vec<u64> = self
            .capacity
            .iter()
            .map(|c| match *c {
                Capacity::Bytes(b) => b,
                Capacity::Share(s) => ((unique as f64 * s) as u64).max(1),
            })
            .collect();
        if self.recommend {
            let pb = progress((t.requests.len() * caps.len() * 2) as u64);
            let recs = recommend(&t, &caps, &pb);
            pb.finish_and_clear();
            if self.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&recs).unwrap_or_default()
                );
            } else {
                print!("{}", recommendation_text(&recs));
            }
            return Ok(());
        }
        let policies: Vec<&str> = self.policy.iter().map(String::as_str).collect();
        let pb = progress((t.requests.len() * caps.len() * policies.len()) as u64);
        let records = simulate(&t, &caps, &policies, &pb);
        pb.finish_and_clear();
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&records).unwrap_or_default()
            );
        } else {
            print!("{}", super::table(&records));
        }
        Ok(())
    }

    fn trace(&self) -> Result<Trace, ReplayError> {
        if let Some(kind) = &self.synthetic {
            return super::synthetic::generate(kind, self.requests.0, self.seed)
                .ok_or_else(|| ReplayError::Synthetic(kind.clone()));
        }
        let path = self.trace.as_deref().unwrap_or(std::path::Path::new("-"));
        let read = |source| ReplayError::Read {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        read_trace(std::io::BufReader::with_capacity(1 << 20, file)).map_err(read)
    }
}
