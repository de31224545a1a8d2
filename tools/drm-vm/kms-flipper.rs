//! The VM test's display client: becomes DRM master on /dev/dri/card0, sets
//! the first connected connector's preferred mode on two XRGB8888 dumb
//! buffers with known pixels (see pattern.rs) and page-flips between them at
//! 10 Hz until the checker creates /tmp/checker-flips-done (or
//! `max_seconds` passed); then switches to a smaller mode on a third buffer
//! and holds it until /tmp/checker-done appears (or `max_seconds` more
//! passed), and exits. It writes what it did to /tmp/flipper-ready (for the
//! checker): `width height connector crtc fb0 fb1 small_width small_height fb2`.
//!
//! Usage: kms-flipper [max_seconds]

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use drm::buffer::DrmFourcc;
use drm::control::{connector, framebuffer, Device as ControlDevice, PageFlipFlags};

#[path = "pattern.rs"]
mod pattern;

struct Card(std::fs::File);
impl AsFd for Card {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
impl drm::Device for Card {}
impl ControlDevice for Card {}

fn fail(msg: String) -> ! {
    println!("DRM-TEST FAIL flipper: {msg}");
    std::process::exit(1)
}

/// A dumb buffer of buffer pattern `k`, with its framebuffer.
fn make_buffer(
    card: &Card,
    k: u32,
    w: u32,
    h: u32,
) -> (drm::control::dumbbuffer::DumbBuffer, framebuffer::Handle) {
    let mut db = card
        .create_dumb_buffer((w, h), DrmFourcc::Xrgb8888, 32)
        .unwrap_or_else(|e| fail(format!("create_dumb_buffer: {e}")));
    let pitch = drm::buffer::Buffer::pitch(&db) as usize;
    {
        let mut map = card
            .map_dumb_buffer(&mut db)
            .unwrap_or_else(|e| fail(format!("map_dumb_buffer: {e}")));
        for y in 0..h {
            let row = &mut map[y as usize * pitch..][..w as usize * 4];
            for x in 0..w {
                let v = match (x, y) {
                    (0, 0) => pattern::MARK | k,
                    (1, 0) => 0,
                    _ => pattern::pixel(k, x, y),
                };
                row[x as usize * 4..][..4].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
    let fb = card
        .add_framebuffer(&db, 24, 32)
        .unwrap_or_else(|e| fail(format!("add_framebuffer: {e}")));
    (db, fb)
}

/// Write the flip counter into pixel 1 of a buffer not on screen.
fn set_counter(card: &Card, db: &mut drm::control::dumbbuffer::DumbBuffer, n: u32) {
    let mut map = card
        .map_dumb_buffer(db)
        .unwrap_or_else(|e| fail(format!("map_dumb_buffer: {e}")));
    map[4..8].copy_from_slice(&n.to_le_bytes());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let max_s: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(60.0);
    let flag = |name: &str| std::path::Path::new(name).exists();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/dri/card0")
        .unwrap_or_else(|e| fail(format!("open /dev/dri/card0: {e}")));
    let card = Card(file);
    // The first opener of a primary node is master; make sure.
    if let Err(e) = drm::Device::acquire_master_lock(&card) {
        println!("flipper: acquire_master_lock: {e} (continuing)");
    }
    let res = card
        .resource_handles()
        .unwrap_or_else(|e| fail(format!("resources: {e}")));
    let conn = res
        .connectors()
        .iter()
        .filter_map(|&c| card.get_connector(c, true).ok())
        .find(|c| c.state() == connector::State::Connected)
        .unwrap_or_else(|| fail("no connected connector".into()));
    let mode = *conn
        .modes()
        .iter()
        .find(|m| {
            m.mode_type()
                .contains(drm::control::ModeTypeFlags::PREFERRED)
        })
        .or(conn.modes().first())
        .unwrap_or_else(|| fail("connector has no modes".into()));
    let (w, h) = (u32::from(mode.size().0), u32::from(mode.size().1));
    let small = *conn
        .modes()
        .iter()
        .find(|m| u32::from(m.size().0) < w && u32::from(m.size().1) < h)
        .unwrap_or_else(|| fail("no smaller mode to switch to".into()));
    let (sw, sh) = (u32::from(small.size().0), u32::from(small.size().1));
    let crtc = conn
        .encoders()
        .iter()
        .filter_map(|&e| card.get_encoder(e).ok())
        .flat_map(|e| res.filter_crtcs(e.possible_crtcs()))
        .next()
        .unwrap_or_else(|| fail("no CRTC for the connector".into()));

    let (mut db0, fb0) = make_buffer(&card, 0, w, h);
    let (mut db1, fb1) = make_buffer(&card, 1, w, h);
    let (_db2, fb2) = make_buffer(&card, 2, sw, sh);
    card.set_crtc(crtc, Some(fb0), (0, 0), &[conn.handle()], Some(mode))
        .unwrap_or_else(|e| fail(format!("set_crtc: {e}")));
    let info = format!(
        "{w} {h} {} {} {} {} {sw} {sh} {}\n",
        u32::from(conn.handle()),
        u32::from(crtc),
        u32::from(fb0),
        u32::from(fb1),
        u32::from(fb2)
    );
    std::fs::write("/tmp/flipper-ready.tmp", &info).unwrap();
    std::fs::rename("/tmp/flipper-ready.tmp", "/tmp/flipper-ready").unwrap();
    println!("flipper: mode {w}x{h} on connector/crtc/fbs {info}");

    let start = Instant::now();
    let mut n = 0u32;
    let mut on_screen = 0;
    while start.elapsed().as_secs_f64() < max_s && !flag("/tmp/checker-flips-done") {
        std::thread::sleep(Duration::from_millis(100));
        n += 1;
        let (next_db, next_fb) = if on_screen == 0 {
            (&mut db1, fb1)
        } else {
            (&mut db0, fb0)
        };
        set_counter(&card, next_db, n);
        card.page_flip(crtc, next_fb, PageFlipFlags::EVENT, None)
            .unwrap_or_else(|e| fail(format!("page_flip {n}: {e}")));
        // Wait for the flip to complete before queueing the next.
        'wait: loop {
            let events = card
                .receive_events()
                .unwrap_or_else(|e| fail(format!("receive_events: {e}")));
            for ev in events {
                if let drm::control::Event::PageFlip(_) = ev {
                    break 'wait;
                }
            }
        }
        on_screen ^= 1;
    }
    println!("flipper: {n} flips done; switching to {sw}x{sh}");
    card.set_crtc(crtc, Some(fb2), (0, 0), &[conn.handle()], Some(small))
        .unwrap_or_else(|e| fail(format!("set_crtc {sw}x{sh}: {e}")));
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < max_s && !flag("/tmp/checker-done") {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("flipper: done");
}
