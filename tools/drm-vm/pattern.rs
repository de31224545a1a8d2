//! The pixels `kms-flipper` puts in its buffers and `drm-capture-check`
//! expects (shared by both through `#[path]`).

/// Pixel 0 of buffer `k`: a marker saying which buffer this is.
pub const MARK: u32 = 0x00C0_DE00;

/// XRGB8888 value of pixel (x, y) of buffer `k` (pixel 1 of row 0 holds the
/// flip counter instead; pixel 0 holds `MARK | k`).
pub fn pixel(k: u32, x: u32, y: u32) -> u32 {
    let r = (x
        .wrapping_mul(7)
        .wrapping_add(y.wrapping_mul(13))
        .wrapping_add(k * 101))
        & 0xff;
    let g = (y ^ (k * 0x55)) & 0xff;
    let b = (x >> 2).wrapping_add(k * 64) & 0xff;
    (r << 16) | (g << 8) | b
}
