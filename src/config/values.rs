//! Small value types a config holds: device MAC addresses, the neighbour-table command, the
//! YouTube restriction level.

/// A MAC address.
pub type Mac = [u8; 6];

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
pub fn parse_mac(text: &str) -> Option<Mac> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (slot, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return None;
        }
        *slot = u8::from_str_radix(part, 16).ok()?;
    }
    Some(mac)
}

/// The `neighbour_tables` entry that means "ask the kernel with `ip neigh show`" (the only way
/// to read IPv6 neighbours without netlink code of our own).
pub const IP_NEIGH: &str = "ip neigh";

/// YouTube restriction level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YouTube {
    /// No rewrite.
    Off,
    /// restrictmoderate.youtube.com.
    Moderate,
    /// restrict.youtube.com.
    Strict,
}
