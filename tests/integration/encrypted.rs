//! Encrypted upstreams: DNS over TLS and DNS over HTTPS to in-process hickory-server listeners
//! on loopback, with a certificate from a test CA made by rcgen (no network, no files outside a
//! tempdir).

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use hickory_server::Server;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_util::sync::CancellationToken;

use crate::harness::*;

/// The name on the test server's certificate.
pub const TLS_NAME: &str = "dns.kidsafe.test";

/// A DoT upstream serving [`catalog`], and the PEM of the CA that signed its certificate.
struct DotUpstream {
    addr: SocketAddr,
    ca_pem: String,
    shutdown: CancellationToken,
}

impl Drop for DotUpstream {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A server certificate for [`TLS_NAME`] and 127.0.0.1 from a fresh test CA: the rustls
/// server settings (with `alpn`) and the CA's PEM.
pub fn test_server_tls(alpn: &[u8]) -> (Arc<rustls::ServerConfig>, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec![TLS_NAME.to_string(), "127.0.0.1".to_string()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .expect("server cert");
    tls.alpn_protocols = vec![alpn.to_vec()];
    (Arc::new(tls), ca.pem())
}

/// A DoH upstream (HTTP/2, `/dns-query`) serving [`catalog`], reached through a loopback TCP
/// relay that counts connections and can cut them all, to see reuse and reconnection.
struct DohUpstream {
    /// The relay's address: what the daemon is configured with.
    addr: SocketAddr,
    ca_pem: String,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    links: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    shutdown: CancellationToken,
}

impl Drop for DohUpstream {
    fn drop(&mut self) {
        self.cut();
        self.shutdown.cancel();
    }
}

impl DohUpstream {
    async fn start() -> Self {
        let (tls, ca_pem) = test_server_tls(b"h2");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind doh");
        let backend = listener.local_addr().expect("addr");
        let mut server = Server::new(catalog());
        server
            .register_https_listener_with_tls_config(
                listener,
                Duration::from_secs(5),
                tls,
                None,
                "/dns-query".to_string(),
            )
            .expect("https listener");
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            let _ = server.shutdown_gracefully().await;
        });

        let relay = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind relay");
        let addr = relay.local_addr().expect("addr");
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let links = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (count, held, stop) = (Arc::clone(&accepted), Arc::clone(&links), shutdown.clone());
        tokio::spawn(async move {
            loop {
                let mut inbound = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = relay.accept() => match accepted {
                        Ok((s, _)) => s,
                        Err(_) => return,
                    },
                };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                held.lock().expect("lock").push(link);
            }
        });
        Self {
            addr,
            ca_pem,
            accepted,
            links,
            shutdown,
        }
    }

    /// TCP connections the daemon opened to it so far.
    fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Closes every open connection, as a server or a NAT timing out would.
    fn cut(&self) {
        for link in self.links.lock().expect("lock").drain(..) {
            link.abort();
        }
    }
}

impl DotUpstream {
    async fn start() -> Self {
        let (tls, ca_pem) = test_server_tls(b"dot");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind dot");
        let addr = listener.local_addr().expect("addr");
        let mut server = Server::new(catalog());
        server
            .register_tls_listener_with_tls_config(listener, Duration::from_secs(5), tls)
            .expect("tls listener");
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            let _ = server.shutdown_gracefully().await;
        });
        Self {
            addr,
            ca_pem,
            shutdown,
        }
    }
}

/// The test config with `servers` replaced by `server` and `upstream_extra` added.
fn dot_config(server: &str, upstream_extra: &str) -> String {
    let placeholder: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    config_text(placeholder, "", "").replacen(
        "servers = [\"127.0.0.1:9\"]",
        &format!("servers = [\"{server}\"]\n{upstream_extra}"),
        1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dot_upstream_answers_over_tls() {
    let dot = DotUpstream::start().await;
    let ca_dir = tempfile::tempdir().expect("tempdir");
    let ca_file = ca_dir.path().join("school-ca.pem");
    std::fs::write(&ca_file, &dot.ca_pem).expect("write ca");
    let config = dot_config(
        &format!("tls://{}#{TLS_NAME}", dot.addr),
        &format!("tls_ca_file = \"{}\"", ca_file.display()),
    );
    let daemon = Daemon::start_text(config).await;
    assert_eq!(
        a_records(&ask(daemon.addr, WWW, RecordType::A).await),
        vec![WWW_V4]
    );
    // A large answer comes whole over the stream and is truncated only towards the UDP client.
    let big = tcp(daemon.addr, &query_message(BIG, RecordType::TXT)).await;
    assert_eq!(big.answers.len(), BIG_RECORDS);
    // The IP address form is checked against the certificate's IP entry.
    let by_ip = dot_config(
        &format!("tls://{}", dot.addr),
        &format!("tls_ca_file = \"{}\"", ca_file.display()),
    );
    let daemon_ip = Daemon::start_text(by_ip).await;
    assert_eq!(
        a_records(&ask(daemon_ip.addr, WWW, RecordType::A).await),
        vec![WWW_V4]
    );
    daemon.stop().await;
    daemon_ip.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dot_upstream_with_an_untrusted_or_wrong_certificate_is_not_used() {
    let dot = DotUpstream::start().await;
    let ca_dir = tempfile::tempdir().expect("tempdir");
    let ca_file = ca_dir.path().join("ca.pem");
    std::fs::write(&ca_file, &dot.ca_pem).expect("write ca");

    // Without the CA the certificate is not trusted (webpki roots only).
    let untrusted =
        Daemon::start_text(dot_config(&format!("tls://{}#{TLS_NAME}", dot.addr), "")).await;
    let reply = ask(untrusted.addr, WWW, RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    untrusted.stop().await;

    // With the CA but another name, it is not the server we meant.
    let wrong = Daemon::start_text(dot_config(
        &format!("tls://{}#other.kidsafe.test", dot.addr),
        &format!("tls_ca_file = \"{}\"", ca_file.display()),
    ))
    .await;
    let reply = ask(wrong.addr, WWW, RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    wrong.stop().await;
}

#[test]
fn a_bad_ca_file_is_a_config_error_with_its_location() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_lists(dir.path());
    std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").expect("write");
    let config = dir.path().join("kidsafe.toml");
    std::fs::write(
        &config,
        dot_config(
            "tls://127.0.0.1:853#dns.kidsafe.test",
            "tls_ca_file = \"ca.pem\"",
        ),
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_kidsafe"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("kidsafe.toml:"), "{stderr}");
    assert!(stderr.contains("upstream.tls_ca_file"), "{stderr}");
    assert!(stderr.contains("holds no certificate"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doh_upstream_answers_over_one_reused_http2_connection() {
    let doh = DohUpstream::start().await;
    let ca_dir = tempfile::tempdir().expect("tempdir");
    let ca_file = ca_dir.path().join("school-ca.pem");
    std::fs::write(&ca_file, &doh.ca_pem).expect("write ca");
    let written = format!("https://{}/dns-query#{TLS_NAME}", doh.addr);
    let config = dot_config(
        &written,
        &format!("tls_ca_file = \"{}\"", ca_file.display()),
    );
    let daemon = Daemon::start_text(config).await;
    let upstream = kidsafe::config::parse_upstream(&written).expect("doh upstream");

    // Allowed names resolve through it; a blocked one is still blocked, and never asked.
    assert_eq!(
        a_records(&ask(daemon.addr, WWW, RecordType::A).await),
        vec![WWW_V4]
    );
    let aaaa = ask(daemon.addr, WWW, RecordType::AAAA).await;
    assert_eq!(aaaa.metadata.response_code, ResponseCode::NoError);
    assert_eq!(aaaa.answers.len(), 1);
    let big = tcp(daemon.addr, &query_message(BIG, RecordType::TXT)).await;
    assert_eq!(big.answers.len(), BIG_RECORDS);
    let blocked = ask(daemon.addr, BLOCKED, RecordType::A).await;
    assert!(is_kidsafe_block(&blocked), "{blocked:?}");
    let counts = daemon.forwarder.metrics().of(&upstream);
    println!(
        "after 3 forwarded queries: {counts:?}, {} TCP connection(s)",
        doh.connections()
    );
    assert_eq!(counts.answers, 3, "three answers came over DoH: {counts:?}");
    assert_eq!(counts.failures, 0);
    assert_eq!(
        doh.connections(),
        1,
        "one HTTP/2 connection carried them all"
    );
    assert_eq!(daemon.forwarder.doh_connections(), 1);

    // Concurrent misses are multiplexed on that connection.
    let addr = daemon.addr;
    let burst: Vec<_> = (0..8)
        .map(|i| {
            let qtype = [
                RecordType::MX,
                RecordType::NS,
                RecordType::SOA,
                RecordType::CAA,
            ][i % 4];
            let name = if i < 4 { ZONE } else { "nothing.example.test." };
            tokio::spawn(async move { ask(addr, name, qtype).await })
        })
        .collect();
    for query in burst {
        let reply = query.await.expect("join");
        assert_ne!(reply.metadata.response_code, ResponseCode::ServFail);
    }
    assert_eq!(doh.connections(), 1, "the burst shared the connection");

    // The server drops the connection: the next query reconnects and is answered, and the
    // upstream is not counted as failing for it.
    doh.cut();
    let again = ask(daemon.addr, "again.example.test.", RecordType::A).await;
    assert_ne!(again.metadata.response_code, ResponseCode::ServFail);
    let counts = daemon.forwarder.metrics().of(&upstream);
    println!(
        "after the cut: {counts:?}, {} TCP connection(s)",
        doh.connections()
    );
    assert_eq!(doh.connections(), 2, "re-established once");
    assert_eq!(counts.answers, 12);
    assert_eq!(counts.failures, 0);
    assert!(!daemon.forwarder.is_down(upstream.addr()));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doh_upstream_with_an_untrusted_certificate_is_not_used() {
    let doh = DohUpstream::start().await;
    let written = format!("https://{}/dns-query#{TLS_NAME}", doh.addr);
    let daemon = Daemon::start_text(dot_config(&written, "")).await;
    let reply = ask(daemon.addr, WWW, RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    let upstream = kidsafe::config::parse_upstream(&written).expect("doh upstream");
    let counts = daemon.forwarder.metrics().of(&upstream);
    assert_eq!((counts.answers, counts.failures), (0, 1));
    daemon.stop().await;
}
