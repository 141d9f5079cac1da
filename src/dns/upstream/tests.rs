//! Health and order, with a hand-moved clock.

use super::health::{Health, backoff};
use super::*;
use crate::config::{Strategy, UpstreamServer};

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_failed_upstream_is_skipped_then_probed_once_with_growing_backoff() {
    let health = Health::default();
    let a: SocketAddr = "127.0.0.1:5301".parse().expect("addr");
    let b: SocketAddr = "127.0.0.1:5302".parse().expect("addr");
    let servers = [UpstreamServer::Udp(a), UpstreamServer::Udp(b)];
    let (a_and_b, only_b) = (vec![0, 1], vec![1]);
    let t0 = Instant::now();
    assert_eq!(
        health.pick(&servers, t0, Strategy::Failover, false),
        a_and_b
    );
    health.record(a, false, t0, MS);
    assert!(health.is_down(a));
    assert_eq!(
        health.pick(&servers, t0, Strategy::Failover, false),
        only_b.clone(),
        "skipped while down"
    );
    // After the back-off one query probes it; the next ones do not pile on.
    let t1 = t0 + FIRST_BACKOFF;
    assert_eq!(
        health.pick(&servers, t1, Strategy::Failover, false),
        a_and_b.clone()
    );
    assert_eq!(
        health.pick(&servers, t1, Strategy::Failover, false),
        only_b.clone()
    );
    // The probe fails: the wait doubles.
    health.record(a, false, t1, MS);
    assert_eq!(
        health.pick(&servers, t1 + FIRST_BACKOFF, Strategy::Failover, false),
        only_b.clone()
    );
    assert_eq!(
        health.pick(&servers, t1 + 2 * FIRST_BACKOFF, Strategy::Failover, false),
        a_and_b.clone(),
        "probed after twice the first back-off"
    );
    // An answer brings it back at once.
    health.record(a, true, t1 + 2 * FIRST_BACKOFF, MS);
    assert!(!health.is_down(a));
    assert_eq!(
        health.pick(&servers, t1 + 2 * FIRST_BACKOFF, Strategy::Failover, false),
        a_and_b.clone()
    );
    // When everything is down, everything is tried.
    health.record(a, false, t1, MS);
    health.record(b, false, t1, MS);
    assert_eq!(
        health.pick(&servers, t1, Strategy::Failover, false),
        a_and_b.clone()
    );
    assert_eq!(backoff(100), MAX_BACKOFF);
}

#[test]
fn fastest_orders_by_smoothed_rtt_explores_and_remeasures_stale_estimates() {
    let health = Health::default();
    let slow: SocketAddr = "127.0.0.1:5311".parse().expect("addr");
    let fast: SocketAddr = "127.0.0.1:5312".parse().expect("addr");
    let servers = [UpstreamServer::Udp(slow), UpstreamServer::Udp(fast)];
    let pick = |at, explore| health.pick(&servers, at, Strategy::Fastest, explore);
    let t0 = Instant::now();
    // Unmeasured: the order written.
    assert_eq!(pick(t0, false), vec![0, 1]);
    health.record(slow, true, t0, Duration::from_millis(80));
    health.record(fast, true, t0, Duration::from_millis(5));
    assert_eq!(pick(t0, false), vec![1, 0], "the fast one first");
    assert_eq!(
        pick(t0, true),
        vec![0, 1],
        "exploring tries the other first"
    );
    // And its answer is a new measure, not one sample smoothed into an old estimate:
    // a slow upstream that recovered wins at once.
    health.record(slow, true, t0, Duration::from_millis(1));
    assert_eq!(pick(t0, false), vec![0, 1]);
    health.record(slow, true, t0, Duration::from_millis(80));
    health.record(slow, true, t0, Duration::from_millis(80));
    health.record(slow, true, t0, Duration::from_millis(80));
    health.record(slow, true, t0, Duration::from_millis(80));
    assert_eq!(pick(t0, false), vec![1, 0], "smoothed again after that");
    // The EWMA follows a change within a few answers, without jumping on one.
    health.record(fast, true, t0, Duration::from_millis(200));
    assert_eq!(
        pick(t0, false),
        vec![1, 0],
        "one slow answer does not demote it"
    );
    assert!(health.srtt(fast).expect("measured") < Duration::from_millis(60));
    for _ in 0..4 {
        health.record(fast, true, t0, Duration::from_millis(200));
    }
    assert_eq!(pick(t0, false), vec![0, 1], "a lasting slowdown does");
    for _ in 0..8 {
        health.record(fast, true, t0, Duration::from_millis(5));
    }
    assert_eq!(pick(t0, false), vec![1, 0]);
    // A stale estimate is measured again by one query, not by all of them.
    let later = t0 + STALE_ESTIMATE;
    health.record(fast, true, later, Duration::from_millis(5));
    assert_eq!(
        pick(later, false),
        vec![0, 1],
        "the slow one is re-measured"
    );
    assert_eq!(pick(later, false), vec![1, 0], "by one query only");
    // Failover ignores round-trip times.
    assert_eq!(
        health.pick(&servers, later, Strategy::Failover, false),
        vec![0, 1]
    );
}
