//! The validated config: what the rest of kidsafe reads, every value checked and every
//! path resolved.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::rr::LowerName;
use ipnet::IpNet;

use super::raw::*;
use super::{ConfigError, Location, Problems, key_path_at};

/// How a blocked name is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockResponse {
    /// NXDOMAIN with a synthetic SOA.
    NxDomain,
    /// `0.0.0.0` for A, `::` for AAAA, NODATA for other types.
    NullIp,
    /// NOERROR with no answer and a synthetic SOA.
    NoData,
    /// REFUSED.
    Refused,
    /// This address for its own family; NODATA for the other family and other types.
    Address(IpAddr),
}

/// A value from the file together with where it was written, for errors found later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub at: Location,
    /// Its key path.
    pub key: String,
}

/// A validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// `[server]`, checked.
    pub server: ServerSettings,
    /// `[upstream]`, checked.
    pub upstream: UpstreamSettings,
    /// `[cache]`, checked.
    pub cache: CacheSettings,
    /// List directories, resolved against the config's directory.
    pub list_dirs: Vec<PathBuf>,
    /// `[lists] allow`: names no profile may block.
    pub global_allow: Vec<NameRule>,
    /// `[log] level`.
    pub log_level: String,
    /// `[stats]`, checked.
    pub stats: StatsSettings,
    /// `[metrics] listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// Profiles in name order.
    pub profiles: Vec<ProfileSettings>,
    /// Index into `profiles` of the default profile.
    pub default_profile: usize,
    /// Client rules.
    pub clients: Vec<ClientSettings>,
    /// `[feed]`, checked.
    pub feed: Option<FeedSettings>,
    /// `[[lists.sources]]`, checked.
    pub sources: Vec<SourceSettings>,
}

/// `[feed]`, checked.
#[derive(Debug, Clone)]
pub struct FeedSettings {
    /// The feed root, ending with `/`.
    pub url: String,
    /// Public keys as written (decoded when the runtime is built).
    pub public_keys: Located<Vec<String>>,
    /// The expected feed id, if set.
    pub feed_id: Option<String>,
    /// Poll interval.
    pub refresh: Duration,
    /// Directories used while no verified snapshot exists.
    pub baseline: Vec<PathBuf>,
    /// The longest one download may take.
    pub timeout: Duration,
}

/// `[[lists.sources]]`, checked.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    /// Canonical category name, with where it was written (checked against the lists later).
    pub category: Located<String>,
    /// The list's address.
    pub url: String,
    /// Poll interval.
    pub refresh: Duration,
}

impl SourceSettings {
    /// A stable directory name for this source under `state_dir/sources/`: the category and a
    /// hash of the address, so two sources of one category never share a file.
    pub fn dir_name(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.url.as_bytes());
        let hex: String = digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{}-{hex}", self.category.value)
    }
}

/// `[server]`, checked.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Sockets to bind (UDP and TCP each).
    pub listen: Vec<SocketAddr>,
    /// Networks allowed to query.
    pub allow_clients: Vec<IpNet>,
    /// How blocks are answered.
    pub block_response: BlockResponse,
    /// TTL of block answers, seconds.
    pub block_ttl: u32,
    /// State directory (resolved).
    pub state_dir: PathBuf,
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// Most requests in flight.
    pub max_in_flight: usize,
    /// TCP idle timeout.
    pub tcp_idle_timeout: Duration,
    /// Most client TCP connections open at once.
    pub tcp_connections: usize,
    /// Time zone of schedules.
    pub timezone: jiff::tz::TimeZone,
    /// Neighbour tables for MAC matching.
    pub neighbour_tables: Vec<PathBuf>,
    /// Queries per second per client (0 = unlimited).
    pub rate_limit: u32,
    /// Token bucket size per client, queries.
    pub rate_burst: u32,
}

/// `[upstream]`, checked.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Resolvers, in order.
    pub servers: Vec<UpstreamServer>,
    /// Extra CA certificates for `tls://` upstreams (resolved path).
    pub tls_ca_file: Option<Located<PathBuf>>,
    /// Deadline for one query across all upstreams.
    pub timeout: Duration,
    /// Most upstream queries in flight.
    pub max_in_flight: usize,
    /// How upstreams are chosen.
    pub strategy: Strategy,
    /// Whether private addresses in upstream answers are dropped.
    pub rebind_protection: bool,
    /// Domains whose answers may hold private addresses (lower-case).
    pub rebind_allow: Vec<LowerName>,
}

/// One upstream resolver and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamServer {
    /// Plain DNS over UDP, retried over TCP when truncated.
    Udp(SocketAddr),
    /// Plain DNS over TCP only.
    Tcp(SocketAddr),
    /// DNS over TLS (RFC 7858); the certificate is checked against `name`.
    Tls {
        /// Where to connect.
        addr: SocketAddr,
        /// The name (or IP address) the certificate must be valid for.
        name: String,
    },
    /// DNS over HTTPS (RFC 8484), HTTP/2; the certificate is checked against `name`.
    Https {
        /// Where to connect: always an IP address, never looked up.
        addr: SocketAddr,
        /// The name (or IP address) the certificate must be valid for, also sent as the
        /// HTTP authority.
        name: String,
        /// The HTTP path, e.g. `/dns-query`.
        path: String,
    },
}

impl UpstreamServer {
    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Self::Udp(a)
            | Self::Tcp(a)
            | Self::Tls { addr: a, .. }
            | Self::Https { addr: a, .. } => *a,
        }
    }
}

impl std::fmt::Display for UpstreamServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Udp(a) => write!(f, "udp://{a}"),
            Self::Tcp(a) => write!(f, "tcp://{a}"),
            Self::Tls { addr, name } => write!(f, "tls://{addr}#{name}"),
            Self::Https { addr, name, path } => write!(f, "https://{addr}{path}#{name}"),
        }
    }
}

/// `[upstream] strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// In the order written, skipping upstreams that stopped answering.
    Failover,
    /// The answering upstream with the lowest smoothed round-trip time first, the others
    /// after it by the same measure; now and then another one, so a faster one is noticed.
    Fastest,
}

/// `[cache]`, checked.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// Most entries (0 = off).
    pub entries: usize,
    /// TTL cap, seconds.
    pub max_ttl: u32,
    /// Negative TTL cap, seconds.
    pub max_negative_ttl: u32,
    /// How long after expiry an answer may still be served when upstreams fail (zero: never).
    pub serve_stale: Duration,
    /// Whether popular answers are refreshed before they expire.
    pub prefetch: bool,
}

/// `[stats]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSettings {
    /// Whether statistics are kept on disk.
    pub enabled: bool,
    /// Flush interval.
    pub flush: Duration,
    /// Days kept.
    pub retention_days: u32,
    /// Count per client name too.
    pub by_client: bool,
}

/// How much of the name space an allow or deny entry covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleForm {
    /// `example.com`: the name and everything under it.
    Tree,
    /// `*.example.com`: only names under it.
    Below,
    /// `=example.com`: only that name.
    Exact,
}

/// One allow or deny entry, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameRule {
    /// The name (lower-case A-labels, no trailing dot).
    pub name: String,
    /// What it covers.
    pub form: RuleForm,
}

/// One schedule window, checked except for category existence.
#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    /// The window's timing and exceptions (its effect is filled in when categories are known).
    pub window: crate::config::schedule::Window,
    /// `block = "all"`.
    pub block_all: bool,
    /// `block = [categories]`.
    pub categories: Vec<Located<String>>,
}

/// One profile, checked except for category existence.
#[derive(Debug, Clone)]
pub struct ProfileSettings {
    /// Its name.
    pub name: String,
    /// Categories to block (the preset's and `block`), canonicalised, with where.
    pub block: Vec<Located<String>>,
    /// Categories to take out of the preset's.
    pub unblock: Vec<Located<String>>,
    /// Allowed names.
    pub allow: Vec<NameRule>,
    /// Denied names.
    pub deny: Vec<NameRule>,
    /// A walled garden.
    pub allowlist_mode: bool,
    /// Categories a walled garden lets through (None: every allow-type category).
    pub allow_categories: Option<Vec<Located<String>>>,
    /// Safe search forced.
    pub safe_search: bool,
    /// YouTube restriction.
    pub youtube: crate::config::YouTube,
    /// Bypass guards on (None: on when the profile blocks anything).
    pub bypass_guards: Option<bool>,
    /// Schedule windows.
    pub schedule: Vec<ScheduleSettings>,
}

/// One `[[clients]]` rule, checked.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Its label.
    pub name: String,
    /// Its networks.
    pub networks: Vec<IpNet>,
    /// Its devices by MAC address (matched through the neighbour table).
    pub macs: Vec<crate::config::Mac>,
    /// Index into `Config::profiles`.
    pub profile: usize,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_source(path, &source)
    }

    /// Validates config text that came from `path` (used for relative paths and messages).
    pub fn from_source(path: &Path, source: &str) -> Result<Self, ConfigError> {
        let invalid = |problems| ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        };
        let file: FileConfig = toml::from_str(source).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let mut problems = Problems::default();
            let (at, message) = super::error::syntax_error(source, span.start, e.message());
            let message = super::error::value_error(&message);
            let key = key_path_at(source, at);
            problems.at_span(source, at..at, key, message);
            invalid(problems.into_vec())
        })?;
        let (config, problems) = super::check::validate(path, source, file);
        if problems.is_empty() {
            // `validate` only returns None when it recorded a problem.
            config.ok_or_else(|| invalid(Vec::new()))
        } else {
            Err(invalid(problems.into_vec()))
        }
    }

    /// The index of a profile by name.
    pub fn profile_index(&self, name: &str) -> Option<usize> {
        self.profiles.iter().position(|p| p.name == name)
    }
}
