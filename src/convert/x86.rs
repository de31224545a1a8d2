//! SSSE3/SSE4.1 and AVX2 row kernels (ours: see the table in `mod.rs` for
//! why each pair has its own kernel rather than the `yuv` crate's).
//!
//! Every kernel is a safe `#[target_feature]` function reached through a
//! wrapper that is only installed in the table of its level; `convert()`
//! selects a table only after checking the CPU supports that level. All
//! loads and stores go through `ld*`/`st*`, which index the slice first, so
//! a kernel can never touch memory outside its row slices (a wrong bound
//! would panic, not read out of bounds). Tails shorter than one SIMD block
//! are finished by the scalar kernels.

use std::arch::x86_64::*;

use super::kernels::{
    exp3_scalar, gray_scalar, i420_scalar, nv12_scalar, swz4_scalar, to420_scalar, yuy2_scalar,
    Chroma, RgbToYuvK, RowKernels, YuvToRgbK,
};
use super::OPAQUE;

pub(crate) static SSE41: RowKernels = RowKernels {
    swz4: swz4_sse,
    exp3: exp3_sse,
    gray: gray_sse,
    i420: i420_sse,
    nv12: nv12_sse,
    yuy2: yuy2_sse,
    to420: to420_sse,
};

pub(crate) static AVX2: RowKernels = RowKernels {
    swz4: swz4_avx2,
    exp3: exp3_avx2,
    gray: gray_avx2,
    i420: i420_avx2,
    nv12: nv12_avx2,
    yuy2: yuy2_avx2,
    to420: to420_avx2,
};

// ---------------------------------------------------------------------------
// Bounds-checked loads and stores.

#[inline(always)]
fn ld16(s: &[u8], i: usize) -> __m128i {
    let c = &s[i..i + 16];
    // SAFETY: `c` is 16 readable bytes; loadu needs no alignment. SSE2 is
    // part of the x86-64 baseline.
    unsafe { _mm_loadu_si128(c.as_ptr().cast()) }
}

#[inline(always)]
fn ld8(s: &[u8], i: usize) -> __m128i {
    let c = &s[i..i + 8];
    // SAFETY: `c` is 8 readable bytes; loadl_epi64 reads 8 unaligned bytes.
    unsafe { _mm_loadl_epi64(c.as_ptr().cast()) }
}

#[inline(always)]
fn st16(d: &mut [u8], i: usize, v: __m128i) {
    let c = &mut d[i..i + 16];
    // SAFETY: `c` is 16 writable bytes; storeu needs no alignment.
    unsafe { _mm_storeu_si128(c.as_mut_ptr().cast(), v) }
}

#[target_feature(enable = "avx2")]
#[inline]
fn ld32(s: &[u8], i: usize) -> __m256i {
    let c = &s[i..i + 32];
    // SAFETY: `c` is 32 readable bytes; loadu needs no alignment; AVX is
    // enabled for this function.
    unsafe { _mm256_loadu_si256(c.as_ptr().cast()) }
}

#[target_feature(enable = "avx2")]
#[inline]
fn st32(d: &mut [u8], i: usize, v: __m256i) {
    let c = &mut d[i..i + 32];
    // SAFETY: `c` is 32 writable bytes; storeu needs no alignment.
    unsafe { _mm256_storeu_si256(c.as_mut_ptr().cast(), v) }
}

/// Installed only in [`SSE41`]; see the module comment for why the call is sound.
macro_rules! sse_wrapper {
    ($name:ident, $imp:ident, ($($a:ident: $t:ty),*)) => {
        fn $name($($a: $t),*) {
            // SAFETY: this wrapper is only reachable through the SSE41 (or
            // AVX2) table, which convert() selects only after checking that
            // the CPU has SSSE3 and SSE4.1.
            unsafe { $imp($($a),*) }
        }
    };
}

/// Installed only in [`AVX2`].
macro_rules! avx2_wrapper {
    ($name:ident, $imp:ident, ($($a:ident: $t:ty),*)) => {
        fn $name($($a: $t),*) {
            // SAFETY: this wrapper is only reachable through the AVX2 table,
            // which convert() selects only after checking that the CPU has
            // AVX2, SSSE3 and SSE4.1.
            unsafe { $imp($($a),*) }
        }
    };
}

// ---------------------------------------------------------------------------
// 4-byte swizzles (BGRx/RGBx/... to BGRA/RGBA, ARGB32 loader).

/// The pshufb mask for 4 pixels of `bpp` source bytes (3 or 4) to 4-byte
/// pixels by `map`, and the OR mask that sets the opaque bytes. Computed
/// with a few instructions (it runs once per row): the pattern with
/// [`OPAQUE`] bytes as 0x80 plus each pixel's source offset (0x80 + offset
/// keeps the high bit, so pshufb still writes 0 there).
#[target_feature(enable = "ssse3,sse4.1")]
#[inline]
fn masks_fast(map: [u8; 4], bpp: i8) -> (__m128i, __m128i) {
    let pat = map.map(|m| if m == OPAQUE { 0x80 } else { m });
    let alpha = map.map(|m| if m == OPAQUE { 0xFF } else { 0 });
    let (o1, o2, o3) = (bpp, 2 * bpp, 3 * bpp);
    let off = _mm_setr_epi8(0, 0, 0, 0, o1, o1, o1, o1, o2, o2, o2, o2, o3, o3, o3, o3);
    let sh = _mm_add_epi8(_mm_set1_epi32(i32::from_le_bytes(pat)), off);
    (sh, _mm_set1_epi32(i32::from_le_bytes(alpha)))
}

sse_wrapper!(swz4_sse, swz4_sse_imp, (s: &[u8], d: &mut [u8], map: [u8; 4]));
#[target_feature(enable = "ssse3,sse4.1")]
fn swz4_sse_imp(s: &[u8], d: &mut [u8], map: [u8; 4]) {
    let n = d.len();
    let s = &s[..n];
    let (sh, or) = masks_fast(map, 4);
    let mut i = 0;
    for (sc, dc) in s.chunks_exact(16).zip(d.chunks_exact_mut(16)) {
        st16(dc, 0, _mm_or_si128(_mm_shuffle_epi8(ld16(sc, 0), sh), or));
        i += 16;
    }
    swz4_scalar(&s[i..], &mut d[i..], map);
}

avx2_wrapper!(swz4_avx2, swz4_avx2_imp, (s: &[u8], d: &mut [u8], map: [u8; 4]));
#[target_feature(enable = "avx2,ssse3,sse4.1")]
fn swz4_avx2_imp(s: &[u8], d: &mut [u8], map: [u8; 4]) {
    let n = d.len();
    let s = &s[..n];
    let (sh, or) = masks_fast(map, 4);
    let sh = _mm256_broadcastsi128_si256(sh);
    let or = _mm256_broadcastsi128_si256(or);
    let mut i = 0;
    for (sc, dc) in s.chunks_exact(32).zip(d.chunks_exact_mut(32)) {
        st32(
            dc,
            0,
            _mm256_or_si256(_mm256_shuffle_epi8(ld32(sc, 0), sh), or),
        );
        i += 32;
    }
    swz4_scalar(&s[i..], &mut d[i..], map);
}

// ---------------------------------------------------------------------------
// 3-byte to 4-byte (RGB, BGR, RGB24 loader).

sse_wrapper!(exp3_sse, exp3_sse_imp, (s: &[u8], d: &mut [u8], map: [u8; 4]));
#[target_feature(enable = "ssse3,sse4.1")]
fn exp3_sse_imp(s: &[u8], d: &mut [u8], map: [u8; 4]) {
    let w = d.len() / 4;
    let s = &s[..3 * w];
    let (sh, or) = masks_fast(map, 3);
    // 16 pixels from 48 bytes: three loads, realigned with palignr.
    let mut i = 0;
    for (sc, dc) in s.chunks_exact(48).zip(d.chunks_exact_mut(64)) {
        let a = ld16(sc, 0);
        let b = ld16(sc, 16);
        let c = ld16(sc, 32);
        let p0 = a; // px 0-3 in bytes 0-11
        let p1 = _mm_alignr_epi8::<12>(b, a); // px 4-7
        let p2 = _mm_alignr_epi8::<8>(c, b); // px 8-11
        let p3 = _mm_srli_si128::<4>(c); // px 12-15
        st16(dc, 0, _mm_or_si128(_mm_shuffle_epi8(p0, sh), or));
        st16(dc, 16, _mm_or_si128(_mm_shuffle_epi8(p1, sh), or));
        st16(dc, 32, _mm_or_si128(_mm_shuffle_epi8(p2, sh), or));
        st16(dc, 48, _mm_or_si128(_mm_shuffle_epi8(p3, sh), or));
        i += 16;
    }
    exp3_scalar(&s[3 * i..], &mut d[4 * i..], map);
}

avx2_wrapper!(exp3_avx2, exp3_avx2_imp, (s: &[u8], d: &mut [u8], map: [u8; 4]));
#[target_feature(enable = "avx2,ssse3,sse4.1")]
fn exp3_avx2_imp(s: &[u8], d: &mut [u8], map: [u8; 4]) {
    let w = d.len() / 4;
    let s = &s[..3 * w];
    let (sh, or) = masks_fast(map, 3);
    let sh = _mm256_broadcastsi128_si256(sh);
    let or = _mm256_broadcastsi128_si256(or);
    // 32 pixels from 96 bytes: three 32-byte loads (dwords 0-7, 8-15,
    // 16-23). Each group of 8 pixels is 6 dwords (group k: dwords 6k..6k+6);
    // a blend gathers a group that straddles two loads, and one vpermd puts
    // its pixels 0-3 (3 dwords) in the low lane and 4-7 in the high one.
    let i0 = _mm256_setr_epi32(0, 1, 2, 0, 3, 4, 5, 0);
    let i1 = _mm256_setr_epi32(6, 7, 0, 6, 1, 2, 3, 6); // [b0..b3, a4..a7]
    let i2 = _mm256_setr_epi32(4, 5, 6, 4, 7, 0, 1, 4); // [c0, c1, b2..b7]
    let i3 = _mm256_setr_epi32(2, 3, 4, 2, 5, 6, 7, 2);
    let mut i = 0;
    for (sc, dc) in s.chunks_exact(96).zip(d.chunks_exact_mut(128)) {
        let a = ld32(sc, 0);
        let b = ld32(sc, 32);
        let c = ld32(sc, 64);
        let g = [
            _mm256_permutevar8x32_epi32(a, i0),
            _mm256_permutevar8x32_epi32(_mm256_blend_epi32::<0b0000_1111>(a, b), i1),
            _mm256_permutevar8x32_epi32(_mm256_blend_epi32::<0b0000_0011>(b, c), i2),
            _mm256_permutevar8x32_epi32(c, i3),
        ];
        for (j, v) in g.into_iter().enumerate() {
            st32(dc, 32 * j, _mm256_or_si256(_mm256_shuffle_epi8(v, sh), or));
        }
        i += 32;
    }
    exp3_sse_imp(&s[3 * i..], &mut d[4 * i..], map);
}

// ---------------------------------------------------------------------------
// GRAY8 to 32-bit.

sse_wrapper!(gray_sse, gray_sse_imp, (s: &[u8], d: &mut [u8]));
#[target_feature(enable = "ssse3,sse4.1")]
fn gray_sse_imp(s: &[u8], d: &mut [u8]) {
    let w = d.len() / 4;
    let s = &s[..w];
    let (m0, or) = masks_fast([0, 0, 0, OPAQUE], 1);
    let m: [__m128i; 4] = std::array::from_fn(|j| _mm_add_epi8(m0, _mm_set1_epi8(4 * j as i8)));
    let mut i = 0;
    for (sc, dc) in s.chunks_exact(16).zip(d.chunks_exact_mut(64)) {
        let y = ld16(sc, 0);
        for (j, m) in m.iter().enumerate() {
            st16(dc, 16 * j, _mm_or_si128(_mm_shuffle_epi8(y, *m), or));
        }
        i += 16;
    }
    gray_scalar(&s[i..], &mut d[4 * i..]);
}

avx2_wrapper!(gray_avx2, gray_avx2_imp, (s: &[u8], d: &mut [u8]));
#[target_feature(enable = "avx2,ssse3,sse4.1")]
fn gray_avx2_imp(s: &[u8], d: &mut [u8]) {
    let w = d.len() / 4;
    let s = &s[..w];
    let (base, or) = masks_fast([0, 0, 0, OPAQUE], 1);
    let mk = |a: i8, b: i8| {
        let lo = _mm_add_epi8(base, _mm_set1_epi8(a));
        let hi = _mm_add_epi8(base, _mm_set1_epi8(b));
        _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi)
    };
    let (m0, m1) = (mk(0, 4), mk(8, 12));
    let or = _mm256_broadcastsi128_si256(or);
    let mut i = 0;
    for (sc, dc) in s.chunks_exact(16).zip(d.chunks_exact_mut(64)) {
        let y = _mm256_broadcastsi128_si256(ld16(sc, 0));
        st32(dc, 0, _mm256_or_si256(_mm256_shuffle_epi8(y, m0), or));
        st32(dc, 32, _mm256_or_si256(_mm256_shuffle_epi8(y, m1), or));
        i += 16;
    }
    gray_scalar(&s[i..], &mut d[4 * i..]);
}

// ---------------------------------------------------------------------------
// YUV to 32-bit RGB. The arithmetic is the one documented on `YuvToRgbK`.

/// 16 pixels: `ylo`, `yhi` are Y of pixels 0-7 and 8-15 as i16; `u`, `v` the
/// 8 chroma samples (raw, as i16) of those pixels. Writes 64 bytes at `i`.
#[target_feature(enable = "ssse3,sse4.1")]
#[inline]
fn yuv16_sse<const RGBA: bool>(
    ylo: __m128i,
    yhi: __m128i,
    u: __m128i,
    v: __m128i,
    k: &YuvToRgbK,
    d: &mut [u8],
    i: usize,
) {
    let yoff = _mm_set1_epi16(k.y_off);
    let cy = _mm_set1_epi16(k.cy);
    let bias = _mm_set1_epi16(i16::MIN);
    let c32 = _mm_set1_epi16(32);
    let ylo = _mm_add_epi16(
        _mm_mulhrs_epi16(_mm_slli_epi16::<7>(_mm_sub_epi16(ylo, yoff)), cy),
        c32,
    );
    let yhi = _mm_add_epi16(
        _mm_mulhrs_epi16(_mm_slli_epi16::<7>(_mm_sub_epi16(yhi, yoff)), cy),
        c32,
    );
    let u = _mm_xor_si128(_mm_slli_epi16::<8>(u), bias);
    let v = _mm_xor_si128(_mm_slli_epi16::<8>(v), bias);
    let rv = _mm_mulhrs_epi16(v, _mm_set1_epi16(k.crv));
    let gc = _mm_adds_epi16(
        _mm_mulhrs_epi16(u, _mm_set1_epi16(k.cgu)),
        _mm_mulhrs_epi16(v, _mm_set1_epi16(k.cgv)),
    );
    let bu = _mm_mulhrs_epi16(u, _mm_set1_epi16(k.cbu));
    let fin = |x: __m128i| _mm_srai_epi16::<6>(x);
    let r = _mm_packus_epi16(
        fin(_mm_adds_epi16(ylo, _mm_unpacklo_epi16(rv, rv))),
        fin(_mm_adds_epi16(yhi, _mm_unpackhi_epi16(rv, rv))),
    );
    let g = _mm_packus_epi16(
        fin(_mm_subs_epi16(ylo, _mm_unpacklo_epi16(gc, gc))),
        fin(_mm_subs_epi16(yhi, _mm_unpackhi_epi16(gc, gc))),
    );
    let b = _mm_packus_epi16(
        fin(_mm_adds_epi16(ylo, _mm_unpacklo_epi16(bu, bu))),
        fin(_mm_adds_epi16(yhi, _mm_unpackhi_epi16(bu, bu))),
    );
    let a = _mm_set1_epi8(-1);
    let (c0, c2) = if RGBA { (r, b) } else { (b, r) };
    let lo01 = _mm_unpacklo_epi8(c0, g);
    let hi01 = _mm_unpackhi_epi8(c0, g);
    let lo23 = _mm_unpacklo_epi8(c2, a);
    let hi23 = _mm_unpackhi_epi8(c2, a);
    st16(d, 4 * i, _mm_unpacklo_epi16(lo01, lo23));
    st16(d, 4 * i + 16, _mm_unpackhi_epi16(lo01, lo23));
    st16(d, 4 * i + 32, _mm_unpacklo_epi16(hi01, hi23));
    st16(d, 4 * i + 48, _mm_unpackhi_epi16(hi01, hi23));
}

/// 32 pixels: `ylo` holds Y of pixels 0-7 | 16-23 (128-bit lanes), `yhi`
/// 8-15 | 24-31, as i16; `u`, `v` the 16 chroma samples, 0-7 | 8-15.
/// Writes 128 bytes at pixel `i`.
#[target_feature(enable = "avx2,ssse3,sse4.1")]
#[inline]
fn yuv32_avx2<const RGBA: bool>(
    ylo: __m256i,
    yhi: __m256i,
    u: __m256i,
    v: __m256i,
    k: &YuvToRgbK,
    d: &mut [u8],
    i: usize,
) {
    let yoff = _mm256_set1_epi16(k.y_off);
    let cy = _mm256_set1_epi16(k.cy);
    let bias = _mm256_set1_epi16(i16::MIN);
    let c32 = _mm256_set1_epi16(32);
    let ylo = _mm256_add_epi16(
        _mm256_mulhrs_epi16(_mm256_slli_epi16::<7>(_mm256_sub_epi16(ylo, yoff)), cy),
        c32,
    );
    let yhi = _mm256_add_epi16(
        _mm256_mulhrs_epi16(_mm256_slli_epi16::<7>(_mm256_sub_epi16(yhi, yoff)), cy),
        c32,
    );
    let u = _mm256_xor_si256(_mm256_slli_epi16::<8>(u), bias);
    let v = _mm256_xor_si256(_mm256_slli_epi16::<8>(v), bias);
    let rv = _mm256_mulhrs_epi16(v, _mm256_set1_epi16(k.crv));
    let gc = _mm256_adds_epi16(
        _mm256_mulhrs_epi16(u, _mm256_set1_epi16(k.cgu)),
        _mm256_mulhrs_epi16(v, _mm256_set1_epi16(k.cgv)),
    );
    let bu = _mm256_mulhrs_epi16(u, _mm256_set1_epi16(k.cbu));
    let fin = |x: __m256i| _mm256_srai_epi16::<6>(x);
    // unpacklo/hi_epi16(t, t) duplicate chroma 0-3|8-11 and 4-7|12-15,
    // which are the pixels 0-7|16-23 and 8-15|24-31 of ylo and yhi.
    let r = _mm256_packus_epi16(
        fin(_mm256_adds_epi16(ylo, _mm256_unpacklo_epi16(rv, rv))),
        fin(_mm256_adds_epi16(yhi, _mm256_unpackhi_epi16(rv, rv))),
    );
    let g = _mm256_packus_epi16(
        fin(_mm256_subs_epi16(ylo, _mm256_unpacklo_epi16(gc, gc))),
        fin(_mm256_subs_epi16(yhi, _mm256_unpackhi_epi16(gc, gc))),
    );
    let b = _mm256_packus_epi16(
        fin(_mm256_adds_epi16(ylo, _mm256_unpacklo_epi16(bu, bu))),
        fin(_mm256_adds_epi16(yhi, _mm256_unpackhi_epi16(bu, bu))),
    );
    // r, g, b now hold pixels 0-15 | 16-31.
    store32_avx2::<RGBA>(r, g, b, d, i);
}

/// Interleave 32 pixels of R, G, B (bytes, pixels 0-15 | 16-31) with
/// alpha 255 into BGRA or RGBA at pixel `i` of `d` (128 bytes).
#[target_feature(enable = "avx2,ssse3,sse4.1")]
#[inline]
fn store32_avx2<const RGBA: bool>(r: __m256i, g: __m256i, b: __m256i, d: &mut [u8], i: usize) {
    let a = _mm256_set1_epi8(-1);
    let (c0, c2) = if RGBA { (r, b) } else { (b, r) };
    let lo01 = _mm256_unpacklo_epi8(c0, g); // 0-7 | 16-23
    let hi01 = _mm256_unpackhi_epi8(c0, g); // 8-15 | 24-31
    let lo23 = _mm256_unpacklo_epi8(c2, a);
    let hi23 = _mm256_unpackhi_epi8(c2, a);
    let o0 = _mm256_unpacklo_epi16(lo01, lo23); // 0-3 | 16-19
    let o1 = _mm256_unpackhi_epi16(lo01, lo23); // 4-7 | 20-23
    let o2 = _mm256_unpacklo_epi16(hi01, hi23); // 8-11 | 24-27
    let o3 = _mm256_unpackhi_epi16(hi01, hi23); // 12-15 | 28-31
    st32(d, 4 * i, _mm256_permute2x128_si256::<0x20>(o0, o1));
    st32(d, 4 * i + 32, _mm256_permute2x128_si256::<0x20>(o2, o3));
    st32(d, 4 * i + 64, _mm256_permute2x128_si256::<0x31>(o0, o1));
    st32(d, 4 * i + 96, _mm256_permute2x128_si256::<0x31>(o2, o3));
}

/// R, G, B (i16, after the final shift) of 16 pixels whose chroma is given
/// per pixel: `y` raw Y as i16, `u`, `v` as `(U - 128) << 8`.
#[target_feature(enable = "avx2,ssse3,sse4.1")]
#[inline]
fn rgb16_avx2(y: __m256i, u: __m256i, v: __m256i, k: &YuvToRgbK) -> [__m256i; 3] {
    let yc = _mm256_add_epi16(
        _mm256_mulhrs_epi16(
            _mm256_slli_epi16::<7>(_mm256_sub_epi16(y, _mm256_set1_epi16(k.y_off))),
            _mm256_set1_epi16(k.cy),
        ),
        _mm256_set1_epi16(32),
    );
    let rv = _mm256_mulhrs_epi16(v, _mm256_set1_epi16(k.crv));
    let gc = _mm256_adds_epi16(
        _mm256_mulhrs_epi16(u, _mm256_set1_epi16(k.cgu)),
        _mm256_mulhrs_epi16(v, _mm256_set1_epi16(k.cgv)),
    );
    let bu = _mm256_mulhrs_epi16(u, _mm256_set1_epi16(k.cbu));
    [
        _mm256_srai_epi16::<6>(_mm256_adds_epi16(yc, rv)),
        _mm256_srai_epi16::<6>(_mm256_subs_epi16(yc, gc)),
        _mm256_srai_epi16::<6>(_mm256_adds_epi16(yc, bu)),
    ]
}

fn i420_sse(y: &[u8], u: &[u8], v: &[u8], d: &mut [u8], k: &YuvToRgbK, rgba: bool) {
    // SAFETY: only installed in the SSE41 and AVX2 tables, which convert()
    // selects only after checking that the CPU has SSSE3 and SSE4.1.
    unsafe {
        if rgba {
            i420_sse_t::<true>(y, u, v, d, k)
        } else {
            i420_sse_t::<false>(y, u, v, d, k)
        }
    }
}
#[target_feature(enable = "ssse3,sse4.1")]
fn i420_sse_t<const RGBA: bool>(y: &[u8], u: &[u8], v: &[u8], d: &mut [u8], k: &YuvToRgbK) {
    let w = d.len() / 4;
    let z = _mm_setzero_si128();
    // Fixed-size chunks: the bounds are known, no checks in the loop.
    let chunks = y[..w]
        .chunks_exact(16)
        .zip(u.chunks_exact(8).zip(v.chunks_exact(8)))
        .zip(d.chunks_exact_mut(64));
    let mut i = 0;
    for ((yc, (uc, vc)), dc) in chunks {
        let yy = ld16(yc, 0);
        let uu = _mm_cvtepu8_epi16(ld8(uc, 0));
        let vv = _mm_cvtepu8_epi16(ld8(vc, 0));
        yuv16_sse::<RGBA>(
            _mm_unpacklo_epi8(yy, z),
            _mm_unpackhi_epi8(yy, z),
            uu,
            vv,
            k,
            dc,
            0,
        );
        i += 16;
    }
    i420_scalar(&y[i..], &u[i / 2..], &v[i / 2..], &mut d[4 * i..], k, RGBA);
}

fn i420_avx2(y: &[u8], u: &[u8], v: &[u8], d: &mut [u8], k: &YuvToRgbK, rgba: bool) {
    // SAFETY: only installed in the AVX2 table, which convert() selects
    // only after checking that the CPU has AVX2, SSSE3 and SSE4.1.
    unsafe {
        if rgba {
            i420_avx2_t::<true>(y, u, v, d, k)
        } else {
            i420_avx2_t::<false>(y, u, v, d, k)
        }
    }
}
#[target_feature(enable = "avx2,ssse3,sse4.1")]
fn i420_avx2_t<const RGBA: bool>(y: &[u8], u: &[u8], v: &[u8], d: &mut [u8], k: &YuvToRgbK) {
    let w = d.len() / 4;
    let z = _mm256_setzero_si256();
    let chunks = y[..w]
        .chunks_exact(32)
        .zip(u.chunks_exact(16).zip(v.chunks_exact(16)))
        .zip(d.chunks_exact_mut(128));
    let mut i = 0;
    for ((yc, (uc, vc)), dc) in chunks {
        let yy = ld32(yc, 0);
        let uu = _mm256_cvtepu8_epi16(ld16(uc, 0));
        let vv = _mm256_cvtepu8_epi16(ld16(vc, 0));
        yuv32_avx2::<RGBA>(
            _mm256_unpacklo_epi8(yy, z),
            _mm256_unpackhi_epi8(yy, z),
            uu,
            vv,
            k,
            dc,
            0,
        );
        i += 32;
    }
    i420_scalar(&y[i..], &u[i / 2..], &v[i / 2..], &mut d[4 * i..], k, RGBA);
}

fn nv12_sse(y: &[u8], uv: &[u8], d: &mut [u8], k: &YuvToRgbK, rgba: bool) {
    // SAFETY: only installed in the SSE41 and AVX2 tables, which convert()
    // selects only after checking that the CPU has SSSE3 and SSE4.1.
    unsafe {
        if rgba {
            nv12_sse_t::<true>(y, uv, d, k)
        } else {
            nv12_sse_t::<false>(y, uv, d, k)
        }
    }
}
#[target_feature(enable = "ssse3,sse4.1")]
fn nv12_sse_t<const RGBA: bool>(y: &[u8], uv: &[u8], d: &mut [u8], k: &YuvToRgbK) {
    let w = d.len() / 4;
    let z = _mm_setzero_si128();
    let lo = _mm_set1_epi16(0xFF);
    let chunks = y[..w]
        .chunks_exact(16)
        .zip(uv.chunks_exact(16))
        .zip(d.chunks_exact_mut(64));
    let mut i = 0;
    for ((yc, cc), dc) in chunks {
        let yy = ld16(yc, 0);
        let c = ld16(cc, 0);
        yuv16_sse::<RGBA>(
            _mm_unpacklo_epi8(yy, z),
            _mm_unpackhi_epi8(yy, z),
            _mm_and_si128(c, lo),
            _mm_srli_epi16::<8>(c),
            k,
            dc,
            0,
        );
        i += 16;
    }
    nv12_scalar(&y[i..], &uv[i..], &mut d[4 * i..], k, RGBA);
}

fn nv12_avx2(y: &[u8], uv: &[u8], d: &mut [u8], k: &YuvToRgbK, rgba: bool) {
    // SAFETY: only installed in the AVX2 table, which convert() selects
    // only after checking that the CPU has AVX2, SSSE3 and SSE4.1.
    unsafe {
        if rgba {
            nv12_avx2_t::<true>(y, uv, d, k)
        } else {
            nv12_avx2_t::<false>(y, uv, d, k)
        }
    }
}
#[target_feature(enable = "avx2,ssse3,sse4.1")]
fn nv12_avx2_t<const RGBA: bool>(y: &[u8], uv: &[u8], d: &mut [u8], k: &YuvToRgbK) {
    let w = d.len() / 4;
    let z = _mm256_setzero_si256();
    let lo = _mm256_set1_epi16(0xFF);
    let chunks = y[..w]
        .chunks_exact(32)
        .zip(uv.chunks_exact(32))
        .zip(d.chunks_exact_mut(128));
    let mut i = 0;
    for ((yc, cc), dc) in chunks {
        let yy = ld32(yc, 0);
        let c = ld32(cc, 0);
        yuv32_avx2::<RGBA>(
            _mm256_unpacklo_epi8(yy, z),
            _mm256_unpackhi_epi8(yy, z),
            _mm256_and_si256(c, lo),
            _mm256_srli_epi16::<8>(c),
            k,
            dc,
            0,
        );
        i += 32;
    }
    nv12_scalar(&y[i..], &uv[i..], &mut d[4 * i..], k, RGBA);
}

fn yuy2_sse(s: &[u8], d: &mut [u8], k: &YuvToRgbK, rgba: bool) {
    // SAFETY: only installed in the SSE41 and AVX2 tables, which convert()
    // selects only after checking that the CPU has SSSE3 and SSE4.1.
    unsafe {
        if rgba {
            yuy2_sse_t::<true>(s, d, k)
        } else {
            yuy2_sse_t::<false>(s, d, k)
        }
    }
}
#[target_feature(enable = "ssse3,sse4.1")]
fn yuy2_sse_t<const RGBA: bool>(s: &[u8], d: &mut [u8], k: &YuvToRgbK) {
    let w = d.len() / 4;
    let lo8 = _mm_set1_epi16(0xFF);
    let lo16 = _mm_set1_epi32(0xFFFF);
    let mut i = 0;
    for (sc, dc) in s[..2 * w].chunks_exact(32).zip(d.chunks_exact_mut(64)) {
        let a = ld16(sc, 0);
        let b = ld16(sc, 16);
        let ca = _mm_srli_epi16::<8>(a);
        let cb = _mm_srli_epi16::<8>(b);
        let u = _mm_packus_epi32(_mm_and_si128(ca, lo16), _mm_and_si128(cb, lo16));
        let v = _mm_packus_epi32(_mm_srli_epi32::<16>(ca), _mm_srli_epi32::<16>(cb));
        yuv16_sse::<RGBA>(_mm_and_si128(a, lo8), _mm_and_si128(b, lo8), u, v, k, dc, 0);
        i += 16;
    }
    yuy2_scalar(&s[2 * i..], &mut d[4 * i..], k, RGBA);
}

fn yuy2_avx2(s: &[u8], d: &mut [u8], k: &YuvToRgbK, rgba: bool) {
    // SAFETY: only installed in the AVX2 table, which convert() selects
    // only after checking that the CPU has AVX2, SSSE3 and SSE4.1.
    unsafe {
        if rgba {
            yuy2_avx2_t::<true>(s, d, k)
        } else {
            yuy2_avx2_t::<false>(s, d, k)
        }
    }
}
#[target_feature(enable = "avx2,ssse3,sse4.1")]
fn yuy2_avx2_t<const RGBA: bool>(s: &[u8], d: &mut [u8], k: &YuvToRgbK) {
    let w = d.len() / 4;
    let lo8 = _mm256_set1_epi16(0xFF);
    let bias = _mm256_set1_epi16(i16::MIN);
    // Per 128-bit lane (8 pixels: Y0 U0 Y1 V0 ...): U (or V) of each pixel
    // into the high byte of its 16-bit lane, i.e. U << 8, already duplicated
    // for the two pixels of a pair.
    let z = -128i8;
    #[rustfmt::skip]
    let mu = _mm256_setr_epi8(
        z, 1, z, 1, z, 5, z, 5, z, 9, z, 9, z, 13, z, 13,
        z, 1, z, 1, z, 5, z, 5, z, 9, z, 9, z, 13, z, 13,
    );
    #[rustfmt::skip]
    let mv = _mm256_setr_epi8(
        z, 3, z, 3, z, 7, z, 7, z, 11, z, 11, z, 15, z, 15,
        z, 3, z, 3, z, 7, z, 7, z, 11, z, 11, z, 15, z, 15,
    );
    let mut i = 0;
    for (sc, dc) in s[..2 * w].chunks_exact(64).zip(d.chunks_exact_mut(128)) {
        let a = ld32(sc, 0); // pixels 0-7 | 8-15
        let b = ld32(sc, 32); // pixels 16-23 | 24-31
        let [ra, ga, ba] = rgb16_avx2(
            _mm256_and_si256(a, lo8),
            _mm256_xor_si256(_mm256_shuffle_epi8(a, mu), bias),
            _mm256_xor_si256(_mm256_shuffle_epi8(a, mv), bias),
            k,
        );
        let [rb, gb, bb] = rgb16_avx2(
            _mm256_and_si256(b, lo8),
            _mm256_xor_si256(_mm256_shuffle_epi8(b, mu), bias),
            _mm256_xor_si256(_mm256_shuffle_epi8(b, mv), bias),
            k,
        );
        // packus: 0-7 16-23 | 8-15 24-31 (qwords); 0xD8 orders them.
        let pack =
            |x: __m256i, y: __m256i| _mm256_permute4x64_epi64::<0xD8>(_mm256_packus_epi16(x, y));
        store32_avx2::<RGBA>(pack(ra, rb), pack(ga, gb), pack(ba, bb), dc, 0);
        i += 32;
    }
    yuy2_scalar(&s[2 * i..], &mut d[4 * i..], k, RGBA);
}

// ---------------------------------------------------------------------------
// 32-bit RGB to 4:2:0 (I420 / NV12). Exactly the integer arithmetic of the
// scalar kernel (Q15 coefficients, `pmaddwd`, 32-bit sums), so the bytes
// are identical at every level.

#[inline(always)]
fn st8(d: &mut [u8], i: usize, v: __m128i) {
    let c = &mut d[i..i + 8];
    // SAFETY: `c` is 8 writable bytes; storel_epi64 writes 8 unaligned bytes.
    unsafe { _mm_storel_epi64(c.as_mut_ptr().cast(), v) }
}

#[target_feature(enable = "sse2")]
#[inline]
fn st4(d: &mut [u8], i: usize, v: __m128i) {
    d[i..i + 4].copy_from_slice(&_mm_cvtsi128_si32(v).to_le_bytes());
}

/// Per-pixel i16 coefficients for `pmaddwd` against a pixel unpacked to
/// i16: `k` R, G, B placed at the bytes `o` names, 0 for the fourth byte.
fn coef8(o: [u8; 3], kr: i32, kg: i32, kb: i32) -> [i16; 8] {
    let mut c = [0i16; 8];
    for px in 0..2 {
        c[4 * px + o[0] as usize] = kr as i16;
        c[4 * px + o[1] as usize] = kg as i16;
        c[4 * px + o[2] as usize] = kb as i16;
    }
    c
}

#[target_feature(enable = "sse2")]
#[inline]
fn m128_i16(c: &[i16; 8]) -> __m128i {
    _mm_set_epi16(c[7], c[6], c[5], c[4], c[3], c[2], c[1], c[0])
}

fn to420_sse(
    s0: &[u8],
    s1: &[u8],
    y0: &mut [u8],
    y1: Option<&mut [u8]>,
    ch: &mut Chroma<'_>,
    k: &RgbToYuvK,
    o: [u8; 3],
) {
    // SAFETY: only installed in the SSE41 table, which convert() selects
    // only after checking that the CPU has SSSE3 and SSE4.1.
    unsafe { to420_sse_imp(s0, s1, y0, y1, ch, k, o) }
}

#[target_feature(enable = "ssse3,sse4.1")]
fn to420_sse_imp(
    s0: &[u8],
    s1: &[u8],
    y0: &mut [u8],
    y1: Option<&mut [u8]>,
    ch: &mut Chroma<'_>,
    k: &RgbToYuvK,
    o: [u8; 3],
) {
    let Some(y1) = y1 else {
        return to420_scalar(s0, s1, y0, None, ch, k, o);
    };
    let w = y0.len();
    let (s0, s1, y1) = (&s0[..4 * w], &s1[..4 * w], &mut y1[..w]);
    let ky = m128_i16(&coef8(o, k.yr, k.yg, k.yb));
    let ku = m128_i16(&coef8(o, k.ur, k.ug, k.ub));
    let kv = m128_i16(&coef8(o, k.vr, k.vg, k.vb));
    let ybias = _mm_set1_epi32((k.y_off << 15) + (1 << 14));
    let cbias = _mm_set1_epi32((128 << 17) + (1 << 16));
    let z = _mm_setzero_si128();
    let nv = _mm_setr_epi8(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15);
    // Y of 4 pixels unpacked as (px0-1, px2-3) i16.
    let luma4 = |lo: __m128i, hi: __m128i| {
        let s = _mm_hadd_epi32(_mm_madd_epi16(lo, ky), _mm_madd_epi16(hi, ky));
        _mm_srai_epi32::<15>(_mm_add_epi32(s, ybias))
    };
    let mut i = 0;
    while i + 8 <= w {
        let a0 = ld16(s0, 4 * i);
        let a1 = ld16(s0, 4 * i + 16);
        let b0 = ld16(s1, 4 * i);
        let b1 = ld16(s1, 4 * i + 16);
        let (a0l, a0h) = (_mm_unpacklo_epi8(a0, z), _mm_unpackhi_epi8(a0, z));
        let (a1l, a1h) = (_mm_unpacklo_epi8(a1, z), _mm_unpackhi_epi8(a1, z));
        let (b0l, b0h) = (_mm_unpacklo_epi8(b0, z), _mm_unpackhi_epi8(b0, z));
        let (b1l, b1h) = (_mm_unpacklo_epi8(b1, z), _mm_unpackhi_epi8(b1, z));
        let ya = _mm_packs_epi32(luma4(a0l, a0h), luma4(a1l, a1h));
        let yb = _mm_packs_epi32(luma4(b0l, b0h), luma4(b1l, b1h));
        let yy = _mm_packus_epi16(ya, yb);
        st8(y0, i, yy);
        st8(y1, i, _mm_srli_si128::<8>(yy));
        // Column sums of the two rows, then per pixel, then per 2x2 block.
        let (c0l, c0h) = (_mm_add_epi16(a0l, b0l), _mm_add_epi16(a0h, b0h));
        let (c1l, c1h) = (_mm_add_epi16(a1l, b1l), _mm_add_epi16(a1h, b1h));
        let blocks = |kk: __m128i| {
            let p0 = _mm_hadd_epi32(_mm_madd_epi16(c0l, kk), _mm_madd_epi16(c0h, kk));
            let p1 = _mm_hadd_epi32(_mm_madd_epi16(c1l, kk), _mm_madd_epi16(c1h, kk));
            _mm_srai_epi32::<17>(_mm_add_epi32(_mm_hadd_epi32(p0, p1), cbias))
        };
        let uv = _mm_packus_epi16(_mm_packs_epi32(blocks(ku), blocks(kv)), z);
        // uv bytes: U0 U1 U2 U3 V0 V1 V2 V3.
        match ch {
            Chroma::Planar(us, vs) => {
                st4(us, i / 2, uv);
                st4(vs, i / 2, _mm_srli_si128::<4>(uv));
            }
            Chroma::Interleaved(uvs) => st8(uvs, i, _mm_shuffle_epi8(uv, nv)),
        }
        i += 8;
    }
    to420_scalar(
        &s0[4 * i..],
        &s1[4 * i..],
        &mut y0[i..],
        Some(&mut y1[i..]),
        &mut ch.from(i / 2),
        k,
        o,
    );
}

fn to420_avx2(
    s0: &[u8],
    s1: &[u8],
    y0: &mut [u8],
    y1: Option<&mut [u8]>,
    ch: &mut Chroma<'_>,
    k: &RgbToYuvK,
    o: [u8; 3],
) {
    // SAFETY: only installed in the AVX2 table, which convert() selects
    // only after checking that the CPU has AVX2, SSSE3 and SSE4.1.
    unsafe { to420_avx2_imp(s0, s1, y0, y1, ch, k, o) }
}

#[target_feature(enable = "avx2,ssse3,sse4.1")]
fn to420_avx2_imp(
    s0: &[u8],
    s1: &[u8],
    y0: &mut [u8],
    y1: Option<&mut [u8]>,
    ch: &mut Chroma<'_>,
    k: &RgbToYuvK,
    o: [u8; 3],
) {
    let Some(y1) = y1 else {
        return to420_scalar(s0, s1, y0, None, ch, k, o);
    };
    let w = y0.len();
    let (s0, s1, y1) = (&s0[..4 * w], &s1[..4 * w], &mut y1[..w]);
    let ky = _mm256_broadcastsi128_si256(m128_i16(&coef8(o, k.yr, k.yg, k.yb)));
    let ku = _mm256_broadcastsi128_si256(m128_i16(&coef8(o, k.ur, k.ug, k.ub)));
    let kv = _mm256_broadcastsi128_si256(m128_i16(&coef8(o, k.vr, k.vg, k.vb)));
    let ybias = _mm256_set1_epi32((k.y_off << 15) + (1 << 14));
    let cbias = _mm256_set1_epi32((128 << 17) + (1 << 16));
    let z = _mm256_setzero_si256();
    // After the packs below, chroma bytes come as
    // U0 U1 U4 U5 V0 V1 V4 V5 | U2 U3 U6 U7 V2 V3 V6 V7.
    let planar = _mm_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15);
    let nv = _mm_setr_epi8(0, 4, 1, 5, 8, 12, 9, 13, 2, 6, 3, 7, 10, 14, 11, 15);
    // Y of 8 pixels unpacked as (px0-1 | px4-5, px2-3 | px6-7): in order.
    let luma8 = |lo: __m256i, hi: __m256i| {
        let s = _mm256_hadd_epi32(_mm256_madd_epi16(lo, ky), _mm256_madd_epi16(hi, ky));
        _mm256_srai_epi32::<15>(_mm256_add_epi32(s, ybias))
    };
    let mut i = 0;
    while i + 16 <= w {
        let a0 = ld32(s0, 4 * i);
        let a1 = ld32(s0, 4 * i + 32);
        let b0 = ld32(s1, 4 * i);
        let b1 = ld32(s1, 4 * i + 32);
        let (a0l, a0h) = (_mm256_unpacklo_epi8(a0, z), _mm256_unpackhi_epi8(a0, z));
        let (a1l, a1h) = (_mm256_unpacklo_epi8(a1, z), _mm256_unpackhi_epi8(a1, z));
        let (b0l, b0h) = (_mm256_unpacklo_epi8(b0, z), _mm256_unpackhi_epi8(b0, z));
        let (b1l, b1h) = (_mm256_unpacklo_epi8(b1, z), _mm256_unpackhi_epi8(b1, z));
        // packs: [0-3, 8-11 | 4-7, 12-15] per row.
        let ya = _mm256_packs_epi32(luma8(a0l, a0h), luma8(a1l, a1h));
        let yb = _mm256_packs_epi32(luma8(b0l, b0h), luma8(b1l, b1h));
        // packus: [a 0-3 8-11 b 0-3 8-11 | a 4-7 12-15 b 4-7 12-15] (dwords).
        let yy = _mm256_packus_epi16(ya, yb);
        let yy = _mm256_permutevar8x32_epi32(yy, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        st16(y0, i, _mm256_castsi256_si128(yy));
        st16(y1, i, _mm256_extracti128_si256::<1>(yy));
        let (c0l, c0h) = (_mm256_add_epi16(a0l, b0l), _mm256_add_epi16(a0h, b0h));
        let (c1l, c1h) = (_mm256_add_epi16(a1l, b1l), _mm256_add_epi16(a1h, b1h));
        // Per pixel [0-3 | 4-7] and [8-11 | 12-15]; then blocks
        // [0 1 4 5 | 2 3 6 7].
        let blocks = |kk: __m256i| {
            let p0 = _mm256_hadd_epi32(_mm256_madd_epi16(c0l, kk), _mm256_madd_epi16(c0h, kk));
            let p1 = _mm256_hadd_epi32(_mm256_madd_epi16(c1l, kk), _mm256_madd_epi16(c1h, kk));
            _mm256_srai_epi32::<17>(_mm256_add_epi32(_mm256_hadd_epi32(p0, p1), cbias))
        };
        let uv = _mm256_packus_epi16(_mm256_packs_epi32(blocks(ku), blocks(kv)), z);
        let uv = _mm256_castsi256_si128(_mm256_permute4x64_epi64::<0b00_00_10_00>(uv));
        match ch {
            Chroma::Planar(us, vs) => {
                let p = _mm_shuffle_epi8(uv, planar);
                st8(us, i / 2, p);
                st8(vs, i / 2, _mm_srli_si128::<8>(p));
            }
            Chroma::Interleaved(uvs) => st16(uvs, i, _mm_shuffle_epi8(uv, nv)),
        }
        i += 16;
    }
    to420_scalar(
        &s0[4 * i..],
        &s1[4 * i..],
        &mut y0[i..],
        Some(&mut y1[i..]),
        &mut ch.from(i / 2),
        k,
        o,
    );
}
