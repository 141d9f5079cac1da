//! The TOML configuration: its schema (the `*Config` serde structs, unknown keys rejected at
//! every level), defaults, and the checks that need only the file itself.
//!
//! [`Config::load`] turns a file into a validated [`Config`] or a [`ConfigError`] that lists
//! every problem with file, line, column and key path. Checks that need the lists too (does a
//! category exist?) happen when the runtime is built, using the [`Located`] values kept here.
//! Relative paths resolve against the directory of the config file, never the working directory.

mod error;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::rr::{LowerName, Name};
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

pub use error::{ConfigError, Location, Problem, Problems, key_path_at};

use crate::blocklist::parse::{Normalised, normalise};

/// The whole file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[server]`: sockets, who may ask, how blocks are answered.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[upstream]`: where allowed queries are forwarded.
    pub upstream: UpstreamConfig,
    /// `[cache]`: the answer cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// `[lists]`: where category lists come from.
    #[serde(default)]
    pub lists: ListsConfig,
    /// `[log]`: what the daemon logs (never names or addresses).
    #[serde(default)]
    pub log: LogConfig,
    /// `[stats]`: aggregate counts of what was blocked (never names or addresses).
    #[serde(default)]
    pub stats: StatsConfig,
    /// `[metrics]`: the Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// `[defaults]`: the profile for clients no rule matches.
    pub defaults: DefaultsConfig,
    /// `[profiles.NAME]`: what each profile blocks. Keys keep their place in the file, for
    /// problems with a name however the table was written (`[profiles."a b"]`, inline).
    pub profiles: BTreeMap<Spanned<String>, ProfileConfig>,
    /// `[[clients]]`: which addresses get which profile.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// `[feed]`: the signed national feed of category lists.
    pub feed: Option<FeedConfig>,
}

/// `[feed]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// The feed's root: the directory holding `manifest.json`, `https://` (or `http://`: every
    /// file is signed or hashed, so the transport only adds privacy).
    pub url: Spanned<String>,
    /// The publisher's minisign public key (`RW…`), or several during a key rotation.
    pub public_key: Spanned<OneOrMany>,
    /// The feed's id, checked against the signed manifest. Default: whatever the first
    /// verified manifest says, then pinned in the feed state.
    pub feed_id: Option<Spanned<String>>,
    /// How often to look for a new manifest (the feed's `min_poll_seconds` is a lower bound).
    /// Default `"6h"`.
    #[serde(default = "default_feed_refresh")]
    pub refresh: Spanned<String>,
    /// List directories used only while no verified feed snapshot is on disk (e.g. the lists
    /// the package ships). Default: none.
    #[serde(default)]
    pub baseline: Vec<Spanned<String>>,
    /// The longest one download may take (the manifest gets at most 30 s of it). Default
    /// `"10m"`: a 1M-name list is about 20 MB.
    #[serde(default = "default_feed_timeout")]
    pub timeout: Spanned<String>,
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values, in order.
    pub fn values(&self) -> Vec<String> {
        match self {
            Self::One(v) => vec![v.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

/// `[[lists.sources]]`: a public list fetched over HTTP(S) into one category.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The category its names go into.
    pub category: Spanned<String>,
    /// Where to fetch it (hosts, plain or adblock `||name^` format).
    pub url: Spanned<String>,
    /// How often to look for a new version. Default `"1d"`.
    #[serde(default = "default_source_refresh")]
    pub refresh: Spanned<String>,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Addresses to answer on, UDP and TCP each. Default `["127.0.0.1:53", "[::1]:53"]`.
    #[serde(default = "default_listen")]
    pub listen: Spanned<Vec<Spanned<String>>>,
    /// Networks that may query; others get REFUSED. Default: loopback and private ranges.
    #[serde(default = "default_allow_clients")]
    pub allow_clients: Vec<Spanned<String>>,
    /// `"nxdomain"` (default), `"null-ip"`, `"nodata"`, `"refused"`, or an IP address to answer.
    #[serde(default = "default_block_response")]
    pub block_response: Spanned<String>,
    /// TTL of block answers, so clients re-ask soon after a rule changes. Default `"60s"`.
    #[serde(default = "default_block_ttl")]
    pub block_ttl: Spanned<String>,
    /// Where the daemon keeps state (stats, feed snapshots). Default `/var/lib/kidsafe`.
    #[serde(default = "default_state_dir")]
    pub state_dir: String,
    /// Worker threads; 0 (default) means one per available core.
    #[serde(default)]
    pub threads: usize,
    /// Most requests handled at once; beyond it new ones are dropped. Default 4096.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: Spanned<usize>,
    /// A TCP connection with no query for this long (and no answer still owed) is closed.
    /// Between 100ms and 10m. Default `"10s"`.
    #[serde(default = "default_tcp_idle_timeout")]
    pub tcp_idle_timeout: Spanned<String>,
    /// Most client TCP connections open at once, over all `listen` addresses; one more is
    /// closed as soon as it is accepted. Between 1 and 65535. Default 256.
    #[serde(default = "default_tcp_connections")]
    pub tcp_connections: Spanned<usize>,
    /// IANA time zone for schedules, e.g. `"Europe/Tirane"`. Default: the system's.
    pub timezone: Option<Spanned<String>>,
    /// Neighbour tables read to match clients by MAC address: files in `/proc/net/arp` or
    /// `ip neigh` format, or `"ip neigh"` to run `ip neigh show` (IPv6 neighbours too).
    /// Default `["/proc/net/arp", "ip neigh"]`.
    #[serde(default = "default_neighbour_tables")]
    pub neighbour_tables: Vec<Spanned<String>>,
    /// Queries per second one client address may send (a token bucket); beyond it the client
    /// gets REFUSED until it slows down. 0 turns the limit off. Default 200.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: Spanned<u32>,
    /// How many queries a client may send at once before `rate_limit` applies (the bucket's
    /// size), in queries. Default: twice `rate_limit`.
    #[serde(default)]
    pub rate_burst: Option<Spanned<u32>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            allow_clients: default_allow_clients(),
            block_response: default_block_response(),
            block_ttl: default_block_ttl(),
            state_dir: default_state_dir(),
            threads: 0,
            max_in_flight: default_max_in_flight(),
            tcp_idle_timeout: default_tcp_idle_timeout(),
            tcp_connections: default_tcp_connections(),
            timezone: None,
            neighbour_tables: default_neighbour_tables(),
            rate_limit: default_rate_limit(),
            rate_burst: None,
        }
    }
}

/// `[upstream]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Resolvers to forward to, tried in order: `"9.9.9.9:53"`, `"9.9.9.9"` (port 53) or
    /// `"udp://9.9.9.9:53"` (UDP with a TCP retry when an answer is truncated), `"tcp://…"`
    /// (TCP only), `"tls://9.9.9.9:853#dns.quad9.net"` (DNS over TLS, port 853 by default;
    /// the certificate must be valid for the name after `#`, or for the IP address without
    /// one), or DNS over HTTPS (HTTP/2, port 443 by default):
    /// `"https://9.9.9.9/dns-query#dns.quad9.net"` or, the same,
    /// `"https://dns.quad9.net/dns-query#9.9.9.9"`. An IP address is required: kidsafe may be
    /// the machine's own resolver, so it never looks an upstream's name up.
    pub servers: Spanned<Vec<Spanned<String>>>,
    /// A PEM file of extra certificate authorities trusted for `tls://` and `https://`
    /// upstreams, besides the
    /// built-in Mozilla roots (e.g. a school's own CA). Default: none.
    #[serde(default)]
    pub tls_ca_file: Option<Spanned<String>>,
    /// How long one query may wait for all upstreams together. Default `"2s"`.
    #[serde(default = "default_upstream_timeout")]
    pub timeout: Spanned<String>,
    /// Most upstream queries in flight at once; beyond it clients get SERVFAIL. Default 1024.
    /// Identical questions asked at the same time share one upstream query.
    #[serde(default = "default_upstream_in_flight")]
    pub max_in_flight: Spanned<usize>,
    /// How upstreams are chosen: `"failover"` (default) asks them in the order written,
    /// skipping one that stopped answering until a later query finds it back; `"fastest"`
    /// asks first the answering one with the lowest smoothed round-trip time, and one query
    /// in 32 (or any whose last measure is over a minute old) goes to another, so an upstream
    /// that became faster is found again.
    #[serde(default = "default_strategy")]
    pub strategy: Spanned<String>,
    /// DNS-rebinding protection: an upstream answer that maps a name to a private, loopback or
    /// link-local address is replaced by an empty answer (NOERROR, no records), so a web page
    /// cannot turn a public name into a way into the LAN. Default true.
    #[serde(default = "default_true")]
    pub rebind_protection: bool,
    /// Domains (with their subdomains) whose answers may hold private addresses: the LAN's own
    /// names. Default `["lan", "home.arpa"]`.
    #[serde(default = "default_rebind_allow")]
    pub rebind_allow: Vec<Spanned<String>>,
}

/// `[cache]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Most answers kept; 0 turns the cache off. Default 10000.
    #[serde(default = "default_cache_entries")]
    pub entries: Spanned<usize>,
    /// Longest time an answer is kept, whatever its TTL. Default `"1d"`.
    #[serde(default = "default_cache_max_ttl")]
    pub max_ttl: Spanned<String>,
    /// Longest time a negative answer (NXDOMAIN, NODATA) is kept. Default `"1h"`.
    #[serde(default = "default_cache_negative_ttl")]
    pub max_negative_ttl: Spanned<String>,
    /// Serve-stale (RFC 8767): when no upstream answers, an answer that expired less than this
    /// long ago is given instead of SERVFAIL, with a TTL of 30 s. `"0s"` turns it off.
    /// Default `"1d"`.
    #[serde(default = "default_serve_stale")]
    pub serve_stale: Spanned<String>,
    /// Prefetch: an answer asked for at least twice from the cache, and asked again in the last
    /// tenth of its TTL, is refreshed once in the background, so popular names never expire
    /// while clients keep asking. Default true.
    #[serde(default = "default_true")]
    pub prefetch: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            entries: default_cache_entries(),
            max_ttl: default_cache_max_ttl(),
            max_negative_ttl: default_cache_negative_ttl(),
            serve_stale: default_serve_stale(),
            prefetch: true,
        }
    }
}

/// `[lists]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListsConfig {
    /// Directories whose `<category>.txt` files are the category lists.
    #[serde(default)]
    pub dirs: Vec<Spanned<String>>,
    /// Names no profile may block (helplines, safety sites); beats everything.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Public lists fetched into categories, besides the feed.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
}

/// `[log]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `"error"`, `"warn"`, `"info"` (default), `"debug"` or `"trace"`. `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub level: Spanned<String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: default_log_level(),
        }
    }
}

/// `[stats]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    /// Keep statistics in `state_dir/stats.db`. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How often counts are written to disk; a crash loses at most this much. Default `"60s"`.
    #[serde(default = "default_stats_flush")]
    pub flush: Spanned<String>,
    /// Days of statistics kept. Default 90.
    #[serde(default = "default_retention_days")]
    pub retention_days: Spanned<u32>,
    /// Count per configured client *name* too (never per address). Default false.
    #[serde(default)]
    pub by_client: bool,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            flush: default_stats_flush(),
            retention_days: default_retention_days(),
            by_client: false,
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where to serve Prometheus `/metrics`, e.g. `"127.0.0.1:9153"`. Default: not served.
    pub listen: Option<Spanned<String>>,
}

/// `[defaults]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultsConfig {
    /// The profile of clients that no `[[clients]]` rule matches.
    pub profile: Spanned<String>,
}

/// `[profiles.NAME]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// An age preset to start from: "under-9", "9-12", "13-15", "16-17" or "adult".
    pub preset: Option<Spanned<String>>,
    /// Categories to block (added to the preset's).
    #[serde(default)]
    pub block: Vec<Spanned<String>>,
    /// Categories the preset blocks that this profile does not.
    #[serde(default)]
    pub unblock: Vec<Spanned<String>>,
    /// Names that always resolve; allow beats everything, schedules included.
    /// `"example.com"` covers its subdomains, `"*.example.com"` only its subdomains,
    /// `"=example.com"` only that exact name.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Names always blocked (same forms as `allow`); deny beats categories.
    #[serde(default)]
    pub deny: Vec<Spanned<String>>,
    /// `"filter"` (default: block what is listed) or `"allowlist"` (a walled garden: only
    /// allowed names and allow-type categories resolve).
    pub mode: Option<Spanned<String>>,
    /// Categories a walled garden lets through. Default: every allow-type category
    /// (`kids`, `education`).
    pub allow_categories: Option<Vec<Spanned<String>>>,
    /// Force safe search on Google, Bing, DuckDuckGo, Yandex and Ecosia. Default: the preset's,
    /// else false.
    pub safe_search: Option<bool>,
    /// YouTube restricted mode: `"strict"`, `"moderate"` or `"off"`. Default: the preset's, else off.
    pub youtube: Option<Spanned<String>>,
    /// Block DNS-bypass tricks (DoH canary, Private Relay, DDR, public DoH resolvers). Default:
    /// on for any profile that blocks something.
    pub bypass_guards: Option<bool>,
    /// `[[profiles.NAME.schedule]]`: time windows.
    #[serde(default)]
    pub schedule: Vec<ScheduleConfig>,
}

/// `[[profiles.NAME.schedule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Days the window starts: "mon" … "sun", "weekdays", "weekend", "daily".
    pub days: Vec<Spanned<String>>,
    /// Start, local time "HH:MM".
    pub from: Spanned<String>,
    /// End, local time "HH:MM"; not after `from` means the next day.
    pub to: Spanned<String>,
    /// `"all"` (only allowed names resolve) or a list of categories to block too.
    pub block: Spanned<toml::Value>,
    /// Dates ("2026-12-24") or ranges ("2027-02-15..2027-02-22") on which the window does not start.
    #[serde(default)]
    pub except: Vec<Spanned<String>>,
    /// When given, the window only starts within these date ranges (term time).
    #[serde(default)]
    pub only: Vec<Spanned<String>>,
}

/// `[[clients]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// A label for people (never logged with an address).
    pub name: String,
    /// Addresses or networks: `"192.168.1.7"`, `"192.168.1.32/27"`, `"fd00::/64"`.
    #[serde(rename = "match")]
    pub matches: Vec<Spanned<String>>,
    /// The profile these clients get.
    pub profile: Spanned<String>,
}

fn spanned<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}
fn default_listen() -> Spanned<Vec<Spanned<String>>> {
    spanned(vec![
        spanned("127.0.0.1:53".into()),
        spanned("[::1]:53".into()),
    ])
}
fn default_allow_clients() -> Vec<Spanned<String>> {
    [
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
        "fe80::/10",
    ]
    .into_iter()
    .map(|s| spanned(s.to_string()))
    .collect()
}
fn default_block_response() -> Spanned<String> {
    spanned("nxdomain".into())
}
fn default_block_ttl() -> Spanned<String> {
    spanned("60s".into())
}
fn default_state_dir() -> String {
    "/var/lib/kidsafe".into()
}
fn default_max_in_flight() -> Spanned<usize> {
    spanned(4096)
}
fn default_tcp_idle_timeout() -> Spanned<String> {
    spanned("10s".into())
}
fn default_tcp_connections() -> Spanned<usize> {
    spanned(256)
}
fn default_rate_limit() -> Spanned<u32> {
    spanned(200)
}
fn default_strategy() -> Spanned<String> {
    spanned("failover".into())
}
fn default_rebind_allow() -> Vec<Spanned<String>> {
    ["lan", "home.arpa"]
        .into_iter()
        .map(|s| spanned(s.to_string()))
        .collect()
}
fn default_serve_stale() -> Spanned<String> {
    spanned("1d".into())
}
fn default_upstream_timeout() -> Spanned<String> {
    spanned("2s".into())
}
fn default_upstream_in_flight() -> Spanned<usize> {
    spanned(1024)
}
fn default_cache_entries() -> Spanned<usize> {
    spanned(10_000)
}
fn default_cache_max_ttl() -> Spanned<String> {
    spanned("1d".into())
}
fn default_cache_negative_ttl() -> Spanned<String> {
    spanned("1h".into())
}
fn default_log_level() -> Spanned<String> {
    spanned("info".into())
}
fn default_neighbour_tables() -> Vec<Spanned<String>> {
    vec![
        spanned("/proc/net/arp".into()),
        spanned(crate::policy::live::IP_NEIGH.into()),
    ]
}
fn default_true() -> bool {
    true
}
fn default_stats_flush() -> Spanned<String> {
    spanned("60s".into())
}
fn default_feed_refresh() -> Spanned<String> {
    spanned("6h".to_string())
}
fn default_feed_timeout() -> Spanned<String> {
    spanned("10m".to_string())
}
fn default_source_refresh() -> Spanned<String> {
    spanned("1d".to_string())
}
fn default_retention_days() -> Spanned<u32> {
    spanned(90)
}

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
    pub window: crate::policy::schedule::Window,
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
    pub youtube: crate::policy::special::YouTube,
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
    pub macs: Vec<crate::policy::live::Mac>,
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
            let key = key_path_at(source, span.start);
            problems.at_span(source, span, key, e.message().trim().to_string());
            invalid(problems.into_vec())
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut checker = Checker {
            source,
            base,
            problems: Problems::default(),
        };
        let config = checker.check(path, file);
        if checker.problems.is_empty() {
            // `check` only returns None when it recorded a problem.
            config.ok_or_else(|| invalid(Vec::new()))
        } else {
            Err(invalid(checker.problems.into_vec()))
        }
    }

    /// The index of a profile by name.
    pub fn profile_index(&self, name: &str) -> Option<usize> {
        self.profiles.iter().position(|p| p.name == name)
    }
}

struct Checker<'s> {
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
        let feed = match &file.feed {
            Some(f) => Some(self.check_feed(f)?),
            None => None,
        };
        let sources = self.check_sources(&file.lists.sources);

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

    fn http_url(&mut self, value: &Spanned<String>, key: &str) -> Option<String> {
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

    fn check_feed(&mut self, f: &FeedConfig) -> Option<FeedSettings> {
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

    fn check_sources(&mut self, sources: &[SourceConfig]) -> Vec<SourceSettings> {
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

    fn check_server(&mut self, s: &ServerConfig) -> Option<ServerSettings> {
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
                crate::policy::live::IP_NEIGH => PathBuf::from(crate::policy::live::IP_NEIGH),
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

    fn check_upstream(&mut self, u: &UpstreamConfig) -> Option<UpstreamSettings> {
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

    fn check_cache(&mut self, c: &CacheConfig) -> Option<CacheSettings> {
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

    fn rules(&mut self, values: &[Spanned<String>], key: &str) -> Vec<NameRule> {
        let mut out = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            let text = v.get_ref().trim();
            let (form, rest) = if let Some(rest) = text.strip_prefix('=') {
                (RuleForm::Exact, rest)
            } else if let Some(rest) = text.strip_prefix("*.") {
                (RuleForm::Below, rest)
            } else {
                (RuleForm::Tree, text)
            };
            match normalise(rest) {
                Ok(Normalised::Name(name)) if !rest.starts_with('*') && !rest.starts_with('.') => {
                    out.push(NameRule {
                        name: name.into_owned(),
                        form,
                    })
                }
                _ => self.problem(
                    v,
                    format!("{key}[{i}]"),
                    "not a domain name; write \"example.com\" (with its subdomains), \"*.example.com\" (only subdomains) or \"=example.com\" (only that name)",
                ),
            }
        }
        out
    }

    fn categories_at(&self, values: &[Spanned<String>], key: &str) -> Vec<Located<String>> {
        values
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut located = self.locate(c, format!("{key}[{i}]"));
                located.value = crate::category::canonical_name(&located.value);
                located
            })
            .collect()
    }

    fn check_schedule(&mut self, s: &ScheduleConfig, key: &str) -> Option<ScheduleSettings> {
        use crate::policy::schedule::{DateRange, Effect, Window, parse_days, parse_time};
        let days: Vec<&str> = s.days.iter().map(|d| d.get_ref().as_str()).collect();
        let days = match parse_days(&days) {
            Ok(d) if d.iter().any(|x| *x) => Some(d),
            Ok(_) => {
                self.problems.at(
                    Location::of_offset(self.source, s.from.span().start),
                    format!("{key}.days"),
                    "needs at least one day",
                );
                None
            }
            Err(msg) => {
                let at = s.days.first().map(|d| d.span()).unwrap_or(0..0);
                self.problems
                    .at_span(self.source, at, format!("{key}.days"), msg);
                None
            }
        };
        let time =
            |this: &mut Self, v: &Spanned<String>, field: &str, allow_24: bool| match parse_time(
                v.get_ref(),
                allow_24,
            ) {
                Ok(t) => Some(t),
                Err(msg) => {
                    this.problem(v, format!("{key}.{field}"), msg);
                    None
                }
            };
        let from = time(self, &s.from, "from", false);
        let to = time(self, &s.to, "to", true);
        let ranges = |this: &mut Self, values: &[Spanned<String>], field: &str| {
            let mut out = Vec::new();
            for (i, v) in values.iter().enumerate() {
                match DateRange::parse(v.get_ref()) {
                    Ok(r) => out.push(r),
                    Err(msg) => this.problem(v, format!("{key}.{field}[{i}]"), msg),
                }
            }
            out
        };
        let except = ranges(self, &s.except, "except");
        let only = ranges(self, &s.only, "only");
        let (block_all, categories) = match s.block.get_ref() {
            toml::Value::String(all) if all == "all" => (true, Vec::new()),
            toml::Value::Array(items) => {
                let mut names = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(c) => names.push(Located {
                            value: crate::category::canonical_name(c),
                            at: Location::of_offset(self.source, s.block.span().start),
                            key: format!("{key}.block[{i}]"),
                        }),
                        None => self.problem(
                            &s.block,
                            format!("{key}.block[{i}]"),
                            "categories are strings",
                        ),
                    }
                }
                (false, names)
            }
            _ => {
                self.problem(
                    &s.block,
                    format!("{key}.block"),
                    "write block = \"all\" or block = [\"games\", \"social\"]",
                );
                (false, Vec::new())
            }
        };
        Some(ScheduleSettings {
            window: Window {
                days: days?,
                from: from?,
                to: to?,
                effect: Effect::BlockAll,
                except,
                only,
            },
            block_all,
            categories,
        })
    }

    fn check_profiles(
        &mut self,
        profiles: &BTreeMap<Spanned<String>, ProfileConfig>,
    ) -> Vec<ProfileSettings> {
        use crate::policy::presets;
        use crate::policy::special::YouTube;
        let mut out = Vec::with_capacity(profiles.len());
        for (spanned_name, p) in profiles {
            let name = spanned_name.get_ref();
            let key = format!("profiles.{name}");
            if !is_profile_name(name) {
                self.problem(
                    spanned_name,
                    key.clone(),
                    "profile names use letters, digits, '_' and '-' (at most 40)",
                );
            }
            let preset = match &p.preset {
                None => None,
                Some(v) => match presets::find(v.get_ref()) {
                    Some(found) => Some((found, v)),
                    None => {
                        let names: Vec<&str> = presets::PRESETS.iter().map(|p| p.name).collect();
                        self.problem(
                            v,
                            format!("{key}.preset"),
                            format!("unknown preset; use one of {}", names.join(", ")),
                        );
                        None
                    }
                },
            };
            let mut block: Vec<Located<String>> = Vec::new();
            if let Some((found, v)) = &preset {
                let at = Location::of_offset(self.source, v.span().start);
                block.extend(found.block.iter().map(|c| Located {
                    value: (*c).to_string(),
                    at,
                    key: format!("{key}.preset"),
                }));
            }
            block.extend(self.categories_at(&p.block, &format!("{key}.block")));
            let unblock = self.categories_at(&p.unblock, &format!("{key}.unblock"));
            let allow = self.rules(&p.allow, &format!("{key}.allow"));
            let deny = self.rules(&p.deny, &format!("{key}.deny"));
            let allowlist_mode = match p.mode.as_ref().map(|m| m.get_ref().as_str()) {
                None | Some("filter") => false,
                Some("allowlist") => true,
                Some(_) => {
                    if let Some(m) = &p.mode {
                        self.problem(
                            m,
                            format!("{key}.mode"),
                            "must be \"filter\" or \"allowlist\"",
                        );
                    }
                    false
                }
            };
            let allow_categories = p
                .allow_categories
                .as_ref()
                .map(|c| self.categories_at(c, &format!("{key}.allow_categories")));
            let safe_search = p
                .safe_search
                .unwrap_or_else(|| preset.as_ref().is_some_and(|(found, _)| found.safe_search));
            let youtube_text = match &p.youtube {
                Some(v) => v.get_ref().clone(),
                None => preset
                    .as_ref()
                    .map_or("off", |(found, _)| found.youtube)
                    .to_string(),
            };
            let youtube = match youtube_text.as_str() {
                "off" => YouTube::Off,
                "moderate" => YouTube::Moderate,
                "strict" => YouTube::Strict,
                _ => {
                    if let Some(v) = &p.youtube {
                        self.problem(
                            v,
                            format!("{key}.youtube"),
                            "must be \"strict\", \"moderate\" or \"off\"",
                        );
                    }
                    YouTube::Off
                }
            };
            let schedule = p
                .schedule
                .iter()
                .enumerate()
                .filter_map(|(i, s)| self.check_schedule(s, &format!("{key}.schedule[{i}]")))
                .collect();
            out.push(ProfileSettings {
                name: name.clone(),
                block,
                unblock,
                allow,
                deny,
                allowlist_mode,
                allow_categories,
                safe_search,
                youtube,
                bypass_guards: p.bypass_guards,
                schedule,
            });
        }
        out
    }

    fn profile_ref(&mut self, names: &[&str], value: &Spanned<String>, key: &str) -> Option<usize> {
        let wanted = value.get_ref();
        let found = names.iter().position(|n| n == wanted);
        if found.is_none() {
            let known = if names.is_empty() {
                "no profiles are defined".to_string()
            } else {
                format!("defined profiles: {}", names.join(", "))
            };
            self.problem(
                value,
                key,
                format!("unknown profile \"{wanted}\" ({known}); add a [profiles.{wanted}] table or fix the name"),
            );
        }
        found
    }

    fn check_clients(&mut self, names: &[&str], clients: &[ClientConfig]) -> Vec<ClientSettings> {
        let mut out = Vec::with_capacity(clients.len());
        let mut seen: HashMap<IpNet, (String, usize)> = HashMap::new();
        for (i, c) in clients.iter().enumerate() {
            let key = format!("clients[{i}]");
            let profile = self.profile_ref(names, &c.profile, &format!("{key}.profile"));
            let (mac_entries, net_entries): (Vec<&Spanned<String>>, Vec<&Spanned<String>>) = c
                .matches
                .iter()
                .partition(|m| crate::policy::live::parse_mac(m.get_ref()).is_some());
            let macs = mac_entries
                .iter()
                .filter_map(|m| crate::policy::live::parse_mac(m.get_ref()))
                .collect();
            let net_entries: Vec<Spanned<String>> = net_entries.into_iter().cloned().collect();
            let networks = self.networks(&net_entries, &format!("{key}.match"));
            for (j, net) in networks.iter().enumerate() {
                let Some(written) = net_entries.get(j) else {
                    continue;
                };
                if let Some((other, other_profile)) = seen.get(net) {
                    if Some(*other_profile) != profile {
                        self.problem(
                            written,
                            format!("{key}.match[{j}]"),
                            format!("{net} is already matched by client \"{other}\" with another profile; a network may have one profile"),
                        );
                    }
                } else if let Some(p) = profile {
                    seen.insert(*net, (c.name.clone(), p));
                }
            }
            if let Some(profile) = profile {
                out.push(ClientSettings {
                    name: c.name.clone(),
                    macs,
                    networks,
                    profile,
                });
            }
        }
        out
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

#[cfg(test)]
mod tests;
