//! Faults of the daemon: connection lost in bounded time, and the opt-in
//! reconnect with backoff and a circuit breaker (default-daemon mode).

mod common;

use std::time::{Duration, Instant};

use common::*;
use wrd_capture::capture::ReconnectPolicy;
use wrd_capture::{wrd_status, Capture, CaptureOptions, Event, PixelFormat, StreamState};
use wrd_testsrc::sandbox::{Producer, Sandbox};

fn default_daemon(sb: &Sandbox, reconnect: Option<ReconnectPolicy>) -> Capture {
    Capture::new(
        None,
        CaptureOptions {
            // The default-daemon path, pointed at the sandbox's socket.
            remote: Some(sb.socket_path().display().to_string()),
            reconnect,
            // A producer that comes back after the daemon may take a while.
            node_timeout: Duration::from_secs(5),
            ..Default::default()
        },
    )
    .expect("default-daemon connection")
}

#[test]
fn daemon_killed_gives_connection_lost_within_a_second() {
    let sb = Sandbox::start();
    let prod = Producer::spawn(&sb, &["--rate", "60"]);
    let cap = capture(&sb);
    let (cfg, rx) = recording_config(vec![]);
    let s = cap.add_stream(prod.nodes()[0].id, cfg).unwrap();
    collect(&rx, 3, Duration::from_secs(15));
    let t = Instant::now();
    sb.kill_daemon();
    let (_, _) = wait_event(&rx, Duration::from_secs(2), |e| *e == Event::ConnectionLost)
        .expect("connection lost event");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "within 1 s: {:?}",
        t.elapsed()
    );
    assert!(!cap.is_connected());
    // No reconnect with a portal fd: the stream stays closed, destroy works.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.stats().state, StreamState::Closed);
    drop(s);
    drop(cap);
}

#[test]
fn reconnects_with_backoff_and_readds_streams_by_node_name() {
    let mut sb = Sandbox::start();
    let prod = Producer::spawn(&sb, &["--rate", "60", "--name", "screen"]);
    let cap = default_daemon(
        &sb,
        Some(ReconnectPolicy {
            initial_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(400),
            max_attempts: 30,
        }),
    );
    let (cfg, rx) = recording_config(vec![PixelFormat::Bgrx]);
    let s = cap.add_stream(prod.nodes()[0].id, cfg).unwrap();
    let (before, _) = collect(&rx, 3, Duration::from_secs(15));
    assert!(before.iter().all(|r| r.pixels.is_ok()));
    drop(prod);
    sb.restart_daemon();
    // The producer comes back too, under a new node id, same node name.
    // (within the node timeout of the reconnect: the stream waits for it)
    let prod2 = Producer::spawn(&sb, &["--rate", "60", "--name", "screen"]);
    assert_ne!(prod2.nodes()[0].id, 0);
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut frames_after = 0;
    while Instant::now() < deadline && frames_after < 5 {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Msg::Event(e)) => events.push(e),
            Ok(Msg::Frame(r)) => {
                if events.contains(&Event::Reconnected) {
                    assert!(r.pixels.is_ok(), "{:?}", r.pixels);
                    frames_after += 1;
                }
            }
            Err(_) => break,
        }
    }
    assert!(events.contains(&Event::ConnectionLost), "{events:?}");
    let attempts: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Reconnecting { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert!(!attempts.is_empty() && attempts[0] == 1, "{events:?}");
    assert!(events.contains(&Event::Reconnected), "{events:?}");
    assert_eq!(
        frames_after, 5,
        "frames flow after the reconnect: {events:?}"
    );
    assert_eq!(
        s.node_id(),
        prod2.nodes()[0].id,
        "re-added for the node with that name"
    );
    assert!(cap.is_connected());
}

#[test]
fn circuit_breaker_gives_up_and_says_so() {
    let sb = Sandbox::start();
    let prod = Producer::spawn(&sb, &["--rate", "30"]);
    let cap = default_daemon(
        &sb,
        Some(ReconnectPolicy {
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(80),
            max_attempts: 4,
        }),
    );
    let (cfg, rx) = recording_config(vec![]);
    let _s = cap.add_stream(prod.nodes()[0].id, cfg).unwrap();
    collect(&rx, 2, Duration::from_secs(15));
    sb.kill_daemon();
    let delays = std::cell::RefCell::new(Vec::new());
    let (ev, _) = wait_event(&rx, Duration::from_secs(10), |e| {
        if let Event::Reconnecting { delay_ms, .. } = e {
            delays.borrow_mut().push(*delay_ms);
        }
        matches!(e, Event::Error { .. })
    })
    .expect("the breaker opens with an error event");
    let delays = delays.into_inner();
    match ev {
        Event::Error { status, message } => {
            assert_eq!(status, wrd_status::WRD_ERR_CONNECTION_LOST);
            assert!(message.contains("gave up"), "{message}");
        }
        _ => unreachable!(),
    }
    assert_eq!(delays, vec![20, 40, 80, 80], "exponential backoff, capped");
    // And then it stays quiet: no more attempts.
    assert!(wait_event(&rx, Duration::from_millis(500), |e| matches!(
        e,
        Event::Reconnecting { .. }
    ))
    .is_none());
}
