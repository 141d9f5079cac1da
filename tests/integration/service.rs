//! The daemon as systemd runs it: the sd_notify conversation on a test `NOTIFY_SOCKET`, and a
//! graceful stop with queries in flight.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::*;
use crate::harness::{Spawned, write_config};

/// The datagrams systemd would have received, collected on a socket in a tempdir.
struct NotifySocket {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind(dir: &Path) -> (Self, String) {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let path = path.to_str().expect("utf-8 path").to_string();
        (
            Self {
                socket,
                seen: Vec::new(),
            },
            path,
        )
    }

    /// Reads datagrams until one satisfies `want` (returned), or panics after `limit`.
    fn wait_for(&mut self, limit: Duration, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                self.seen.push(text.clone());
                if want(&text) {
                    return text;
                }
            }
        }
        panic!("no matching notification in {limit:?}; saw {:?}", self.seen);
    }

    fn count(&self, exact: &str) -> usize {
        self.seen.iter().filter(|m| m.as_str() == exact).count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tells_systemd_ready_status_watchdog_reloading_and_stopping() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), upstream.addr, "", "");
    let (mut notify, socket_path) = NotifySocket::bind(dir.path());
    // 400 ms watchdog: the daemon must ping every 200 ms.
    let daemon = Spawned::start_env(
        Path::new("."),
        &config,
        &[
            ("NOTIFY_SOCKET", socket_path.as_str()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );

    // READY=1 comes with the counts of what was loaded: 2 list files of 1 name each, plus the
    // built-in bypass list (its names folded where one covers another).
    let ready = notify.wait_for(Duration::from_secs(10), |m| m.contains("READY=1"));
    assert!(ready.contains("STATUS=generation 1: "), "{ready}");
    assert!(
        ready.contains(" names stored from 3 list files, 2 profiles"),
        "{ready}"
    );
    assert!(
        !notify.seen[..notify.seen.len() - 1]
            .iter()
            .any(|m| m.contains("READY=1")),
        "READY=1 sent once: {:?}",
        notify.seen
    );
    // And by then the filter answers.
    assert_eq!(
        a_records(&ask(daemon.addr, WWW, RecordType::A).await),
        vec![WWW_V4]
    );

    // The watchdog is fed.
    notify.wait_for(Duration::from_secs(5), |m| m == "WATCHDOG=1");
    notify.wait_for(Duration::from_secs(5), |m| m == "WATCHDOG=1");
    notify.wait_for(Duration::from_secs(5), |m| m == "WATCHDOG=1");

    // A reload is announced and its end reported with the new generation.
    daemon.signal("HUP");
    notify.wait_for(Duration::from_secs(10), |m| m == "RELOADING=1");
    let reloaded = notify.wait_for(Duration::from_secs(10), |m| m.contains("READY=1"));
    assert!(reloaded.contains("STATUS=generation 2:"), "{reloaded}");

    daemon.signal("TERM");
    let stopping = notify.wait_for(Duration::from_secs(10), |m| m.contains("STOPPING=1"));
    assert!(stopping.contains("STATUS=stopping"), "{stopping}");
    let log = daemon.wait_exit();
    assert!(log.contains("feeding the systemd watchdog"), "{log}");
    assert!(notify.count("WATCHDOG=1") >= 3);
}

#[test]
fn without_notify_socket_nothing_is_sent_and_the_daemon_runs() {
    // Covered implicitly by every other spawned test (they remove NOTIFY_SOCKET); here the
    // socket is set to something unusable: the daemon must still serve.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let upstream = Upstream::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let config = write_config(dir.path(), upstream.addr, "", "");
        let daemon = Spawned::start_env(
            Path::new("."),
            &config,
            &[("NOTIFY_SOCKET", "relative/not-a-socket")],
        );
        assert_eq!(
            a_records(&ask(daemon.addr, WWW, RecordType::A).await),
            vec![WWW_V4]
        );
        let log = daemon.stop();
        assert!(log.contains("cannot use NOTIFY_SOCKET"), "{log}");
    });
}

/// SIGTERM while queries wait on a slow upstream: they are all answered, a query arriving
/// during the drain is dropped (its client retries elsewhere), the answered ones are in the
/// flushed statistics, and the exit status is 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_queries_in_flight_then_flushes_and_exits_zero() {
    const IN_FLIGHT: usize = 8;
    let answer = Ipv4Addr::new(192, 0, 2, 55);
    let slow = FakeUpstream::start(IpAddr::V4(answer), 300).await;
    slow.set_hold(true);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), slow.addr, "", "");
    // Room for the drain: the held queries must not time out before they are released.
    let text = std::fs::read_to_string(&config).expect("read");
    std::fs::write(
        &config,
        text.replace("timeout = \"1500ms\"", "timeout = \"10s\""),
    )
    .expect("write");
    let (mut notify, socket_path) = NotifySocket::bind(dir.path());
    let mut daemon = Spawned::start_env(
        Path::new("."),
        &config,
        &[("NOTIFY_SOCKET", socket_path.as_str())],
    );
    let addr = daemon.addr;

    let clients: Vec<_> = (0..IN_FLIGHT)
        .map(|i| {
            tokio::spawn(async move {
                let q = query_message(&format!("n{i}.drain.test."), RecordType::A);
                try_udp(addr, &q, Duration::from_secs(20)).await
            })
        })
        .collect();
    slow.wait_queries(IN_FLIGHT).await;

    // Every query is now waiting on the upstream. Stop the daemon.
    daemon.signal("TERM");
    notify.wait_for(Duration::from_secs(10), |m| m.contains("STOPPING=1"));
    daemon.wait_for("stopping: no new queries accepted", Duration::from_secs(10));
    let late = try_udp(
        addr,
        &query_message("late.drain.test.", RecordType::A),
        Duration::from_millis(300),
    )
    .await;
    assert!(late.is_none(), "a query during the drain is dropped");
    assert_eq!(
        slow.queries(),
        IN_FLIGHT,
        "the late query was not forwarded"
    );

    // The upstream answers now; the daemon relays every answer before it exits.
    slow.set_hold(false);
    for client in clients {
        let reply = client.await.expect("join").unwrap_or_else(|| {
            panic!(
                "an in-flight query was not answered during the stop; log:\n{}",
                daemon.log()
            )
        });
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a_records(&reply), vec![answer]);
    }
    let log = daemon.wait_exit();
    assert!(log.contains("stopped"), "{log}");

    // The final flush ran after the drain: the drained queries are counted.
    let db = rusqlite::Connection::open(dir.path().join("state/stats.db")).expect("stats.db");
    let forwarded: i64 = db
        .query_row("SELECT SUM(forwarded) FROM totals", [], |r| r.get(0))
        .expect("totals");
    assert_eq!(forwarded, IN_FLIGHT as i64);
}
