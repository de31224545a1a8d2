//! Pixel conversion (filled in by the conversion work).
