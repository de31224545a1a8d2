//! Reusable pieces of gpu-check: DMA-BUFs of known pixels made on the GPU
//! (for validation and for end-to-end tests through a PipeWire daemon), and
//! pixel comparison.

pub mod cuda;

use std::os::fd::OwnedFd;

use wrd_capture::dmabuf::Dmabuf;
use wrd_capture::import::{Importer, ReadFormat};
use wrd_capture::Result;

/// The test pattern, as RGBA bytes (R, G, B, A), rows top to bottom.
/// Pixel (x, y): R = x & 0xff, G = y & 0xff, B = (x >> 8) << 4 | (y >> 8),
/// A = 0x80 | ((x ^ y) & 0x7f); a 16x16 marker in the top-left corner is
/// opaque red and one in the bottom-right corner opaque blue, so a flipped or
/// mirrored read-back cannot pass.
pub fn pattern_rgba(width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let mut v = vec![0u8; w * h * 4];
    for y in 0..h {
        for x in 0..w {
            let p = (y * w + x) * 4;
            let px = if x < 16 && y < 16 {
                [255, 0, 0, 255]
            } else if x + 16 >= w && y + 16 >= h {
                [0, 0, 255, 255]
            } else {
                [
                    x as u8,
                    y as u8,
                    (((x >> 8) << 4) | (y >> 8)) as u8,
                    0x80 | ((x ^ y) & 0x7f) as u8,
                ]
            };
            v[p..p + 4].copy_from_slice(&px);
        }
    }
    v
}

/// A GPU DMA-BUF holding [`pattern_rgba`], exported through EGL (the
/// importer must be an EGL importer with `EGL_MESA_image_dma_buf_export`).
/// Returns the buffer and the pattern.
pub fn make_pattern_dmabuf(
    importer: &Importer,
    width: u32,
    height: u32,
) -> Result<(Dmabuf<OwnedFd>, Vec<u8>)> {
    let rgba = pattern_rgba(width, height);
    let buf = importer.export_rgba_dmabuf(width, height, &rgba)?;
    Ok((buf, rgba))
}

/// Convert tightly packed RGBA to `out` (forcing alpha to 255 if `opaque`).
pub fn expected(rgba: &[u8], out: ReadFormat, swap_rb: bool, opaque: bool) -> Vec<u8> {
    rgba.chunks_exact(4)
        .flat_map(|p| {
            let (mut r, g, mut b, mut a) = (p[0], p[1], p[2], p[3]);
            if swap_rb {
                std::mem::swap(&mut r, &mut b);
            }
            if opaque {
                a = 255;
            }
            match out {
                ReadFormat::Bgra => [b, g, r, a],
                ReadFormat::Rgba => [r, g, b, a],
            }
        })
        .collect()
}

/// The first differing pixel: (x, y, got, want).
pub type FirstDiff = Option<(u32, u32, [u8; 4], [u8; 4])>;

/// Compare two tightly packed 4-byte images: (pixels differing by more than
/// `tol` in some channel, largest channel difference, first bad pixel).
pub fn compare(got: &[u8], want: &[u8], width: u32, tol: u8) -> (usize, u8, FirstDiff) {
    let mut bad = 0;
    let mut max = 0u8;
    let mut first = None;
    for (i, (g, w)) in got.chunks_exact(4).zip(want.chunks_exact(4)).enumerate() {
        let d = g
            .iter()
            .zip(w)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0);
        max = max.max(d);
        if d > tol {
            bad += 1;
            if first.is_none() {
                first = Some((
                    (i % width as usize) as u32,
                    (i / width as usize) as u32,
                    [g[0], g[1], g[2], g[3]],
                    [w[0], w[1], w[2], w[3]],
                ));
            }
        }
    }
    (bad, max, first)
}

/// Mean and 99th percentile of durations in microseconds.
pub fn stats_us(samples: &mut [f64]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let idx = ((samples.len() as f64 * 0.99).ceil() as usize).clamp(1, samples.len()) - 1;
    (mean, samples[idx])
}
