//! The `yuv` crate (0.8, the successor of yuvutils-rs), for the pairs where
//! it is the fastest code we have (filled in below).

use super::{DstView, Job, Rect, SrcPlanes};

/// Convert `r` with the `yuv` crate if it handles the pair; false if not.
pub(crate) fn run_rect(_job: &Job, _src: &SrcPlanes<'_>, _dst: &mut DstView<'_>, _r: Rect) -> bool {
    false
}
