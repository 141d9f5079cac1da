//! Real parts for the integration tests: an in-process hickory authority as the upstream, the
//! daemon itself on an ephemeral loopback port, and a plain DNS client over real sockets.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::Server;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

use kidsafe::runtime::{self};
use kidsafe::server::{self, Listeners};

/// How long a test client waits for any one answer.
pub const CLIENT_WAIT: Duration = Duration::from_secs(5);

/// The zone the upstream serves.
pub const ZONE: &str = "example.test.";
/// A name with A, AAAA and TXT records.
pub const WWW: &str = "www.example.test.";
/// The address of `WWW`.
pub const WWW_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// A name whose TXT answer is larger than any UDP answer kidsafe sends.
pub const BIG: &str = "big.example.test.";
/// How many TXT records `BIG` has.
pub const BIG_RECORDS: usize = 40;
/// A name that is in the test `adult` list (and exists upstream, to prove it is not forwarded).
pub const BLOCKED: &str = "blocked.example.test.";
/// A name that is in the test `gambling` list.
pub const CASINO: &str = "casino.example.test.";
/// The feed server's host name: it resolves to 127.0.0.1 through the upstream only.
pub const FEED_HOST: &str = "feed.example.test.";

pub fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("valid name")
}

/// The upstream: hickory-server with an in-memory authority for `example.test.`.
pub struct Upstream {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Upstream {
    pub async fn start() -> Self {
        let catalog = catalog();
        // UDP and TCP on one port: the port a UDP socket got may be held over TCP by one of
        // the many connections other tests open, so try a few.
        let mut attempt = 0;
        let (udp, tcp, addr) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind upstream udp");
            let addr = udp.local_addr().expect("addr");
            match tokio::net::TcpListener::bind(addr).await {
                Ok(tcp) => break (udp, tcp, addr),
                Err(e) if attempt < 20 => {
                    attempt += 1;
                    let _ = e;
                }
                Err(e) => panic!("bind upstream tcp: {e}"),
            }
        };
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 16);
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            let _ = server.shutdown_gracefully().await;
        });
        Self { addr, shutdown }
    }
}

/// The authority every in-process upstream serves: `example.test.` with the names above.
pub fn catalog() -> Catalog {
    let origin = name(ZONE);
    let mut zone = InMemoryZoneHandler::<hickory_server::net::runtime::TokioRuntimeProvider>::empty(
        origin.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
    );
    let soa = SOA::new(
        name("ns.example.test."),
        name("admin.example.test."),
        7,
        3600,
        600,
        86_400,
        300,
    );
    let records = [
        Record::from_rdata(origin.clone(), 3600, RData::SOA(soa)),
        Record::from_rdata(name(WWW), 300, RData::A(A(WWW_V4))),
        Record::from_rdata(
            name(WWW),
            300,
            RData::AAAA(AAAA(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10))),
        ),
        Record::from_rdata(
            name(WWW),
            300,
            RData::TXT(TXT::new(vec!["hello from upstream".into()])),
        ),
        Record::from_rdata(name(BLOCKED), 300, RData::A(A::new(192, 0, 2, 66))),
        Record::from_rdata(
            name("sub.blocked.example.test."),
            300,
            RData::A(A::new(192, 0, 2, 67)),
        ),
        Record::from_rdata(name(CASINO), 300, RData::A(A::new(192, 0, 2, 77))),
        Record::from_rdata(name(FEED_HOST), 300, RData::A(A::new(127, 0, 0, 1))),
        Record::from_rdata(
            name("khan.example.test."),
            300,
            RData::A(A::new(192, 0, 2, 88)),
        ),
    ];
    for r in records {
        assert!(zone.upsert_mut(r, 7), "record accepted");
    }
    for i in 0..BIG_RECORDS {
        let text = format!("{i:02}-{}", "x".repeat(60));
        assert!(zone.upsert_mut(
            Record::from_rdata(name(BIG), 300, RData::TXT(TXT::new(vec![text]))),
            7
        ));
    }
    assert!(zone.upsert_mut(
        Record::from_rdata(
            name("cloak.example.test."),
            300,
            RData::CNAME(CNAME(name(BLOCKED)))
        ),
        7
    ));
    let mut catalog = Catalog::new();
    catalog.upsert(origin.into(), vec![Arc::new(zone)]);
    // The safe-search targets, as the real providers publish them.
    for (zone_name, hosts) in [
        (
            "google.com.",
            &[("forcesafesearch.google.com.", [216, 239, 38, 120])][..],
        ),
        (
            "youtube.com.",
            &[
                ("restrict.youtube.com.", [216, 239, 38, 120]),
                ("restrictmoderate.youtube.com.", [216, 239, 38, 119]),
            ][..],
        ),
        (
            "bing.com.",
            &[("strict.bing.com.", [204, 79, 197, 220])][..],
        ),
    ] {
        let origin = name(zone_name);
        let mut z =
            InMemoryZoneHandler::<hickory_server::net::runtime::TokioRuntimeProvider>::empty(
                origin.clone(),
                ZoneType::Primary,
                AxfrPolicy::Deny,
            );
        let soa = SOA::new(
            name("ns.example.test."),
            name("admin.example.test."),
            1,
            3600,
            600,
            86_400,
            300,
        );
        assert!(z.upsert_mut(Record::from_rdata(origin.clone(), 3600, RData::SOA(soa)), 1));
        for (host, ip) in hosts {
            let a = RData::A(A::new(ip[0], ip[1], ip[2], ip[3]));
            assert!(z.upsert_mut(Record::from_rdata(name(host), 300, a), 1));
        }
        catalog.upsert(origin.into(), vec![Arc::new(z)]);
    }
    catalog
}

/// The daemon under test, in-process, with its own config and list directory.
pub struct Daemon {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub shared: runtime::SharedRuntime,
    pub reload: Option<kidsafe::reload::ReloadHandle>,
    /// The handler's forwarder: per-upstream counters, health, DoH connections.
    pub forwarder: kidsafe::dns::upstream::Forwarder,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), kidsafe::server::ServeError>>>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The test lists: `adult.txt` holds BLOCKED, `gambling.txt` holds CASINO.
pub fn write_lists(dir: &Path) -> PathBuf {
    let lists = dir.join("lists");
    std::fs::create_dir_all(&lists).expect("mkdir lists");
    std::fs::write(
        lists.join("adult.txt"),
        "# test list\n0.0.0.0 blocked.example.test\n",
    )
    .expect("write");
    std::fs::write(lists.join("gambling.txt"), "||casino.example.test^\n").expect("write");
    lists
}

/// A config for the daemon: `extra` is appended, `server` lines go into `[server]`.
pub fn config_text(upstream: SocketAddr, server_extra: &str, extra: &str) -> String {
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
allow_clients = ["127.0.0.0/8"]
state_dir = "state"
threads = 2
{server_extra}

[upstream]
servers = ["{upstream}"]
timeout = "1500ms"

[lists]
dirs = ["lists"]

[log]
level = "trace"

[defaults]
profile = "teen"

[profiles.teen]
block = ["adult"]

[profiles.child]
block = ["adult", "gambling"]
allow = ["khan.example.test"]
deny = ["www.example.test"]

[[clients]]
name = "kid"
match = ["127.0.0.5"]
profile = "child"
{extra}
"#
    )
}

/// The config the Debian package installs (`packaging/kidsafe.toml`), made runnable here and
/// nothing else changed: loopback on an ephemeral port, state in the test's directory, the
/// lists shipped in `blocklists/`, `upstream` as the only resolver, no metrics port. `extra`
/// is appended (profiles, clients). Panics when one of those lines is no longer in the file,
/// so the packaged config cannot drift away from what this reads.
pub fn packaged_config(upstream: SocketAddr, extra: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut text =
        std::fs::read_to_string(root.join("packaging/kidsafe.toml")).expect("packaged config");
    let blocklists = root.join("blocklists").display().to_string();
    for (line, runnable) in [
        (
            r#"listen = ["127.0.0.1:53", "[::1]:53"]"#.to_string(),
            r#"listen = ["127.0.0.1:0"]"#.to_string(),
        ),
        (
            r#"state_dir = "/var/lib/kidsafe""#.to_string(),
            r#"state_dir = "state""#.to_string(),
        ),
        (
            r#"dirs = ["/usr/share/kidsafe/blocklists"]"#.to_string(),
            format!("dirs = ['{blocklists}']"),
        ),
        (
            r#"servers = ["9.9.9.9:53", "149.112.112.112:53"]"#.to_string(),
            format!(r#"servers = ["{upstream}"]"#),
        ),
        (
            r#"listen = "127.0.0.1:9153""#.to_string(),
            "# no metrics port in tests".to_string(),
        ),
    ] {
        assert!(
            text.contains(&line),
            "packaging/kidsafe.toml no longer holds {line}"
        );
        text = text.replacen(&line, &runnable, 1);
    }
    text.push_str(extra);
    text
}

impl Daemon {
    /// Starts the daemon with the default test config.
    pub async fn start(upstream: SocketAddr) -> Self {
        Self::start_with(upstream, "", "").await
    }

    /// Starts the daemon with lines added to `[server]` and to the end of the config.
    pub async fn start_with(upstream: SocketAddr, server_extra: &str, extra: &str) -> Self {
        Self::launch(config_text(upstream, server_extra, extra), false).await
    }

    /// Starts the daemon on `config` (a whole file), without the reloader.
    pub async fn start_text(config: String) -> Self {
        Self::launch(config, false).await
    }

    /// Starts the daemon on `config` (a whole file) with the reloader watching its files and
    /// writing `state/status.json`.
    pub async fn start_watching(config: String) -> Self {
        Self::launch(config, true).await
    }

    async fn launch(config: String, watch: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        write_lists(dir.path());
        let path = dir.path().join("kidsafe.toml");
        std::fs::write(&path, config).expect("write config");
        let load_path = path.clone();
        let rt = tokio::task::spawn_blocking(move || kidsafe::reload::load(&load_path))
            .await
            .expect("join")
            .expect("config and lists load");
        let listeners = Listeners::bind(&rt.config.server.listen, 2).expect("bind");
        let addr = listeners.local_addrs()[0];
        let state_dir = rt.config.server.state_dir.clone();
        let shared = runtime::share(rt);
        let shutdown = CancellationToken::new();
        let reload = watch.then(|| {
            let options = kidsafe::reload::ReloadOptions {
                watch_files: true,
                state_dir: Some(state_dir),
                collector: None,
                metrics: None,
                notifier: None,
            };
            kidsafe::reload::Reloader::spawn(shared.clone(), &path, options, shutdown.clone())
        });
        let handler = kidsafe::dns::Handler::new(shared.clone());
        let forwarder = handler.forwarder().clone();
        let task = tokio::spawn(server::serve(handler, listeners, shutdown.clone()));
        Self {
            addr,
            dir,
            shared,
            reload,
            forwarder,
            shutdown,
            task: Some(task),
        }
    }

    /// Stops the daemon and waits for it to finish.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("served without error");
        }
    }
}

/// A query message as a stub resolver would send it (RD set, EDNS 1232).
pub fn query_message(qname: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name(qname), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    m.set_edns(edns);
    m
}

fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(4242);
    NEXT.fetch_add(7919, Ordering::Relaxed)
}

/// Sends raw bytes over UDP from `from` and returns the raw reply, or `None` after `wait`.
pub async fn exchange_raw_from(
    from: IpAddr,
    server: SocketAddr,
    bytes: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind(SocketAddr::new(from, 0))
        .await
        .expect("bind client");
    socket.send_to(bytes, server).await.expect("send");
    let mut buf = vec![0u8; 65_535];
    match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => {
            buf.truncate(n);
            Some(buf)
        }
        _ => None,
    }
}

/// Sends raw bytes over UDP from 127.0.0.1.
pub async fn exchange_raw(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    exchange_raw_from(IpAddr::V4(Ipv4Addr::LOCALHOST), server, bytes, wait).await
}

/// Sends a message over UDP from 127.0.0.1 and parses the reply; `None` on timeout or junk.
pub async fn try_udp(server: SocketAddr, message: &Message, wait: Duration) -> Option<Message> {
    let bytes = message.to_vec().expect("encode");
    let reply = exchange_raw(server, &bytes, wait).await?;
    Message::from_vec(&reply)
        .ok()
        .filter(|m| m.metadata.id == message.metadata.id)
}

/// Whether an answer is kidsafe's own NXDOMAIN block (not an upstream NXDOMAIN).
pub fn is_kidsafe_block(m: &Message) -> bool {
    m.metadata.response_code == hickory_proto::op::ResponseCode::NXDomain
        && soa_of(m).is_some_and(|(soa, _)| soa.mname.to_ascii() == "kidsafe.invalid.")
}

/// The category a kidsafe block names in its Extended DNS Error ("Blocked", `category=NAME`).
pub fn blocked_category(m: &Message) -> Option<String> {
    let option = m
        .edns
        .as_ref()?
        .option(hickory_proto::rr::rdata::opt::EdnsCode::Unknown(15))?;
    match option {
        hickory_proto::rr::rdata::opt::EdnsOption::Unknown(_, data)
            if data.starts_with(&[0, 15]) =>
        {
            std::str::from_utf8(&data[2..])
                .ok()?
                .strip_prefix("category=")
                .map(str::to_string)
        }
        _ => None,
    }
}

/// Sends a message over UDP from `from` and parses the reply (panics on timeout).
pub async fn udp_from(from: IpAddr, server: SocketAddr, message: &Message) -> Message {
    let bytes = message.to_vec().expect("encode");
    let reply = exchange_raw_from(from, server, &bytes, CLIENT_WAIT)
        .await
        .expect("an answer within the client wait");
    let reply = Message::from_vec(&reply).expect("a parsable answer");
    assert_eq!(reply.metadata.id, message.metadata.id, "answer ID matches");
    reply
}

/// Sends a message over UDP from 127.0.0.1.
pub async fn udp(server: SocketAddr, message: &Message) -> Message {
    udp_from(IpAddr::V4(Ipv4Addr::LOCALHOST), server, message).await
}

/// Asks `qname`/`qtype` over UDP from 127.0.0.1.
pub async fn ask(server: SocketAddr, qname: &str, qtype: RecordType) -> Message {
    udp(server, &query_message(qname, qtype)).await
}

/// Sends raw bytes over one TCP connection and returns the raw reply, or `None`.
pub async fn tcp_raw(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let work = async {
        let mut stream = TcpStream::connect(server).await.ok()?;
        let len = u16::try_from(bytes.len()).ok()?;
        stream.write_all(&len.to_be_bytes()).await.ok()?;
        stream.write_all(bytes).await.ok()?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.ok()?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).await.ok()?;
        Some(buf)
    };
    tokio::time::timeout(CLIENT_WAIT, work).await.ok().flatten()
}

/// Sends a message over TCP and parses the reply.
pub async fn tcp(server: SocketAddr, message: &Message) -> Message {
    let reply = tcp_raw(server, &message.to_vec().expect("encode"))
        .await
        .expect("a TCP answer");
    Message::from_vec(&reply).expect("parsable")
}

/// A records' addresses in an answer.
pub fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// The SOA in the authority section, if any, with its record TTL.
pub fn soa_of(m: &Message) -> Option<(SOA, u32)> {
    m.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some((soa.clone(), r.ttl)),
        _ => None,
    })
}

/// A scriptable upstream on a real loopback UDP socket: it counts the queries it receives and
/// answers each (after `delay`) with the address set by the test, or stays silent. Used where
/// the in-process authority cannot misbehave on demand: slow, dead, or rebinding upstreams.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
}

struct FakeState {
    queries: std::sync::atomic::AtomicUsize,
    silent: std::sync::atomic::AtomicBool,
    hold: tokio::sync::watch::Sender<bool>,
    script: std::sync::Mutex<(IpAddr, u32, Duration)>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeUpstream {
    /// Starts answering A (or AAAA, for an IPv6 `ip`) queries with `ip`, TTL `ttl`, at once;
    /// other types get an empty NOERROR.
    pub async fn start(ip: IpAddr, ttl: u32) -> Self {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), ip, ttl).await
    }

    /// Like [`start`](Self::start), on a chosen loopback address.
    pub async fn start_on(bind: IpAddr, ip: IpAddr, ttl: u32) -> Self {
        use std::sync::atomic::Ordering;
        let socket = Arc::new(
            UdpSocket::bind(SocketAddr::new(bind, 0))
                .await
                .expect("bind fake upstream"),
        );
        let addr = socket.local_addr().expect("addr");
        let state = Arc::new(FakeState {
            queries: Default::default(),
            silent: Default::default(),
            hold: tokio::sync::watch::channel(false).0,
            script: std::sync::Mutex::new((ip, ttl, Duration::ZERO)),
        });
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                shared.queries.fetch_add(1, Ordering::SeqCst);
                if shared.silent.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let (ip, ttl, delay) = *shared.script.lock().expect("lock");
                let socket = Arc::clone(&socket);
                let mut hold = shared.hold.subscribe();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = hold.wait_for(|held| !held).await;
                    let reply = fake_reply(&query, ip, ttl);
                    let _ = socket.send_to(&reply.to_vec().expect("encode"), from).await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// Queries received so far.
    pub fn queries(&self) -> usize {
        self.state.queries.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops (or resumes) answering; queries are still counted.
    pub fn set_silent(&self, silent: bool) {
        self.state
            .silent
            .store(silent, std::sync::atomic::Ordering::SeqCst);
    }

    /// Answers from now on with `ip`, TTL `ttl`, after `delay`.
    pub fn set_answer(&self, ip: IpAddr, ttl: u32, delay: Duration) {
        *self.state.script.lock().expect("lock") = (ip, ttl, delay);
    }

    /// Holds every answer (received queries wait) until called again with `false`.
    pub fn set_hold(&self, hold: bool) {
        self.state.hold.send_replace(hold);
    }

    /// Waits (bounded by [`CLIENT_WAIT`]) until at least `n` queries have arrived.
    pub async fn wait_queries(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + CLIENT_WAIT;
        while self.queries() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "fake upstream saw {} of {n} queries",
                self.queries()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn fake_reply(query: &Message, ip: IpAddr, ttl: u32) -> Message {
    let mut reply = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    if let Some(q) = query.queries.first() {
        reply.add_query(q.clone());
        let data = match (q.query_type(), ip) {
            (RecordType::A, IpAddr::V4(v4)) => Some(RData::A(A(v4))),
            (RecordType::AAAA, IpAddr::V6(v6)) => Some(RData::AAAA(AAAA(v6))),
            _ => None,
        };
        if let Some(data) = data {
            reply.add_answer(Record::from_rdata(q.name().clone(), ttl, data));
        }
    }
    if query.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        reply.set_edns(edns);
    }
    reply
}

// ---------------------------------------------------------------- the binary, spawned

/// The `kidsafe` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_kidsafe");

/// A spawned `kidsafe run` whose stderr is collected line by line.
pub struct Spawned {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    pub addr: SocketAddr,
}

impl Spawned {
    pub fn start(config: &Path) -> Self {
        Self::start_in(Path::new("."), config)
    }

    /// Starts `kidsafe run` with `cwd` as its working directory (so `config` may be relative).
    pub fn start_in(cwd: &Path, config: &Path) -> Self {
        Self::start_env(cwd, config, &[])
    }

    /// Starts `kidsafe run` with extra environment variables (e.g. systemd's `NOTIFY_SOCKET`).
    pub fn start_env(cwd: &Path, config: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(BIN)
            .current_dir(cwd)
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "trace")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kidsafe");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("lock").push(line);
            }
        });
        let mut spawned = Self {
            child,
            lines,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = spawned.wait_for("listening", Duration::from_secs(20));
        let addr = line
            .split("addr=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        spawned.addr = addr;
        spawned
    }

    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .expect("lock")
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            if Instant::now() > deadline {
                panic!("{needle:?} not logged in {limit:?}; log:\n{}", self.log());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("kidsafe exited with {status}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub fn stop(self) -> String {
        self.signal("TERM");
        self.wait_exit()
    }

    /// Waits (at most 10 s) for the process to exit with status 0 and returns its log.
    pub fn wait_exit(mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "kidsafe exited with {status}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "kidsafe did not stop on SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the reader thread drain the pipe.
        std::thread::sleep(Duration::from_millis(100));
        self.log()
    }

    pub fn log(&self) -> String {
        self.lines.lock().expect("lock").join("\n")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn write_config(
    dir: &Path,
    upstream: SocketAddr,
    server_extra: &str,
    extra: &str,
) -> std::path::PathBuf {
    write_lists(dir);
    let path = dir.join("kidsafe.toml");
    std::fs::write(&path, config_text(upstream, server_extra, extra)).expect("write");
    path
}

pub fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let mut out = String::new();
    stream.read_to_string(&mut out).expect("read");
    out
}
