//! Human-friendly sizes (`256MiB`) and durations (`30s`) for the config file and the CLI.
//!
//! Both parse from a string or a bare integer (bytes, seconds), so `max_memory = 1048576` and
//! `max_memory = "1MiB"` mean the same.

use serde::{Deserialize, Deserializer, de};
use std::{fmt, str::FromStr, time::Duration};

/// A byte count. Binary suffixes (`KiB`, `MiB`, `GiB`) and decimal ones (`KB`, `MB`, `GB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// A duration written as `500ms`, `30s`, `5m`, `2h`, `1d`, or a bare number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Secs(pub(crate) Duration);

fn split_number(s: &str) -> Option<(f64, &str)> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let n: f64 = s[..end].parse().ok()?;
    (n.is_finite() && n >= 0.0).then_some((n, s[end..].trim()))
}

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a size (examples: 4096, 512KiB, 256MiB, 2GiB)");
        let (n, unit) = split_number(s).ok_or_else(bad)?;
        let mult: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "t" | "tib" => 1 << 40,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            _ => return Err(bad()),
        };
        let v = n * mult as f64;
        if v > u64::MAX as f64 {
            return Err(bad());
        }
        Ok(ByteSize(v as u64))
    }
}

impl FromStr for Secs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a duration (examples: 500ms, 30s, 5m, 2h, 1d)");
        let (n, unit) = split_number(s).ok_or_else(bad)?;
        let secs = match unit {
            "ms" => n / 1000.0,
            "" | "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            "d" => n * 86400.0,
            _ => return Err(bad()),
        };
        Duration::try_from_secs_f64(secs)
            .map(Secs)
            .map_err(|_| bad())
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        for (m, u) in UNITS {
            if self.0 >= m && self.0.is_multiple_of(m) {
                return write!(f, "{}{u}", self.0 / m);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// Accepts a string with a unit or a bare non-negative integer.
fn de_str_or_int<'de, D, T>(d: D, what: &'static str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = String>,
{
    struct V<T>(&'static str, std::marker::PhantomData<T>);
    impl<T: FromStr<Err = String>> de::Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a {} (a number or a string with a unit)", self.0)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            s.parse().map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
            if n < 0 {
                return Err(E::custom(format!("{} must not be negative", self.0)));
            }
            n.to_string().parse().map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
            n.to_string().parse().map_err(E::custom)
        }
    }
    d.deserialize_any(V::<T>(what, std::marker::PhantomData))
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_str_or_int(d, "size")
    }
}

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_str_or_int(d, "duration")
    }
}

impl Default for Secs {
    fn default() -> Self {
        Secs(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("256MiB".parse::<ByteSize>().unwrap().0, 256 << 20);
        assert_eq!("1.5KiB".parse::<ByteSize>().unwrap().0, 1536);
        assert_eq!("10MB".parse::<ByteSize>().unwrap().0, 10_000_000);
        assert_eq!("4096".parse::<ByteSize>().unwrap().0, 4096);
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert!("-1MiB".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(32 << 20).to_string(), "32MiB");
    }

    #[test]
    fn durations() {
        assert_eq!(
            "500ms".parse::<Secs>().unwrap().0,
            Duration::from_millis(500)
        );
        assert_eq!("2m".parse::<Secs>().unwrap().0, Duration::from_secs(120));
        assert_eq!("7".parse::<Secs>().unwrap().0, Duration::from_secs(7));
        assert!("soon".parse::<Secs>().is_err());
    }
}
