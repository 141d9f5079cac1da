//! The config file as written: the serde schema (unknown keys rejected at every level) and
//! the defaults of every key.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

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
        spanned(super::IP_NEIGH.into()),
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
