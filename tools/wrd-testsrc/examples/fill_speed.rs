//! How fast `pattern::fill` draws frames: `cargo run --release -p wrd-testsrc
//! --example fill_speed [WxH] [frames]` (default 3840x2160, 120 frames).

use std::time::Instant;

use wrd_capture::PixelFormat;
use wrd_testsrc::pattern;

fn main() {
    let mut args = std::env::args().skip(1);
    let (w, h) = args
        .next()
        .and_then(|s| {
            let (w, h) = s.split_once('x')?;
            Some((w.parse().ok()?, h.parse().ok()?))
        })
        .unwrap_or((3840u32, 2160u32));
    let frames: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(120);
    for fmt in PixelFormat::ALL {
        let (layout, total) = fmt.packed_layout(w, h, 64).unwrap();
        let mut buf = vec![0u8; total];
        let strides: Vec<usize> = layout.iter().map(|l| l.stride).collect();
        let mut fill = |seq| {
            let mut planes = pattern::split_planes(&mut buf, &layout);
            pattern::fill(fmt, w, h, seq, 0, &mut planes, &strides);
        };
        fill(0); // builds the background cache
        let t = Instant::now();
        for seq in 1..=frames {
            fill(seq);
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{fmt:>5} {w}x{h}: {:7.1} frames/s, {:6.2} ms/frame, {:6.0} MB/s",
            frames as f64 / s,
            s * 1000.0 / frames as f64,
            total as f64 * frames as f64 / s / 1e6
        );
    }
}
