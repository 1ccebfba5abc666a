//! Who may use a site or the admin API: the checks of the `allow` / `deny` lists. The lists
//! themselves are [`Cidr`] vectors on [`super::SiteConfig`] and [`super::AdminConfig`]; what
//! they mean is said there and enforced by `proxy::admission`.

use super::{ConfigError, cidr::Cidr, invalid};

/// Checks an `allow` / `deny` pair at `field` (`site[0]`, `admin`). The ranges themselves were
/// parsed by serde (naming the entry); what is left is a list that can admit nobody: an
/// `allow` every entry of which a `deny` entry covers is a typo, not a policy.
pub(super) fn validate_lists(
    field: &str,
    allow: &[Cidr],
    deny: &[Cidr],
) -> Result<(), ConfigError> {
    let denied = |a: &Cidr| deny.iter().any(|d| d.covers(a));
    if let Some(first) = allow.first().filter(|_| allow.iter().all(denied)) {
        return Err(invalid(
            format!("{field}.allow"),
            format!("every range in it is also in deny (`{first}`...): nobody would be let in"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn site(keys: &str) -> String {
        format!("[[site]]\nname='a'\nhosts=['*']\norigin='http://127.0.0.1:9'\n{keys}")
    }

    #[test]
    fn bad_access_lists_name_the_entry() {
        for (keys, field) in [
            ("allow = ['10.0.0.0/33']", "site[0].allow[0]"),
            ("deny = ['::1', 'localhost']", "site[0].deny[1]"),
            ("allow = ['10.0.0.1/8']", "site[0].allow[0]"),
            (
                "allow = ['10.1.0.0/16']\ndeny = ['10.0.0.0/8']",
                "site[0].allow: ",
            ),
        ] {
            let e = Config::from_toml(&site(keys)).unwrap_err().to_string();
            assert!(e.contains(field), "{keys}: {e}");
        }
        for (keys, field) in [
            (
                "rate_limit = { requests = 0 }",
                "site[0].rate_limit.requests",
            ),
            (
                "rate_limit = { requests = 5, per = '0s' }",
                "site[0].rate_limit.per",
            ),
            (
                "rate_limit = { requests = 5, burst = 0 }",
                "site[0].rate_limit.burst",
            ),
            (
                "rate_limit = { requests = 5, per = 'soon' }",
                "site[0].rate_limit.per",
            ),
            (
                "rate_limit = { requests = 5, every = '1s' }",
                "site[0].rate_limit",
            ),
        ] {
            let e = Config::from_toml(&site(keys)).unwrap_err().to_string();
            assert!(e.contains(field), "{keys}: {e}");
        }
        assert!(
            Config::from_toml(&site(
                "rate_limit = { requests = 5, per = '1m', burst = 9 }"
            ))
            .is_ok()
        );
        let ok = site("allow = ['10.0.0.0/8', '2001:db8::/32']\ndeny = ['10.9.0.0/16']");
        assert!(Config::from_toml(&ok).is_ok());
        for (keys, field) in [
            ("[admin]\nallow = ['300.0.0.1']", "admin.allow[0]"),
            ("[admin]\nallow = ['::1']\ndeny = ['::/0']", "admin.allow: "),
        ] {
            let e = Config::from_toml(keys).unwrap_err().to_string();
            assert!(e.contains(field), "{keys}: {e}");
        }
    }
}
