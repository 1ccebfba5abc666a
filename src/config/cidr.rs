//! Address ranges in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, or one address), for the
//! lists that say who may do what.

use serde::{Deserialize, Deserializer};
use std::{fmt, net::IpAddr, str::FromStr};

/// A range of IPv4 or IPv6 addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Is `ip` in the range? An IPv4 client seen on an IPv6 socket (`::ffff:a.b.c.d`) is
    /// taken as the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            _ => false,
        }
    }

    /// Is every address of `other` in this range?
    pub fn covers(&self, other: &Cidr) -> bool {
        other.bits >= self.bits && self.contains(other.net)
    }

    /// Loopback, IPv4 and IPv6.
    pub fn loopback() -> Vec<Cidr> {
        vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
    }
}

/// Do the first `bits` bits of `a` and `b` agree?
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[full] & mask == b[full] & mask
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not an address or a CIDR range (10.0.0.0/8, ::1/128)");
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&b| b <= max)
                .ok_or_else(bad)?,
            None => max,
        };
        let net = net.to_canonical();
        let cidr = Cidr {
            net,
            bits: if net.is_ipv4() && max == 128 {
                bits.saturating_sub(96)
            } else {
                bits
            },
        };
        // Host bits set (`10.0.0.1/8`) are a typo more often than not: refused.
        if (Cidr {
            bits: cidr.max_bits(),
            ..cidr
        }) != cidr.masked()
        {
            return Err(format!("`{s}` has bits set past its /{bits}"));
        }
        Ok(cidr)
    }
}

impl Cidr {
    fn max_bits(&self) -> u8 {
        if self.net.is_ipv4() { 32 } else { 128 }
    }

    /// The range with its host bits cleared, at full length (for the typo check).
    fn masked(&self) -> Cidr {
        let clear = |octets: &mut [u8]| {
            for (i, o) in octets.iter_mut().enumerate() {
                let start = i * 8;
                let keep = usize::from(self.bits).saturating_sub(start).min(8) as u32;
                *o &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
            }
        };
        let net = match self.net {
            IpAddr::V4(a) => {
                let mut o = a.octets();
                clear(&mut o);
                IpAddr::from(o)
            }
            IpAddr::V6(a) => {
                let mut o = a.octets();
                clear(&mut o);
                IpAddr::from(o)
            }
        };
        Cidr {
            net,
            bits: self.max_bits(),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.bits)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_hold_what_they_say() {
        assert!(c("10.0.0.0/8").contains(ip("10.255.1.2")));
        assert!(!c("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(c("192.168.1.0/26").contains(ip("192.168.1.63")));
        assert!(!c("192.168.1.0/26").contains(ip("192.168.1.64")));
        assert!(c("203.0.113.7").contains(ip("203.0.113.7")));
        assert!(!c("203.0.113.7").contains(ip("203.0.113.8")));
        assert!(c("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(!c("0.0.0.0/0").contains(ip("::1")));
        assert!(c("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(!c("2001:db8::/32").contains(ip("2001:db9::1")));
        assert!(c("::1/128").contains(ip("::1")));
        // An IPv4 client on a dual-stack socket is its IPv4 address.
        assert!(c("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
        assert!(c("::ffff:10.0.0.0/104").contains(ip("10.1.2.3")));
        assert!(c("10.0.0.0/8").covers(&c("10.1.0.0/16")));
        assert!(!c("10.1.0.0/16").covers(&c("10.0.0.0/8")));
        assert!(!c("::/0").covers(&c("10.0.0.0/8")));
    }

    #[test]
    fn bad_ranges_are_refused_saying_why() {
        for bad in ["10.0.0.0/33", "::/129", "ten", "10.0.0/8", "10.0.0.0/x"] {
            assert!(
                bad.parse::<Cidr>().unwrap_err().contains("not an address"),
                "{bad}"
            );
        }
        assert!(
            "10.0.0.1/8"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("bits set past")
        );
    }
}
