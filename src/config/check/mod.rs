//! The checker: raw schema in, validated settings out, every problem recorded with its
//! file:line:column and key path (never only the first). One file per group of sections.

mod profiles;
mod server;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::raw::*;
use super::settings::*;
use super::{Location, Problems};

/// Checks a parsed file; the config is None only when a problem was recorded.
pub(super) fn validate(path: &Path, source: &str, file: FileConfig) -> (Option<Config>, Problems) {
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut checker = Checker {
        source,
        base,
        problems: Problems::default(),
    };
    let config = checker.check(path, file);
    (config, checker.problems)
}

pub(super) struct Checker<'s> {
    source: &'s str,
    base: PathBuf,
    problems: Problems,
}

impl Checker<'_> {
    fn problem<T>(
        &mut self,
        value: &Spanned<T>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.problems
            .at_span(self.source, value.span(), key, message);
    }

    fn locate<T: Clone>(&self, value: &Spanned<T>, key: String) -> Located<T> {
        Located {
            value: value.get_ref().clone(),
            at: Location::of_offset(self.source, value.span().start),
            key,
        }
    }

    fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn check(&mut self, path: &Path, file: FileConfig) -> Option<Config> {
        let server = self.check_server(&file.server);
        let upstream = self.check_upstream(&file.upstream);
        let cache = self.check_cache(&file.cache);
        let list_dirs = file
            .lists
            .dirs
            .iter()
            .map(|d| self.resolve(d.get_ref()))
            .collect();
        let global_allow = self.rules(&file.lists.allow, "lists.allow");
        let log_level = file.log.level.get_ref().to_ascii_lowercase();
        if !["error", "warn", "info", "debug", "trace"].contains(&log_level.as_str()) {
            self.problem(
                &file.log.level,
                "log.level",
                "must be one of \"error\", \"warn\", \"info\", \"debug\", \"trace\"",
            );
        }

        let flush = self.duration(
            &file.stats.flush,
            "stats.flush",
            Duration::from_secs(1),
            Duration::from_secs(3600),
        );
        let retention = *file.stats.retention_days.get_ref();
        if !(1..=3650).contains(&retention) {
            self.problem(
                &file.stats.retention_days,
                "stats.retention_days",
                "must be between 1 and 3650",
            );
        }
        let metrics_listen =
            file.metrics
                .listen
                .as_ref()
                .and_then(|l| match l.get_ref().parse::<SocketAddr>() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        self.problem(
                            l,
                            "metrics.listen",
                            "not an address with a port; write \"127.0.0.1:9153\"",
                        );
                        None
                    }
                });

        let profiles = self.check_profiles(&file.profiles);
        let names: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
        let default_profile = self.profile_ref(&names, &file.defaults.profile, "defaults.profile");
        let clients = self.check_clients(&names, &file.clients);
        // Every section is checked before any early return, so that a problem in `[feed]`
        // never hides one in `[[lists.sources]]` (every problem at once, always).
        let feed = file.feed.as_ref().map(|f| self.check_feed(f));
        let sources = self.check_sources(&file.lists.sources);
        let feed = match feed {
            Some(checked) => Some(checked?),
            None => None,
        };

        Some(Config {
            path: path.to_path_buf(),
            server: server?,
            upstream: upstream?,
            cache: cache?,
            list_dirs,
            global_allow,
            log_level,
            stats: StatsSettings {
                enabled: file.stats.enabled,
                flush: flush?,
                retention_days: retention,
                by_client: file.stats.by_client,
            },
            metrics_listen,
            default_profile: default_profile?,
            profiles,
            clients,
            feed,
            sources,
        })
    }

    fn duration(
        &mut self,
        value: &Spanned<String>,
        key: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        match humantime::parse_duration(value.get_ref()) {
            Ok(d) if d >= min && d <= max => Some(d),
            Ok(_) => {
                self.problem(
                    value,
                    key,
                    format!(
                        "must be between {} and {}",
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                );
                None
            }
            Err(e) => {
                self.problem(
                    value,
                    key,
                    format!("not a duration ({e}); write e.g. \"2s\", \"500ms\", \"1h\""),
                );
                None
            }
        }
    }

    fn seconds(&mut self, value: &Spanned<String>, key: &str, max: Duration) -> Option<u32> {
        let d = self.duration(value, key, Duration::from_secs(1), max)?;
        u32::try_from(d.as_secs()).ok()
    }

    fn bounded(
        &mut self,
        value: &Spanned<usize>,
        key: &str,
        min: usize,
        max: usize,
    ) -> Option<usize> {
        let v = *value.get_ref();
        if (min..=max).contains(&v) {
            Some(v)
        } else {
            self.problem(value, key, format!("must be between {min} and {max}"));
            None
        }
    }

    fn networks(&mut self, values: &[Spanned<String>], key: &str) -> Vec<IpNet> {
        let mut nets = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            match parse_network(v.get_ref()) {
                Ok(net) => nets.push(net),
                Err(msg) => self.problem(v, format!("{key}[{i}]"), msg),
            }
        }
        nets
    }
}

fn is_profile_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses `"192.168.1.7"` (a host) or `"192.168.1.32/27"` (a network). Host bits set in a network
/// are an error, because `10.0.0.5/24` usually means the writer meant something else.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    match text.parse::<IpNet>() {
        Ok(net) if net.trunc() == net => Ok(net),
        Ok(net) => Err(format!(
            "host bits are set in {text}; did you mean {}?",
            net.trunc()
        )),
        Err(_) => Err(format!(
            "\"{text}\" is not an IP address or network; write e.g. \"192.168.1.7\" or \"192.168.1.0/24\""
        )),
    }
}

/// Parses an upstream: `ip:port` or `ip` (port 53), optionally after `udp://` or `tcp://`,
/// `tls://ip[:port][#name]` (port 853), or DNS over HTTPS (port 443):
/// `https://ip[:port]/path[#name]` or `https://name[:port]/path#ip`.
pub fn parse_upstream(text: &str) -> Result<UpstreamServer, String> {
    let (scheme, rest) = text.split_once("://").unwrap_or(("udp", text));
    let example =
        "write e.g. \"9.9.9.9:53\", \"tcp://9.9.9.9\" or \"tls://9.9.9.9:853#dns.quad9.net\"";
    match scheme {
        "udp" | "tcp" => {
            let addr = socket_addr(rest, 53)
                .ok_or_else(|| format!("\"{text}\" is not a resolver address; {example}"))?;
            Ok(if scheme == "udp" {
                UpstreamServer::Udp(addr)
            } else {
                UpstreamServer::Tcp(addr)
            })
        }
        "tls" => {
            let (at, name) = match rest.split_once('#') {
                Some((at, name)) => (at, Some(name)),
                None => (rest, None),
            };
            let addr = socket_addr(at, 853).ok_or_else(|| {
                format!(
                    "\"{text}\": a TLS upstream needs an IP address (kidsafe may be this machine's own resolver, so it cannot look the name up); write e.g. \"tls://9.9.9.9:853#dns.quad9.net\""
                )
            })?;
            let name = match name {
                Some(n) if rustls::pki_types::ServerName::try_from(n).is_ok() && !n.is_empty() => {
                    n.to_string()
                }
                Some(n) => {
                    return Err(format!(
                        "\"{n}\" is not a name a certificate can be checked against; write e.g. \"tls://9.9.9.9:853#dns.quad9.net\""
                    ));
                }
                None => addr.ip().to_string(),
            };
            Ok(UpstreamServer::Tls { addr, name })
        }
        "https" => parse_https(text, rest),
        other => Err(format!("unknown upstream scheme \"{other}://\"; {example}")),
    }
}

/// `https://ip[:port]/path[#name]` (the certificate is checked against `name`, or the IP
/// without one) or `https://name[:port]/path#ip` (the IP is the bootstrap address). Either
/// way the address is written down: a DoH upstream's name is never looked up, because the
/// system resolver of a router is kidsafe itself.
fn parse_https(text: &str, rest: &str) -> Result<UpstreamServer, String> {
    let example = "write e.g. \"https://9.9.9.9/dns-query#dns.quad9.net\" or \"https://dns.quad9.net/dns-query#9.9.9.9\"";
    let (url, fragment) = match rest.split_once('#') {
        Some((url, f)) => (url, Some(f)),
        None => (rest, None),
    };
    let (authority, path) = match url.find('/') {
        Some(i) => url.split_at(i),
        None => (url, "/dns-query"),
    };
    if path.contains(['?', ' ']) || path.is_empty() {
        return Err(format!(
            "\"{text}\": the path must be a plain path such as \"/dns-query\" (queries are sent by POST); {example}"
        ));
    }
    let bad_name =
        |n: &str| format!("\"{n}\" is not a name a certificate can be checked against; {example}");
    let valid_name = |n: &str| !n.is_empty() && rustls::pki_types::ServerName::try_from(n).is_ok();
    if let Some(addr) = socket_addr(authority, 443) {
        // The IP is in the URL; the fragment, if any, is the certificate's name.
        let name = match fragment {
            Some(n) if valid_name(n) => n.to_string(),
            Some(n) => return Err(bad_name(n)),
            None => addr.ip().to_string(),
        };
        return Ok(UpstreamServer::Https {
            addr,
            name,
            path: path.to_string(),
        });
    }
    // A host name in the URL: the fragment must be the address to connect to.
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("\"{text}\": \"{p}\" is not a port; {example}"))?,
        ),
        None => (authority, 443),
    };
    if !valid_name(host) {
        return Err(bad_name(host));
    }
    let Some(ip) = fragment.and_then(|f| f.parse::<IpAddr>().ok()) else {
        return Err(format!(
            "\"{text}\": a DoH upstream written with a host name needs its IP address after \"#\" (kidsafe may be this machine's own resolver, so it cannot look the name up); {example}"
        ));
    };
    Ok(UpstreamServer::Https {
        addr: SocketAddr::new(ip, port),
        name: host.to_string(),
        path: path.to_string(),
    })
}

/// `ip:port`, or `ip` with `default_port` (IPv6 as `[::1]:53` or bare `::1`).
fn socket_addr(text: &str, default_port: u16) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, default_port))
}
