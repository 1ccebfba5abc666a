//! HTTPS origins: certificates verified against the system's roots by default, or only
//! against a site's `origin_ca_file`; the TLS name is the URL's host, or `origin_sni`.

use crate::common::dns::{TestDns, Zone};
use crate::common::tls::{TestCa, TlsOrigin};
use crate::common::{TestEdge, header};
use std::net::Ipv4Addr;

fn ca_file(ca: &TestCa, name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("edgecache-ca-{}-{name}.pem", std::process::id()));
    std::fs::write(&p, ca.pem()).unwrap();
    p
}

fn site(origin: &str, keys: &str) -> String {
    format!("[[site]]\nname = \"tls\"\nhosts = [\"*\"]\norigin = \"{origin}\"\n{keys}\n")
}

#[tokio::test]
async fn an_origin_reached_by_address_is_verified_under_its_sni_name_against_the_ca_file() {
    let ca = TestCa::new();
    let origin = TlsOrigin::start(ca.server_config(&["origin.test"])).await;
    let ca_path = ca_file(&ca, "sni");
    let toml = site(
        &format!("https://{}", origin.addr),
        &format!(
            "origin_ca_file = \"{}\"\norigin_sni = \"origin.test\"",
            ca_path.display()
        ),
    );
    let edge = TestEdge::from_toml(&toml).await;
    let r = edge.get("/a").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-cache"), "MISS");
    assert_eq!(r.text().await.unwrap(), "over tls");
    let r = edge.get("/a").send().await.unwrap();
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert_eq!(origin.requests(), 1);
    assert_eq!(origin.names(), [Some("origin.test".to_string())]);
}

#[tokio::test]
async fn certificates_are_verified_refused_ones_give_502() {
    let ca = TestCa::new();
    let origin = TlsOrigin::start(ca.server_config(&["origin.test"])).await;
    let url = format!("https://{}", origin.addr);
    // Not signed by any of the system's roots.
    let edge = TestEdge::from_toml(&site(&url, "origin_sni = \"origin.test\"")).await;
    assert_eq!(edge.get("/b").send().await.unwrap().status(), 502);
    // Trusted, but not for the name asked (the address: the certificate names origin.test).
    let ca_path = ca_file(&ca, "ip");
    let keys = format!("origin_ca_file = \"{}\"", ca_path.display());
    let edge = TestEdge::from_toml(&site(&url, &keys)).await;
    assert_eq!(edge.get("/b").send().await.unwrap().status(), 502);
    // Another CA's file does not vouch for it either.
    let other = ca_file(&TestCa::new(), "other");
    let keys = format!(
        "origin_ca_file = \"{}\"\norigin_sni = \"origin.test\"",
        other.display()
    );
    let edge = TestEdge::from_toml(&site(&url, &keys)).await;
    assert_eq!(edge.get("/b").send().await.unwrap().status(), 502);
    assert_eq!(
        origin.requests(),
        0,
        "no request crossed an unverified connection"
    );
}

#[tokio::test]
async fn a_resolved_name_is_the_tls_name_of_each_of_its_members() {
    let ca = TestCa::new();
    let origin = TlsOrigin::start(ca.server_config(&["shop.test"])).await;
    let dns = TestDns::start(Zone::A {
        addrs: vec![Ipv4Addr::LOCALHOST],
        ttl: 60,
    })
    .await;
    let ca_path = ca_file(&ca, "named");
    let toml = format!(
        "[origin]\nresolver = [\"{}\"]\n{}",
        dns.addr,
        site(
            &format!("https://shop.test:{}", origin.addr.port()),
            &format!("origin_ca_file = \"{}\"", ca_path.display())
        )
    );
    let edge = TestEdge::from_toml(&toml).await;
    assert_eq!(edge.get("/c").send().await.unwrap().status(), 200);
    assert_eq!(origin.names(), [Some("shop.test".to_string())]);
    assert_eq!(dns.questions(), 1);
}
