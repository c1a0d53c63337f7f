//! A cap on the connections one peer holds, so that a single host cannot take every place under
//! the connection limit. A peer is an IPv4 address, or an IPv6 /64 (one subscriber's usual
//! allocation: a host owns all of it, so counting single IPv6 addresses would cap nothing).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// What the cap counts connections by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// One IPv4 address (IPv4-mapped IPv6 addresses included).
    V4(u32),
    /// The first 64 bits of an IPv6 address.
    V6(u64),
}

impl Peer {
    /// The peer `ip` belongs to.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.into()),
                None => Self::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Open connections per peer, limited to `max` each.
#[derive(Clone)]
pub struct PerPeer {
    max: usize,
    open: Arc<Mutex<HashMap<Peer, usize>>>,
}

/// One connection's place; dropping it gives the place back.
pub struct PeerPermit {
    peer: Peer,
    open: Arc<Mutex<HashMap<Peer, usize>>>,
}

impl PerPeer {
    /// Allows `max` connections per peer.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    /// A place for one more connection from `ip`, or `None` when its peer holds `max`.
    pub fn admit(&self, ip: IpAddr) -> Option<PeerPermit> {
        let peer = Peer::of(ip);
        // The map stays consistent through a panic elsewhere: every change is one statement.
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(peer).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(PeerPermit {
            peer,
            open: self.open.clone(),
        })
    }
}

impl Drop for PeerPermit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn each_peer_gets_its_own_places_and_gets_them_back() {
        let cap = PerPeer::new(2);
        let a1 = cap.admit(ip("192.0.2.1")).unwrap();
        let _a2 = cap.admit(ip("192.0.2.1")).unwrap();
        assert!(cap.admit(ip("192.0.2.1")).is_none());
        let _b = cap.admit(ip("192.0.2.2")).unwrap();
        drop(a1);
        assert!(cap.admit(ip("192.0.2.1")).is_some());
        drop(_b);
        assert!(
            !cap.open
                .lock()
                .unwrap()
                .contains_key(&Peer::of(ip("192.0.2.2")))
        );
    }

    #[test]
    fn an_ipv6_slash_64_is_one_peer_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            Peer::of(ip("2001:db8:1:2:aaaa::1")),
            Peer::of(ip("2001:db8:1:2:ffff:1:2:3"))
        );
        assert_ne!(
            Peer::of(ip("2001:db8:1:2::1")),
            Peer::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(Peer::of(ip("::ffff:192.0.2.7")), Peer::of(ip("192.0.2.7")));
    }
}
