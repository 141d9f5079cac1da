//! Checks of `[server]`, `[upstream]`, `[cache]`, `[feed]` and `[[lists.sources]]`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::rr::{LowerName, Name};
use toml::Spanned;

use super::super::raw::*;
use super::super::settings::*;
use super::Checker;
use super::parse_upstream;
use crate::config::Location;

impl Checker<'_> {
    pub(super) fn http_url(&mut self, value: &Spanned<String>, key: &str) -> Option<String> {
        let text = value.get_ref().trim();
        let ok = ["https://", "http://"].iter().any(|scheme| {
            text.len() > scheme.len()
                && text[..scheme.len()].eq_ignore_ascii_case(scheme)
                && !text.contains(char::is_whitespace)
        });
        if ok {
            Some(text.to_string())
        } else {
            self.problem(
                value,
                key,
                "not an http:// or https:// address; write e.g. \"https://feed.example.al/nfeed/v1/al.kids/\"",
            );
            None
        }
    }

    pub(super) fn check_feed(&mut self, f: &FeedConfig) -> Option<FeedSettings> {
        let url = self.http_url(&f.url, "feed.url").map(|mut u| {
            if !u.ends_with('/') {
                u.push('/');
            }
            u
        });
        let keys = f.public_key.get_ref().values();
        if keys.is_empty() {
            self.problem(
                &f.public_key,
                "feed.public_key",
                "needs the publisher's public key, e.g. \"RWQ…\" (from `kidsafe feed keygen` or `minisign -G`)",
            );
        }
        let public_keys = Located {
            value: keys,
            at: Location::of_offset(self.source, f.public_key.span().start),
            key: "feed.public_key".to_string(),
        };
        let refresh = self.duration(
            &f.refresh,
            "feed.refresh",
            Duration::from_secs(60),
            Duration::from_secs(7 * 86_400),
        );
        let timeout = self.duration(
            &f.timeout,
            "feed.timeout",
            Duration::from_secs(1),
            Duration::from_secs(3600),
        );
        let feed_id = f.feed_id.as_ref().map(|id| id.get_ref().trim().to_string());
        let baseline = f
            .baseline
            .iter()
            .map(|d| self.resolve(d.get_ref()))
            .collect();
        Some(FeedSettings {
            url: url?,
            public_keys,
            feed_id,
            refresh: refresh?,
            baseline,
            timeout: timeout?,
        })
    }

    pub(super) fn check_sources(&mut self, sources: &[SourceConfig]) -> Vec<SourceSettings> {
        let mut out = Vec::new();
        for (i, s) in sources.iter().enumerate() {
            let key = format!("lists.sources[{i}]");
            let url = self.http_url(&s.url, &format!("{key}.url"));
            let refresh = self.duration(
                &s.refresh,
                &format!("{key}.refresh"),
                Duration::from_secs(60),
                Duration::from_secs(30 * 86_400),
            );
            let canonical = crate::category::canonical_name(s.category.get_ref());
            if !crate::category::is_valid_name(&canonical) {
                self.problem(
                    &s.category,
                    format!("{key}.category"),
                    "not a category name; write e.g. \"adult\" or \"gambling\"",
                );
                continue;
            }
            if let (Some(url), Some(refresh)) = (url, refresh) {
                out.push(SourceSettings {
                    category: Located {
                        value: canonical,
                        at: Location::of_offset(self.source, s.category.span().start),
                        key: format!("{key}.category"),
                    },
                    url,
                    refresh,
                });
            }
        }
        out
    }

    pub(super) fn check_server(&mut self, s: &ServerConfig) -> Option<ServerSettings> {
        let mut listen = Vec::new();
        if s.listen.get_ref().is_empty() {
            self.problem(&s.listen, "server.listen", "needs at least one address");
        }
        for (i, addr) in s.listen.get_ref().iter().enumerate() {
            match addr.get_ref().parse::<SocketAddr>() {
                Ok(a) => listen.push(a),
                Err(_) => self.problem(
                    addr,
                    format!("server.listen[{i}]"),
                    "not an address with a port; write \"127.0.0.1:53\" or \"[::1]:53\"",
                ),
            }
        }
        let allow_clients = self.networks(&s.allow_clients, "server.allow_clients");
        let block_response = match s.block_response.get_ref().as_str() {
            "nxdomain" => Some(BlockResponse::NxDomain),
            "null-ip" => Some(BlockResponse::NullIp),
            "nodata" => Some(BlockResponse::NoData),
            "refused" => Some(BlockResponse::Refused),
            other => match other.parse::<IpAddr>() {
                Ok(ip) => Some(BlockResponse::Address(ip)),
                Err(_) => {
                    self.problem(
                        &s.block_response,
                        "server.block_response",
                        "must be \"nxdomain\", \"null-ip\", \"nodata\", \"refused\" or an IP address",
                    );
                    None
                }
            },
        };
        let block_ttl = self.seconds(
            &s.block_ttl,
            "server.block_ttl",
            Duration::from_secs(86_400),
        );
        let max_in_flight = self.bounded(&s.max_in_flight, "server.max_in_flight", 16, 1_000_000);
        let tcp_idle_timeout = self.duration(
            &s.tcp_idle_timeout,
            "server.tcp_idle_timeout",
            Duration::from_millis(100),
            Duration::from_secs(600),
        );
        let tcp_connections = self.bounded(&s.tcp_connections, "server.tcp_connections", 1, 65_535);
        let timezone = match &s.timezone {
            None => Some(jiff::tz::TimeZone::system()),
            Some(name) => match jiff::tz::TimeZone::get(name.get_ref()) {
                Ok(tz) => Some(tz),
                Err(_) => {
                    self.problem(
                        name,
                        "server.timezone",
                        "not an IANA time zone name; write e.g. \"Europe/Tirane\" or \"UTC\"",
                    );
                    None
                }
            },
        };
        let neighbour_tables = s
            .neighbour_tables
            .iter()
            .map(|t| match t.get_ref().as_str() {
                crate::config::IP_NEIGH => PathBuf::from(crate::config::IP_NEIGH),
                other => self.resolve(other),
            })
            .collect();
        let rate_limit = *s.rate_limit.get_ref();
        if rate_limit > 1_000_000 {
            self.problem(
                &s.rate_limit,
                "server.rate_limit",
                "must be at most 1000000 queries per second (0 turns the limit off)",
            );
        }
        let rate_burst = match &s.rate_burst {
            Some(b) if !(1..=1_000_000).contains(b.get_ref()) => {
                self.problem(
                    b,
                    "server.rate_burst",
                    "must be between 1 and 1000000 queries",
                );
                None
            }
            Some(b) => Some(*b.get_ref()),
            None => Some(rate_limit.saturating_mul(2).max(1)),
        };
        Some(ServerSettings {
            timezone: timezone?,
            neighbour_tables,
            listen,
            allow_clients,
            block_response: block_response?,
            block_ttl: block_ttl?,
            state_dir: self.resolve(&s.state_dir),
            threads: s.threads,
            max_in_flight: max_in_flight?,
            tcp_idle_timeout: tcp_idle_timeout?,
            tcp_connections: tcp_connections?,
            rate_limit,
            rate_burst: rate_burst?,
        })
    }

    pub(super) fn check_upstream(&mut self, u: &UpstreamConfig) -> Option<UpstreamSettings> {
        if u.servers.get_ref().is_empty() {
            self.problem(
                &u.servers,
                "upstream.servers",
                "needs at least one resolver, e.g. [\"9.9.9.9:53\"]",
            );
        }
        let mut servers = Vec::new();
        for (i, s) in u.servers.get_ref().iter().enumerate() {
            match parse_upstream(s.get_ref()) {
                Ok(server) => servers.push(server),
                Err(msg) => self.problem(s, format!("upstream.servers[{i}]"), msg),
            }
        }
        let tls_ca_file = u.tls_ca_file.as_ref().map(|f| {
            let located = self.locate(f, "upstream.tls_ca_file".into());
            Located {
                value: self.resolve(&located.value),
                at: located.at,
                key: located.key,
            }
        });
        let timeout = self.duration(
            &u.timeout,
            "upstream.timeout",
            Duration::from_millis(100),
            Duration::from_secs(30),
        );
        let max_in_flight = self.bounded(&u.max_in_flight, "upstream.max_in_flight", 1, 65_535);
        let strategy = match u.strategy.get_ref().as_str() {
            "failover" => Some(Strategy::Failover),
            "fastest" => Some(Strategy::Fastest),
            _ => {
                self.problem(
                    &u.strategy,
                    "upstream.strategy",
                    "must be \"failover\" (upstreams in the order written) or \"fastest\" (the quickest to answer first)",
                );
                None
            }
        };
        let rebind_allow = self
            .rules(&u.rebind_allow, "upstream.rebind_allow")
            .iter()
            .filter_map(|r| {
                Name::from_ascii(format!("{}.", r.name))
                    .ok()
                    .map(LowerName::from)
            })
            .collect();
        Some(UpstreamSettings {
            servers,
            tls_ca_file,
            timeout: timeout?,
            max_in_flight: max_in_flight?,
            strategy: strategy?,
            rebind_protection: u.rebind_protection,
            rebind_allow,
        })
    }

    pub(super) fn check_cache(&mut self, c: &CacheConfig) -> Option<CacheSettings> {
        let entries = self.bounded(&c.entries, "cache.entries", 0, 10_000_000);
        let week = Duration::from_secs(7 * 86_400);
        let max_ttl = self.seconds(&c.max_ttl, "cache.max_ttl", week);
        let max_negative_ttl = self.seconds(&c.max_negative_ttl, "cache.max_negative_ttl", week);
        let serve_stale = self.duration(&c.serve_stale, "cache.serve_stale", Duration::ZERO, week);
        Some(CacheSettings {
            entries: entries?,
            max_ttl: max_ttl?,
            max_negative_ttl: max_negative_ttl?,
            serve_stale: serve_stale?,
            prefetch: c.prefetch,
        })
    }
}
