//! Conversion benchmark: ours against libyuv (Debian `libyuv-dev`), side by
//! side in one run, single thread, at 1920x1080 and 3840x2160, with the
//! frame in cache (one source and one destination reused) and from DRAM
//! (rotating through enough frames to exceed the L3 several times); then
//! threads and the damage case.
//!
//! Run: `cargo bench --bench convert` (add `-- quick` for fewer iterations).

use std::hint::black_box;
use std::os::raw::c_int;
use std::time::Instant;

use wrd_capture::convert::{
    convert, Backend, DstFormat, DstPlanes, Options, Rect, SimdLevel, SrcFormat, SrcPlanes,
};
use wrd_capture::PixelFormat as P;

#[link(name = "yuv")]
extern "C" {
    fn NV12ToARGB(
        y: *const u8,
        sy: c_int,
        uv: *const u8,
        suv: c_int,
        d: *mut u8,
        sd: c_int,
        w: c_int,
        h: c_int,
    ) -> c_int;
    fn NV12ToABGR(
        y: *const u8,
        sy: c_int,
        uv: *const u8,
        suv: c_int,
        d: *mut u8,
        sd: c_int,
        w: c_int,
        h: c_int,
    ) -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn I420ToARGB(
        y: *const u8,
        sy: c_int,
        u: *const u8,
        su: c_int,
        v: *const u8,
        sv: c_int,
        d: *mut u8,
        sd: c_int,
        w: c_int,
        h: c_int,
    ) -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn I420ToABGR(
        y: *const u8,
        sy: c_int,
        u: *const u8,
        su: c_int,
        v: *const u8,
        sv: c_int,
        d: *mut u8,
        sd: c_int,
        w: c_int,
        h: c_int,
    ) -> c_int;
    fn YUY2ToARGB(s: *const u8, ss: c_int, d: *mut u8, sd: c_int, w: c_int, h: c_int) -> c_int;
    fn RGB24ToARGB(s: *const u8, ss: c_int, d: *mut u8, sd: c_int, w: c_int, h: c_int) -> c_int;
    fn RAWToARGB(s: *const u8, ss: c_int, d: *mut u8, sd: c_int, w: c_int, h: c_int) -> c_int;
    fn ABGRToARGB(s: *const u8, ss: c_int, d: *mut u8, sd: c_int, w: c_int, h: c_int) -> c_int;
    fn BGRAToARGB(s: *const u8, ss: c_int, d: *mut u8, sd: c_int, w: c_int, h: c_int) -> c_int;
    fn J400ToARGB(s: *const u8, ss: c_int, d: *mut u8, sd: c_int, w: c_int, h: c_int) -> c_int;
    fn ARGBCopy(s: *const u8, ss: c_int, d: *mut u8, sd: c_int, w: c_int, h: c_int) -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn ARGBToI420(
        s: *const u8,
        ss: c_int,
        y: *mut u8,
        sy: c_int,
        u: *mut u8,
        su: c_int,
        v: *mut u8,
        sv: c_int,
        w: c_int,
        h: c_int,
    ) -> c_int;
    fn ARGBToNV12(
        s: *const u8,
        ss: c_int,
        y: *mut u8,
        sy: c_int,
        uv: *mut u8,
        suv: c_int,
        w: c_int,
        h: c_int,
    ) -> c_int;
}

/// A frame: planes and strides, tightly packed.
struct Img {
    planes: Vec<Vec<u8>>,
    strides: Vec<usize>,
}

impl Img {
    fn new(f: P, w: u32, h: u32, seed: u8) -> Img {
        let (layout, _) = f.packed_layout(w, h, 1).unwrap();
        let mut planes = Vec::new();
        let mut strides = Vec::new();
        for l in layout {
            // Plausible video-ish bytes, not constant (touch every page).
            let v: Vec<u8> = (0..l.stride * l.rows)
                .map(|i| {
                    (i as u32)
                        .wrapping_mul(2654435761)
                        .rotate_left(seed as u32 % 32) as u8
                        / 2
                        + 60
                })
                .collect();
            planes.push(v);
            strides.push(l.stride);
        }
        Img { planes, strides }
    }
    fn src(&self) -> SrcPlanes<'_> {
        let mut planes: [&[u8]; 3] = [&[], &[], &[]];
        let mut strides = [0; 3];
        for (i, p) in self.planes.iter().enumerate() {
            planes[i] = p;
            strides[i] = self.strides[i];
        }
        SrcPlanes { planes, strides }
    }
    fn dst(&mut self) -> DstPlanes<'_> {
        let mut strides = [0; 3];
        strides[..self.strides.len()].copy_from_slice(&self.strides);
        let mut it = self.planes.iter_mut();
        let mut next = || it.next().map(|v| v.as_mut_slice()).unwrap_or(&mut []);
        let planes = [next(), next(), next()];
        DstPlanes { planes, strides }
    }
    fn p(&self, i: usize) -> *const u8 {
        self.planes[i].as_ptr()
    }
    fn m(&mut self, i: usize) -> *mut u8 {
        self.planes[i].as_mut_ptr()
    }
    fn s(&self, i: usize) -> c_int {
        self.strides[i] as c_int
    }
    fn bytes(&self) -> usize {
        self.planes.iter().map(|p| p.len()).sum()
    }
}

type Lib = fn(&Img, &mut Img, c_int, c_int);

struct Pair {
    name: &'static str,
    src: SrcFormat,
    dst: DstFormat,
    lib: Option<Lib>,
}

fn pairs() -> Vec<Pair> {
    use DstFormat as D;
    use SrcFormat::Pixel as S;
    // SAFETY (every closure below): the images were allocated for this
    // width and height with these strides, as libyuv requires.
    vec![
        Pair {
            name: "NV12->BGRA (NV12ToARGB)",
            src: S(P::Nv12),
            dst: D::Bgra,
            lib: Some(|s, d, w, h| unsafe {
                NV12ToARGB(s.p(0), s.s(0), s.p(1), s.s(1), d.m(0), d.s(0), w, h);
            }),
        },
        Pair {
            name: "NV12->RGBA (NV12ToABGR)",
            src: S(P::Nv12),
            dst: D::Rgba,
            lib: Some(|s, d, w, h| unsafe {
                NV12ToABGR(s.p(0), s.s(0), s.p(1), s.s(1), d.m(0), d.s(0), w, h);
            }),
        },
        Pair {
            name: "I420->BGRA (I420ToARGB)",
            src: S(P::I420),
            dst: D::Bgra,
            lib: Some(|s, d, w, h| unsafe {
                I420ToARGB(
                    s.p(0),
                    s.s(0),
                    s.p(1),
                    s.s(1),
                    s.p(2),
                    s.s(2),
                    d.m(0),
                    d.s(0),
                    w,
                    h,
                );
            }),
        },
        Pair {
            name: "I420->RGBA (I420ToABGR)",
            src: S(P::I420),
            dst: D::Rgba,
            lib: Some(|s, d, w, h| unsafe {
                I420ToABGR(
                    s.p(0),
                    s.s(0),
                    s.p(1),
                    s.s(1),
                    s.p(2),
                    s.s(2),
                    d.m(0),
                    d.s(0),
                    w,
                    h,
                );
            }),
        },
        Pair {
            name: "YUY2->BGRA (YUY2ToARGB)",
            src: S(P::Yuy2),
            dst: D::Bgra,
            lib: Some(|s, d, w, h| unsafe {
                YUY2ToARGB(s.p(0), s.s(0), d.m(0), d.s(0), w, h);
            }),
        },
        Pair {
            name: "BGR->BGRA (RGB24ToARGB)",
            src: S(P::Bgr),
            dst: D::Bgra,
            lib: Some(|s, d, w, h| unsafe {
                RGB24ToARGB(s.p(0), s.s(0), d.m(0), d.s(0), w, h);
            }),
        },
        Pair {
            name: "RGB->BGRA (RAWToARGB)",
            src: S(P::Rgb),
            dst: D::Bgra,
            lib: Some(|s, d, w, h| unsafe {
                RAWToARGB(s.p(0), s.s(0), d.m(0), d.s(0), w, h);
            }),
        },
        Pair {
            name: "RGBA->BGRA (ABGRToARGB)",
            src: S(P::Rgba),
            dst: D::Bgra,
            lib: Some(|s, d, w, h| unsafe {
                ABGRToARGB(s.p(0), s.s(0), d.m(0), d.s(0), w, h);
            }),
        },
        Pair {
            name: "ARGB32->BGRA (BGRAToARGB)",
            src: SrcFormat::Argb32,
            dst: D::Bgra,
            lib: Some(|s, d, w, h| unsafe {
                BGRAToARGB(s.p(0), s.s(0), d.m(0), d.s(0), w, h);
            }),
        },
        Pair {
            name: "GRAY8->BGRA (J400ToARGB)",
            src: S(P::Gray8),
            dst: D::Bgra,
            lib: Some(|s, d, w, h| unsafe {
                J400ToARGB(s.p(0), s.s(0), d.m(0), d.s(0), w, h);
            }),
        },
        Pair {
            name: "BGRA->BGRA (ARGBCopy)",
            src: S(P::Bgra),
            dst: D::Bgra,
            lib: Some(|s, d, w, h| unsafe {
                ARGBCopy(s.p(0), s.s(0), d.m(0), d.s(0), w, h);
            }),
        },
        Pair {
            name: "BGRA->I420 (ARGBToI420)",
            src: S(P::Bgra),
            dst: D::I420,
            lib: Some(|s, d, w, h| unsafe {
                ARGBToI420(
                    s.p(0),
                    s.s(0),
                    d.m(0),
                    d.s(0),
                    d.m(1),
                    d.s(1),
                    d.m(2),
                    d.s(2),
                    w,
                    h,
                );
            }),
        },
        Pair {
            name: "BGRA->NV12 (ARGBToNV12)",
            src: S(P::Bgra),
            dst: D::Nv12,
            lib: Some(|s, d, w, h| unsafe {
                ARGBToNV12(s.p(0), s.s(0), d.m(0), d.s(0), d.m(1), d.s(1), w, h);
            }),
        },
        Pair {
            name: "BGRx->BGRA",
            src: S(P::Bgrx),
            dst: D::Bgra,
            lib: None,
        },
        Pair {
            name: "BGRx->RGBA",
            src: S(P::Bgrx),
            dst: D::Rgba,
            lib: None,
        },
        Pair {
            name: "RGB24->RGBA",
            src: SrcFormat::Rgb24,
            dst: D::Rgba,
            lib: None,
        },
        Pair {
            name: "ARGB32->RGBA",
            src: SrcFormat::Argb32,
            dst: D::Rgba,
            lib: None,
        },
        Pair {
            name: "YUY2->RGBA",
            src: S(P::Yuy2),
            dst: D::Rgba,
            lib: None,
        },
    ]
}

/// Milliseconds per frame: the best of `reps` batches of `iters` calls,
/// rotating through the frames.
fn time(
    srcs: &[Img],
    dsts: &mut [Img],
    iters: usize,
    reps: usize,
    mut f: impl FnMut(&Img, &mut Img),
) -> f64 {
    let n = srcs.len();
    for i in 0..n.max(2) {
        f(&srcs[i % n], &mut dsts[i % n]);
    }
    let mut best = f64::MAX;
    let mut k = 0;
    for _ in 0..reps {
        let t = Instant::now();
        for _ in 0..iters {
            f(&srcs[k % n], &mut dsts[k % n]);
            k += 1;
        }
        best = best.min(t.elapsed().as_secs_f64() * 1000.0 / iters as f64);
    }
    black_box(&dsts[0].planes[0][0]);
    best
}

/// Ours and libyuv's ms per frame, measured in alternating batches so both
/// see the same machine load; the best batch of each.
fn time_both(
    srcs: &[Img],
    dsts: &mut [Img],
    iters: usize,
    reps: usize,
    mut a: impl FnMut(&Img, &mut Img),
    mut b: Option<impl FnMut(&Img, &mut Img)>,
) -> (f64, Option<f64>) {
    let n = srcs.len();
    for i in 0..n.max(2) {
        a(&srcs[i % n], &mut dsts[i % n]);
        if let Some(b) = b.as_mut() {
            b(&srcs[i % n], &mut dsts[i % n]);
        }
    }
    let (mut ta, mut tb) = (f64::MAX, f64::MAX);
    let mut k = 0;
    for _ in 0..reps {
        let t = Instant::now();
        for _ in 0..iters {
            a(&srcs[k % n], &mut dsts[k % n]);
            k += 1;
        }
        ta = ta.min(t.elapsed().as_secs_f64() * 1000.0 / iters as f64);
        if let Some(b) = b.as_mut() {
            let t = Instant::now();
            for _ in 0..iters {
                b(&srcs[k % n], &mut dsts[k % n]);
                k += 1;
            }
            tb = tb.min(t.elapsed().as_secs_f64() * 1000.0 / iters as f64);
        }
    }
    black_box(&dsts[0].planes[0][0]);
    (ta, b.map(|_| tb))
}

fn ours<'a>(
    p: &'a Pair,
    w: u32,
    h: u32,
    opts: Options,
    rects: Option<&'a [Rect]>,
) -> impl FnMut(&Img, &mut Img) + 'a {
    move |s: &Img, d: &mut Img| {
        convert(p.src, &s.src(), w, h, p.dst, &mut d.dst(), rects, &opts).unwrap();
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    // Other plain arguments filter pairs by substring (cargo passes --bench).
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "quick" && !a.starts_with('-'))
        .collect();
    let keep = |p: &Pair| filters.is_empty() || filters.iter().any(|f| p.name.contains(f.as_str()));
    let (reps, scale) = if quick { (3, 1) } else { (7, 2) };
    println!(
        "wrd-capture convert bench: best level {:?}, single thread unless noted; ms per frame (best of {reps} batches)",
        SimdLevel::detect()
    );
    println!("speedup = libyuv ms / ours ms (>1: ours faster)\n");
    println!(
        "{:<28} {:>9} {:>6} {:>9} {:>9} {:>8} {:>8}",
        "pair", "size", "data", "ours", "libyuv", "speedup", "maxdiff"
    );
    // 320x180 fits the L2 (kernel speed); 1080p fits the L3 in cache; 4K
    // does not fit even "in cache" (45 MB for NV12 + BGRA against 32 MB).
    let sizes = [(320u32, 180u32), (1920, 1080), (3840, 2160)];
    const L3_ROTATE_BYTES: usize = 160 << 20;
    let base = Options::default();
    for (w, h) in sizes {
        // memcpy baseline of a BGRA frame.
        for dram in [false, true] {
            if dram && w < 1000 {
                continue;
            }
            let f = Img::new(P::Bgra, w, h, 1);
            let n = if dram {
                (L3_ROTATE_BYTES / (2 * f.bytes())).max(2)
            } else {
                1
            };
            let srcs: Vec<Img> = (0..n).map(|i| Img::new(P::Bgra, w, h, i as u8)).collect();
            let mut dsts: Vec<Img> = (0..n)
                .map(|i| Img::new(P::Bgra, w, h, i as u8 + 7))
                .collect();
            let iters = if dram {
                2 * n
            } else {
                10 * scale * (1920 * 1080 / (w * h) as usize).max(1)
            };
            let t = time(&srcs, &mut dsts, iters, reps, |s, d| {
                d.planes[0].copy_from_slice(&s.planes[0])
            });
            println!(
                "{:<28} {:>9} {:>6} {:>9.3} {:>9} {:>8}",
                "memcpy BGRA frame",
                format!("{w}x{h}"),
                if dram { "dram" } else { "cache" },
                t,
                "-",
                "-"
            );
        }
        for p in pairs().into_iter().filter(|p| keep(p)) {
            for dram in [false, true] {
                if dram && w < 1000 {
                    continue;
                }
                let sf = p.src.layout();
                let df = p.dst.layout();
                let one = Img::new(sf, w, h, 0).bytes() + Img::new(df, w, h, 0).bytes();
                let n = if dram {
                    (L3_ROTATE_BYTES / one).max(2)
                } else {
                    1
                };
                let srcs: Vec<Img> = (0..n).map(|i| Img::new(sf, w, h, i as u8)).collect();
                let mut dsts: Vec<Img> = (0..n).map(|i| Img::new(df, w, h, i as u8 + 3)).collect();
                let iters = if dram {
                    2 * n
                } else {
                    10 * scale * (1920 * 1080 / (w * h) as usize).max(1)
                };
                let lib = p
                    .lib
                    .map(|lib| move |s: &Img, d: &mut Img| lib(s, d, w as c_int, h as c_int));
                let (t_ours, t_lib) = time_both(
                    &srcs,
                    &mut dsts,
                    iters,
                    reps,
                    ours(&p, w, h, base, None),
                    lib,
                );
                let (tl, sp) = match t_lib {
                    Some(t) => (format!("{t:.3}"), format!("{:.2}", t / t_ours)),
                    None => ("-".into(), "-".into()),
                };
                // How far apart the two outputs are (libyuv's 6/7-bit
                // coefficients against our reference-exact-within-1 ones).
                let diff = match (p.lib, dram) {
                    (Some(lib), false) => {
                        let mut a = Img::new(df, w, h, 9);
                        let mut b = Img::new(df, w, h, 9);
                        ours(&p, w, h, base, None)(&srcs[0], &mut a);
                        lib(&srcs[0], &mut b, w as c_int, h as c_int);
                        let m = a
                            .planes
                            .iter()
                            .zip(&b.planes)
                            .flat_map(|(x, y)| x.iter().zip(y))
                            .map(|(x, y)| (*x as i32 - *y as i32).abs())
                            .max()
                            .unwrap_or(0);
                        format!("{m}")
                    }
                    _ => String::new(),
                };
                println!(
                    "{:<28} {:>9} {:>6} {:>9.3} {:>9} {:>8} {:>8}",
                    p.name,
                    format!("{w}x{h}"),
                    if dram { "dram" } else { "cache" },
                    t_ours,
                    tl,
                    sp,
                    diff
                );
            }
        }
        println!();
    }

    // Backends compared (in cache, 1080p): our AVX2 kernels vs the yuv crate.
    println!(
        "backend comparison, 1920x1080 in cache: our AVX2 / our SSE4.1 / yuv crate (where used)"
    );
    let (w, h) = (1920, 1080);
    for p in pairs().into_iter().filter(|p| keep(p)) {
        let (sf, df) = (p.src.layout(), p.dst.layout());
        let srcs = vec![Img::new(sf, w, h, 0)];
        let mut dsts = vec![Img::new(df, w, h, 1)];
        let mut row = format!("{:<28}", p.name);
        for (lvl, ext) in [
            (SimdLevel::Avx2, Backend::Own),
            (SimdLevel::Sse41, Backend::Own),
            (SimdLevel::Scalar, Backend::Own),
            (SimdLevel::Avx2, Backend::YuvCrate),
        ] {
            if !lvl.is_supported() {
                continue;
            }
            let o = Options {
                level: Some(lvl),
                backend: ext,
                ..base
            };
            let t = time(&srcs, &mut dsts, 5 * scale, reps, ours(&p, w, h, o, None));
            let tag = if ext == Backend::YuvCrate {
                "yuv-crate"
            } else {
                lvl.name()
            };
            row += &format!(" {tag}={t:.3}");
        }
        println!("{row}");
    }
    println!();

    // Threads, 4K from DRAM and in cache.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("threads ({threads}), 3840x2160:");
    let (w, h) = (3840, 2160);
    for p in pairs().into_iter().filter(|p| {
        p.name.starts_with("NV12->BGRA")
            || p.name.starts_with("BGRA->I420")
            || p.name.starts_with("YUY2->BGRA")
    }) {
        let (sf, df) = (p.src.layout(), p.dst.layout());
        let one = Img::new(sf, w, h, 0).bytes() + Img::new(df, w, h, 0).bytes();
        for dram in [false, true] {
            let n = if dram {
                (L3_ROTATE_BYTES / one).max(2)
            } else {
                1
            };
            let srcs: Vec<Img> = (0..n).map(|i| Img::new(sf, w, h, i as u8)).collect();
            let mut dsts: Vec<Img> = (0..n).map(|i| Img::new(df, w, h, i as u8 + 3)).collect();
            let iters = if dram { 2 * n } else { 10 * scale };
            let t1 = time(&srcs, &mut dsts, iters, reps, ours(&p, w, h, base, None));
            let tn = time(
                &srcs,
                &mut dsts,
                iters,
                reps,
                ours(&p, w, h, Options { threads: 0, ..base }, None),
            );
            println!(
                "{:<28} {:>6} 1 thread {t1:.3} ms, {threads} threads {tn:.3} ms ({:.2}x)",
                p.name,
                if dram { "dram" } else { "cache" },
                t1 / tn
            );
        }
    }
    println!();

    // Damage: two 64x64 rectangles of a 4K frame against the full frame.
    println!("damage, 3840x2160, two 64x64 rectangles vs the full frame (from DRAM):");
    let rects = [Rect::new(100, 200, 64, 64), Rect::new(3000, 1500, 64, 64)];
    for p in pairs().into_iter().filter(|p| {
        p.name.starts_with("NV12->BGRA")
            || p.name.starts_with("BGRx->BGRA")
            || p.name.starts_with("BGRA->I420")
    }) {
        let (sf, df) = (p.src.layout(), p.dst.layout());
        let one = Img::new(sf, w, h, 0).bytes() + Img::new(df, w, h, 0).bytes();
        let n = (L3_ROTATE_BYTES / one).max(2);
        let srcs: Vec<Img> = (0..n).map(|i| Img::new(sf, w, h, i as u8)).collect();
        let mut dsts: Vec<Img> = (0..n).map(|i| Img::new(df, w, h, i as u8 + 3)).collect();
        let full = time(&srcs, &mut dsts, 2 * n, reps, ours(&p, w, h, base, None));
        let part = time(
            &srcs,
            &mut dsts,
            20 * n,
            reps,
            ours(&p, w, h, base, Some(&rects)),
        );
        println!(
            "{:<28} full {full:.3} ms, two rects {:.1} us ({:.2}% of full)",
            p.name,
            part * 1000.0,
            100.0 * part / full
        );
    }
}
