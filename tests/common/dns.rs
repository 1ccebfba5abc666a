//! A tiny authoritative DNS server on 127.0.0.1 (UDP): answers every A question with the
//! addresses and TTL it is set to (or SERVFAIL), AAAA with none, and counts the questions, so
//! tests can see when the edge asks.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};
use tokio::net::UdpSocket;

/// What the server answers.
#[derive(Debug, Clone)]
pub enum Zone {
    A { addrs: Vec<Ipv4Addr>, ttl: u32 },
    ServFail,
}

pub struct TestDns {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    questions: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TestDns {
    pub async fn start(zone: Zone) -> TestDns {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let zone = Arc::new(Mutex::new(zone));
        let questions = Arc::new(AtomicUsize::new(0));
        let (z, q) = (zone.clone(), questions.clone());
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let Some(reply) = answer(&buf[..n], &z.lock().unwrap().clone(), &q) else {
                    continue;
                };
                let _ = sock.send_to(&reply, from).await;
            }
        });
        TestDns {
            addr,
            zone,
            questions,
            task,
        }
    }

    pub fn set(&self, zone: Zone) {
        *self.zone.lock().unwrap() = zone;
    }

    /// A questions asked so far.
    pub fn questions(&self) -> usize {
        self.questions.load(Ordering::SeqCst)
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The reply to one query, or `None` for what is not a query with one question.
fn answer(q: &[u8], zone: &Zone, questions: &AtomicUsize) -> Option<Vec<u8>> {
    if q.len() < 12 || q[2] & 0x80 != 0 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut end = 12;
    while *q.get(end)? != 0 {
        end += 1 + usize::from(q[end]);
    }
    end += 1;
    let qtype = u16::from_be_bytes([*q.get(end)?, *q.get(end + 1)?]);
    end += 4;
    if end > q.len() {
        return None;
    }
    let a = qtype == 1;
    if a {
        questions.fetch_add(1, Ordering::SeqCst);
    }
    let (rcode, records): (u8, Vec<(Ipv4Addr, u32)>) = match zone {
        Zone::ServFail => (2, Vec::new()),
        Zone::A { addrs, ttl } if a => (0, addrs.iter().map(|&ip| (ip, *ttl)).collect()),
        Zone::A { .. } => (0, Vec::new()),
    };
    let mut r = Vec::with_capacity(end + 16 * records.len());
    r.extend_from_slice(&q[0..2]);
    // QR, authoritative, the query's RD, RA; the rcode.
    r.push(0x84 | (q[2] & 0x01));
    r.push(0x80 | rcode);
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&(records.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&q[12..end]);
    for (ip, ttl) in records {
        // The name by pointer to the question's, type A, class IN.
        r.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
        r.extend_from_slice(&ttl.to_be_bytes());
        r.extend_from_slice(&[0, 4]);
        r.extend_from_slice(&ip.octets());
    }
    Some(r)
}
