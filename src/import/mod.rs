//! GPU import of DMA-BUF frames (filled in by the DMA-BUF work).
