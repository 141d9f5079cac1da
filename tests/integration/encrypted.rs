//! Encrypted upstreams: DNS over TLS to an in-process hickory-server TLS listener on loopback,
//! with a certificate from a test CA made by rcgen (no network, no files outside a tempdir).

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
const TLS_NAME: &str = "dns.kidsafe.test";

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

impl DotUpstream {
    async fn start() -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
            .expect("ca");
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
        tls.alpn_protocols = vec![b"dot".to_vec()];

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind dot");
        let addr = listener.local_addr().expect("addr");
        let mut server = Server::new(catalog());
        server
            .register_tls_listener_with_tls_config(listener, Duration::from_secs(5), Arc::new(tls))
            .expect("tls listener");
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            let _ = server.shutdown_gracefully().await;
        });
        Self {
            addr,
            ca_pem: ca.pem(),
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
