//! Capture a few frames from a node through the safe Rust API and print
//! what arrives: `cargo run --example capture -- NODE_ID [FRAMES]`.

use std::sync::mpsc;
use std::time::Duration;

use wrd_capture::{Capture, CaptureOptions, Event, StreamConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let node: u32 = args
        .next()
        .ok_or("usage: capture NODE_ID [FRAMES]")?
        .parse()?;
    let frames: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let cap = Capture::new(None, CaptureOptions::default())?;
    let v = cap.versions();
    println!("library {} daemon {}", v.library, v.daemon);
    let (tx, rx) = mpsc::channel();
    let etx = tx.clone();
    let stream = cap.add_stream(
        node,
        StreamConfig {
            on_frame: Some(Box::new(move |f| {
                let _ = tx.send(Ok(format!(
                    "frame seq={} pts={} {}x{} {} planes={} damage={:?} flags={:#x}",
                    f.sequence(),
                    f.pts_ns(),
                    f.width(),
                    f.height(),
                    f.format(),
                    f.plane_count(),
                    f.damage(),
                    f.flags()
                )));
            })),
            on_event: Some(Box::new(move |e| {
                let _ = etx.send(Err(format!("{e:?}")));
                let _ = matches!(e, Event::NodeGone);
            })),
            ..Default::default()
        },
    )?;
    let mut n = 0;
    while n < frames {
        match rx.recv_timeout(Duration::from_secs(5))? {
            Ok(line) => {
                n += 1;
                println!("{line}");
            }
            Err(ev) => println!("event {ev}"),
        }
    }
    println!("{:?}", stream.stats());
    Ok(())
}
