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

/// How access lines are written (`[log] access_format`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AccessFormat {
    /// `key=value` fields after the log's timestamp and target (or JSON fields, with
    /// `format = "json"`): everything the edge knows of the request.
    #[default]
    Kv,
    /// Apache's combined format, one bare line a request (what `edgecache replay`, GoAccess
    /// and the like read): `client - - [time] "request" status bytes "referer" "user agent"`.
    Combined,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// How log lines, access lines included, are written: `text` (the default) or `json`, one
    /// object a line.
    pub(crate) format: LogFormat,
    /// One line per request; off with `false`. Default: on.
    pub access_log: bool,
    /// `"kv"` (the default) or `"combined"` (Apache combined lines, whatever `format` is).
    pub(crate) access_format: AccessFormat,
    /// Where log lines go: a file path, or none for standard output.
    pub(crate) file: Option<PathBuf>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            access_log: true,
            access_format: AccessFormat::Kv,
            file: None,
        }
    }
}
