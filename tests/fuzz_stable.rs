//! The fuzz targets (`fuzz/bodies.rs`) on the stable toolchain: every file
//! of `fuzz/corpus/<target>/`, then random and mutated inputs for
//! `WRD_FUZZ_SECS` seconds per target (default 2; `WRD_FUZZ_SEED` fixes
//! the seed). A panic names the input, saved under
//! `target/fuzz-stable-crash-<target>-<n>`. With no ASan here, run it under
//! valgrind to catch out-of-bounds access in unsafe code:
//! `valgrind --error-exitcode=1 target/debug/deps/fuzz_stable-*`.
//! `WRD_FUZZ_WRITE_SEEDS=1` (re)writes the seed files of the corpora.

#[path = "../fuzz/bodies.rs"]
mod bodies;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(ROOT).join("fuzz/corpus").join(target);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| (e.path(), std::fs::read(e.path()).unwrap()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = [0, 1, 0x7f, 0x80, 0xff][rng.below(5)];
            }
            2 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.remove(i);
            }
            4 if v.len() >= 4 => {
                let i = rng.below(v.len() - 3);
                let x = [0u32, u32::MAX, u32::MAX - 7, 1 << 31, rng.next() as u32][rng.below(5)];
                v[i..i + 4].copy_from_slice(&x.to_le_bytes());
            }
            _ => v.truncate(rng.below(v.len() + 1)),
        }
    }
    v
}

fn run(target: &str, body: fn(&[u8])) {
    let secs: f64 = std::env::var("WRD_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    let seed = std::env::var("WRD_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let seeds = corpus(target);
    let run_one = |n: u64, input: &[u8]| {
        let r = std::panic::catch_unwind(|| body(input));
        if r.is_err() {
            let path = Path::new(ROOT)
                .join("target")
                .join(format!("fuzz-stable-crash-{target}-{n}"));
            let _ = std::fs::write(&path, input);
            panic!(
                "{target}: input {n} panicked (seed {seed}), saved to {}",
                path.display()
            );
        }
    };
    for (i, (_, s)) in seeds.iter().enumerate() {
        run_one(i as u64, s);
    }
    let mut rng = Rng(seed);
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_secs_f64(secs) {
        for _ in 0..64 {
            let input = if seeds.is_empty() || rng.below(4) == 0 {
                let len = rng.below(256);
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                let k = rng.below(seeds.len());
                mutate(&mut rng, &seeds[k].1)
            };
            run_one(seeds.len() as u64 + n, &input);
            n += 1;
        }
    }
    eprintln!(
        "{target}: {} corpus files + {n} generated inputs in {:.1} s (seed {seed}), no failure",
        seeds.len(),
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn fuzz_format_param() {
    run("format_param", bodies::format_param);
}

#[test]
fn fuzz_buffer_validate() {
    run("buffer_validate", bodies::buffer_validate);
}

#[test]
fn fuzz_metas() {
    run("metas", bodies::metas);
}

#[test]
fn fuzz_converters() {
    run("converters", bodies::converters);
}

/// Seed inputs for the corpora: real format pods (every format, odd and
/// huge sizes), structured-mode bytes, and one input per body mode.
#[test]
fn write_seeds() {
    if std::env::var_os("WRD_FUZZ_WRITE_SEEDS").is_none() {
        return;
    }
    use libspa::pod::Value;
    use libspa::utils::{Fraction, Rectangle};
    let dir = |t: &str| {
        let d = Path::new(ROOT).join("fuzz/corpus").join(t);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let fp = dir("format_param");
    for (i, f) in wrd_capture::PixelFormat::ALL.iter().enumerate() {
        for (j, (w, h)) in [(320, 240), (1, 1), (16384, 16384), (0, 0), (100000, 7)]
            .into_iter()
            .enumerate()
        {
            let pod = wrd_testsrc::spa::video_format(
                libspa_sys::SPA_PARAM_Format,
                *f,
                Value::Rectangle(Rectangle {
                    width: w,
                    height: h,
                }),
                Value::Fraction(Fraction { num: 60, denom: 1 }),
            );
            let mut bytes = vec![0u8];
            bytes.extend(pod);
            std::fs::write(fp.join(format!("pod-{i}-{j}")), bytes).unwrap();
        }
    }
    for (i, offer) in [wrd_capture::PixelFormat::ALL.to_vec()].iter().enumerate() {
        let o = wrd_capture::negotiation::Offer {
            formats: offer.clone(),
            modifiers: vec![(wrd_capture::PixelFormat::Bgrx, vec![0, 1 << 56])],
            max_framerate: 60,
            dont_fixate: true,
            explicit_sync: false,
        };
        for (k, pod) in wrd_capture::negotiation::enum_formats(&o)
            .into_iter()
            .enumerate()
        {
            let mut bytes = vec![0u8];
            bytes.extend(pod);
            std::fs::write(fp.join(format!("enum-{i}-{k}")), bytes).unwrap();
        }
    }
    for i in 0..8u8 {
        std::fs::write(
            fp.join(format!("structured-{i}")),
            [
                1, 6, 2, 3, i, 0x40, 1, 0, 0, 0xf0, 0, 0, 0, 4, 4, 30, 0, 0, 0, 1,
            ],
        )
        .unwrap();
    }
    let mut rng = Rng(0x5eed);
    for t in ["buffer_validate", "metas", "converters"] {
        let d = dir(t);
        for i in 0..16 {
            let len = 16 + rng.below(96);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            std::fs::write(d.join(format!("seed-{i}")), bytes).unwrap();
        }
    }
}
