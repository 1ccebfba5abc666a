//! `[log]`: log format, the access log, and where lines go.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// How log lines, access lines included, are written: `text` (the default) or `json`, one
    /// object a line.
    pub(crate) format: LogFormat,
    /// One line per request; off with `false`. Default: on.
    pub access_log: bool,
    /// Where log lines go: a file path, or none for standard output.
    pub(crate) file: Option<PathBuf>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            access_log: true,
            file: None,
        }
    }
}
