//! Longest-prefix matching of client addresses, for `allow_clients` and `[[clients]]` rules.
//!
//! Networks are grouped by prefix length; a lookup masks the address once per length present
//! (longest first) and probes a hash map, so its cost depends on how many distinct lengths a
//! config uses (a handful), not on how many networks it lists (a school may list thousands).

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

/// Networks mapped to values; the longest matching prefix wins.
#[derive(Debug, Clone)]
pub struct PrefixMap<T> {
    v4: Vec<(u8, HashMap<u32, T>)>,
    v6: Vec<(u8, HashMap<u128, T>)>,
}

impl<T> Default for PrefixMap<T> {
    fn default() -> Self {
        Self {
            v4: Vec::new(),
            v6: Vec::new(),
        }
    }
}

impl<T: Clone> PrefixMap<T> {
    /// Adds a network; a network added twice keeps its first value.
    pub fn insert(&mut self, net: IpNet, value: T) {
        match net {
            IpNet::V4(n) => {
                let key = u32::from(n.network());
                insert_group(&mut self.v4, n.prefix_len(), key, value);
            }
            IpNet::V6(n) => {
                let key = u128::from(n.network());
                insert_group(&mut self.v6, n.prefix_len(), key, value);
            }
        }
    }

    /// The value of the longest network holding `ip`. IPv4-mapped IPv6 addresses
    /// (`::ffff:10.0.5.7`) match IPv4 rules, as a dual-stack socket reports them.
    pub fn get(&self, ip: IpAddr) -> Option<&T> {
        match ip {
            IpAddr::V4(v4) => lookup(&self.v4, u32::from(v4), 32),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => lookup(&self.v4, u32::from(v4), 32),
                None => lookup(&self.v6, u128::from(v6), 128),
            },
        }
    }

    /// Whether any network holds `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.get(ip).is_some()
    }
}

fn insert_group<K, T>(groups: &mut Vec<(u8, HashMap<K, T>)>, len: u8, key: K, value: T)
where
    K: std::hash::Hash + Eq,
{
    match groups.iter_mut().find(|(l, _)| *l == len) {
        Some((_, map)) => {
            map.entry(key).or_insert(value);
        }
        None => {
            groups.push((len, HashMap::from([(key, value)])));
            groups.sort_by_key(|g| std::cmp::Reverse(g.0));
        }
    }
}

fn lookup<K, T>(groups: &[(u8, HashMap<K, T>)], addr: K, bits: u32) -> Option<&T>
where
    K: Copy + std::hash::Hash + Eq + Mask,
{
    groups
        .iter()
        .find_map(|(len, map)| map.get(&addr.mask(u32::from(*len), bits)))
}

/// Clearing host bits, for both address widths.
trait Mask {
    fn mask(self, len: u32, bits: u32) -> Self;
}

impl Mask for u32 {
    fn mask(self, len: u32, bits: u32) -> Self {
        if len == 0 {
            0
        } else {
            self & (u32::MAX << (bits - len))
        }
    }
}

impl Mask for u128 {
    fn mask(self, len: u32, bits: u32) -> Self {
        if len == 0 {
            0
        } else {
            self & (u128::MAX << (bits - len))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        crate::config::parse_network(s).expect("network")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn longest_prefix_wins() {
        let mut map = PrefixMap::default();
        map.insert(net("10.0.0.0/16"), "adult");
        map.insert(net("10.0.5.0/24"), "kids");
        map.insert(net("10.0.5.7"), "one");
        map.insert(net("0.0.0.0/0"), "any");
        map.insert(net("fd00::/8"), "v6");
        assert_eq!(map.get(ip("10.0.5.7")), Some(&"one"));
        assert_eq!(map.get(ip("10.0.5.8")), Some(&"kids"));
        assert_eq!(map.get(ip("10.0.6.1")), Some(&"adult"));
        assert_eq!(map.get(ip("192.0.2.1")), Some(&"any"));
        assert_eq!(map.get(ip("::ffff:10.0.5.9")), Some(&"kids"));
        assert_eq!(map.get(ip("fd12::1")), Some(&"v6"));
        assert_eq!(map.get(ip("2001:db8::1")), None);
    }

    #[test]
    fn first_insert_of_a_network_is_kept() {
        let mut map = PrefixMap::default();
        map.insert(net("192.168.1.0/24"), 1);
        map.insert(net("192.168.1.0/24"), 2);
        assert_eq!(map.get(ip("192.168.1.1")), Some(&1));
    }
}
