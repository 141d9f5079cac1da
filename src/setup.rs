//! `kidsafe setup`: from a fresh install to a filtering LAN in one command. It finds this
//! machine's LAN addresses, sets `listen` to them, gives the parents' devices (by MAC or
//! address) the open profile and unknown devices a filtered one, checks the result with the
//! same checker as every load (lists included), writes it keeping every comment, and prints
//! the next steps for the router it finds (DHCP option 6, the firewall lines).
//!
//! Interactive on a terminal; with `--yes` (scripts, Ansible) it asks nothing and takes what
//! it detects for anything not given by a flag.

use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::config::edit::{self, SetupEdit};
use crate::config::{Config, parse_mac, parse_network};

/// Where the Debian package puts the example config that `setup` starts from when there is
/// no config yet.
pub const TEMPLATE: &str = "/usr/share/kidsafe/kidsafe.toml";

/// What `kidsafe setup` was told on its command line.
#[derive(Debug, Clone, Default)]
pub struct SetupOptions {
    /// The config file to write.
    pub config: PathBuf,
    /// The example to start from when `config` does not exist.
    pub template: PathBuf,
    /// Addresses to answer on (default: this machine's LAN addresses, port 53, and loopback).
    pub listen: Vec<SocketAddr>,
    /// The parents' devices: MACs, addresses or networks.
    pub parents: Vec<String>,
    /// The profile the parents' devices get (default: the first that does not block adult
    /// content, e.g. the example's `open`).
    pub parents_profile: Option<String>,
    /// The profile unknown devices get (default: the config's `[defaults] profile`).
    pub unknown_profile: Option<String>,
    /// Ask nothing.
    pub yes: bool,
}

/// Why setup wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A flag or an answer is wrong, or the config is invalid (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written (exit code 1).
    #[error("{0}")]
    Failed(String),
}

/// Runs setup; `answers` is where questions are answered (standard input), `interactive`
/// whether to ask at all. Returns what to tell the admin.
pub fn run(
    opts: &SetupOptions,
    answers: &mut dyn BufRead,
    interactive: bool,
) -> Result<String, SetupError> {
    let ask = |question: &str, answers: &mut dyn BufRead| -> Result<String, SetupError> {
        eprint!("{question} ");
        let mut line = String::new();
        answers
            .read_line(&mut line)
            .map_err(|e| SetupError::Failed(format!("cannot read the answer: {e}")))?;
        Ok(line.trim().to_string())
    };
    let (source, from) = match std::fs::read_to_string(&opts.config) {
        Ok(text) => (text, opts.config.clone()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = std::fs::read_to_string(&opts.template).map_err(|e| {
                SetupError::Failed(format!(
                    "{} does not exist and the example {} cannot be read: {e}",
                    opts.config.display(),
                    opts.template.display()
                ))
            })?;
            (text, opts.template.clone())
        }
        Err(e) => {
            return Err(SetupError::Failed(format!(
                "cannot read {}: {e}",
                opts.config.display()
            )));
        }
    };
    let current = Config::from_source(&opts.config, &source).map_err(|e| {
        SetupError::Usage(format!("{e}\nfix the config first, then run setup again"))
    })?;
    let profiles: Vec<&str> = current.profiles.iter().map(|p| p.name.as_str()).collect();
    let known = |name: &str, flag: &str| {
        if profiles.contains(&name) {
            Ok(name.to_string())
        } else {
            Err(SetupError::Usage(format!(
                "{flag} {name:?}: no such profile; the config has {}",
                profiles.join(", ")
            )))
        }
    };

    // Where to answer: this machine's LAN addresses, and loopback for the machine itself.
    let mut listen = opts.listen.clone();
    let mut notes = Vec::new();
    if listen.is_empty() {
        let lan = lan_addresses();
        if lan.is_empty() {
            notes.push(
                "no LAN address found on this machine: `listen` is unchanged; add the address \
                 devices will use, e.g. --listen 192.168.1.1:53"
                    .to_string(),
            );
        } else {
            listen = lan.into_iter().map(|ip| SocketAddr::new(ip, 53)).collect();
            listen.push(SocketAddr::from(([127, 0, 0, 1], 53)));
        }
    }

    // The parents' devices.
    let mut parents = opts.parents.clone();
    if parents.is_empty() && interactive {
        let answer = ask(
            "The parents' own phones and computers get the open profile. Their MAC addresses \
             or fixed addresses, separated by commas (Enter: none for now):",
            answers,
        )?;
        parents = answer
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }
    for device in &parents {
        if parse_mac(device).is_none() && parse_network(device).is_err() {
            return Err(SetupError::Usage(format!(
                "{device:?} is neither a MAC address (aa:bb:cc:dd:ee:ff) nor an IP address or \
                 network (192.168.1.7, 192.168.1.0/24)"
            )));
        }
    }
    let parents_profile = match &opts.parents_profile {
        Some(name) => Some(known(name, "--parents-profile")?),
        None if parents.is_empty() => None,
        None => Some(
            current
                .profiles
                .iter()
                .find(|p| !p.allowlist_mode && !p.block.iter().any(|c| c.value == "adult"))
                .map(|p| p.name.clone())
                .ok_or_else(|| {
                    SetupError::Usage(format!(
                        "every profile blocks adult content: name the parents' one with \
                         --parents-profile (profiles: {})",
                        profiles.join(", ")
                    ))
                })?,
        ),
    };

    // Unknown devices.
    let default_now = current
        .profiles
        .get(current.default_profile)
        .map_or("", |p| p.name.as_str());
    let unknown = match &opts.unknown_profile {
        Some(name) => known(name, "--unknown-profile")?,
        None if interactive => {
            let answer = ask(
                &format!(
                    "Devices nobody named (a child's new phone, a guest) get which profile? \
                     ({}; Enter: {default_now}):",
                    profiles.join(", ")
                ),
                answers,
            )?;
            if answer.is_empty() {
                default_now.to_string()
            } else {
                known(&answer, "profile")?
            }
        }
        None => default_now.to_string(),
    };

    let edit = SetupEdit {
        listen: listen.clone(),
        default_profile: Some(unknown.clone()),
        parents: parents_profile.clone().map(|p| (parents.clone(), p)),
    };
    let text = edit::apply(&source, &edit).map_err(SetupError::Usage)?;
    let config =
        Config::from_source(&opts.config, &text).map_err(|e| SetupError::Usage(e.to_string()))?;
    let foreign = crate::server::foreign_listen_addresses(&config.server.listen);
    if !foreign.is_empty() {
        let list: Vec<String> = foreign.iter().map(ToString::to_string).collect();
        return Err(SetupError::Usage(format!(
            "{} not an address of this machine; give --listen one of its addresses",
            list.join(", ") + if list.len() == 1 { " is" } else { " are" }
        )));
    }
    write_checked(&opts.config, &text)?;

    let mut out = format!(
        "wrote {} (from {}), checked with its lists\n",
        opts.config.display(),
        from.display()
    );
    let shown: Vec<String> = config
        .server
        .listen
        .iter()
        .map(ToString::to_string)
        .collect();
    out.push_str(&format!("  listen          {}\n", shown.join(", ")));
    out.push_str(&format!("  unknown devices profile {unknown}\n"));
    match &parents_profile {
        Some(p) => out.push_str(&format!(
            "  parents' devices {} -> profile {p}\n",
            parents.join(", ")
        )),
        None => out.push_str("  parents' devices none yet (run setup again with --parents)\n"),
    }
    for note in notes {
        out.push_str(&format!("note: {note}\n"));
    }
    let dns = config
        .server
        .listen
        .iter()
        .map(SocketAddr::ip)
        .find(|ip| !ip.is_loopback() && !ip.is_unspecified());
    out.push_str(&next_steps(dns, Path::new("/")));
    Ok(out)
}

/// Writes `text` to `path` only once the daemon's own build accepts it (lists included):
/// first to a temporary file beside it, which is then renamed over the old one.
fn write_checked(path: &Path, text: &str) -> Result<(), SetupError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| SetupError::Failed(format!("cannot create {}: {e}", dir.display())))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".kidsafe-setup-")
        .suffix(".toml")
        .tempfile_in(dir)
        .map_err(|e| SetupError::Failed(format!("cannot write in {}: {e}", dir.display())))?;
    std::io::Write::write_all(&mut temp, text.as_bytes())
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|e| SetupError::Failed(format!("cannot write in {}: {e}", dir.display())))?;
    crate::reload::load_offline(temp.path()).map_err(|e| {
        SetupError::Usage(format!(
            "the new config does not build, nothing written: {e}"
        ))
    })?;
    temp.persist(path)
        .map_err(|e| SetupError::Failed(format!("cannot write {}: {}", path.display(), e.error)))?;
    Ok(())
}

/// This machine's LAN addresses (private IPv4, unique-local IPv6), from `ip -o address`.
pub fn lan_addresses() -> Vec<IpAddr> {
    let Ok(out) = std::process::Command::new("ip")
        .args(["-o", "address", "show", "scope", "global"])
        .output()
    else {
        return Vec::new();
    };
    parse_ip_address(&String::from_utf8_lossy(&out.stdout))
}

/// The private and unique-local addresses in `ip -o address` output.
pub fn parse_ip_address(text: &str) -> Vec<IpAddr> {
    let mut found = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            if pair[0] != "inet" && pair[0] != "inet6" {
                continue;
            }
            let Some(Ok(ip)) = pair[1].split('/').next().map(str::parse::<IpAddr>) else {
                continue;
            };
            let lan = match ip {
                IpAddr::V4(v4) => v4.is_private(),
                IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
            };
            if lan && !found.contains(&ip) {
                found.push(ip);
            }
        }
    }
    found
}

/// What to do next, for the router found under `root` (OpenWrt, dnsmasq, or any other).
pub fn next_steps(dns: Option<IpAddr>, root: &Path) -> String {
    let addr = dns.map_or_else(
        || "THIS-MACHINE'S-LAN-ADDRESS".to_string(),
        |ip| ip.to_string(),
    );
    let mut out = String::from("\nNext steps\n");
    out.push_str("1. Tell the devices to use kidsafe (DHCP option 6, DNS server):\n");
    if root.join("etc/openwrt_release").exists() {
        out.push_str(&format!(
            "     uci add_list dhcp.lan.dhcp_option='6,{addr}' && uci commit dhcp && /etc/init.d/dnsmasq restart\n"
        ));
    } else if root.join("etc/dnsmasq.conf").exists() {
        out.push_str(&format!(
            "     echo 'dhcp-option=option:dns-server,{addr}' >> /etc/dnsmasq.conf && systemctl restart dnsmasq\n"
        ));
    } else {
        out.push_str(&format!(
            "     in the router's DHCP (LAN) settings, set the DNS server to {addr}\n"
        ));
    }
    out.push_str(
        "2. Keep devices from using another resolver (on the router; nftables):\n\
         \x20    nft add rule inet filter forward udp dport 53 drop\n\
         \x20    nft add rule inet filter forward tcp dport 53 drop\n\
         \x20    nft add rule inet filter forward tcp dport 853 drop    # DNS over TLS\n",
    );
    out.push_str(
        "3. Start it: systemctl enable --now kidsafe   (after an edit: systemctl reload kidsafe)\n",
    );
    out.push_str("   docs: /usr/share/doc/kidsafe/install.md\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_addresses_come_from_ip_address_output() {
        let text = "2: eth0    inet 192.168.1.1/24 brd 192.168.1.255 scope global eth0\\       valid_lft forever\n\
                    2: eth0    inet6 fd00::1/64 scope global \\       valid_lft forever\n\
                    3: wan0    inet 203.0.113.9/24 scope global wan0\n\
                    3: wan0    inet6 2001:db8::9/64 scope global\n";
        assert_eq!(
            parse_ip_address(text),
            vec![
                "192.168.1.1".parse::<IpAddr>().expect("ip"),
                "fd00::1".parse().expect("ip")
            ]
        );
    }

    #[test]
    fn next_steps_follow_the_router() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ip = Some("192.168.1.1".parse().expect("ip"));
        assert!(
            next_steps(ip, dir.path())
                .contains("in the router's DHCP (LAN) settings, set the DNS server to 192.168.1.1")
        );
        std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
        std::fs::write(
            dir.path().join("etc/openwrt_release"),
            "DISTRIB_ID='OpenWrt'\n",
        )
        .expect("write");
        assert!(
            next_steps(ip, dir.path())
                .contains("uci add_list dhcp.lan.dhcp_option='6,192.168.1.1'")
        );
    }
}
