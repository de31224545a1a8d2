//! Errors of the safe Rust API, and the stable status codes of the C ABI.

/// Status codes of the C ABI. Values are explicit and never change; new codes
/// are only ever appended.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum wrd_status {
    /// Success.
    WRD_OK = 0,
    /// An argument is out of range or inconsistent.
    WRD_ERR_INVALID_ARGUMENT = 1,
    /// A pointer that must not be NULL was NULL.
    WRD_ERR_NULL_POINTER = 2,
    /// Could not connect to the PipeWire daemon (or the fd given is not a PipeWire connection).
    WRD_ERR_CONNECT = 3,
    /// The connection to the daemon (or the portal session) is gone.
    WRD_ERR_CONNECTION_LOST = 4,
    /// The connection already has its maximum number of streams.
    WRD_ERR_TOO_MANY_STREAMS = 5,
    /// The target node does not exist or went away.
    WRD_ERR_NODE_NOT_FOUND = 6,
    /// Format negotiation failed.
    WRD_ERR_NEGOTIATION = 7,
    /// No frame is ready (pull API).
    WRD_ERR_NO_FRAME = 8,
    /// A caller's buffer is too small for the result.
    WRD_ERR_BUFFER_TOO_SMALL = 9,
    /// The operation is not supported (by this build, device or frame).
    WRD_ERR_UNSUPPORTED = 10,
    /// A GPU import failed.
    WRD_ERR_IMPORT_FAILED = 11,
    /// PipeWire reported an error.
    WRD_ERR_PIPEWIRE = 12,
    /// The object is not in a state that allows the call (for example, its capture was destroyed).
    WRD_ERR_INVALID_STATE = 13,
    /// The memory budget for held frames and copies would be exceeded.
    WRD_ERR_BUDGET_EXCEEDED = 14,
    /// A panic was caught at the C boundary; the object may be unusable.
    WRD_ERR_PANIC = 15,
    /// An operating system call failed.
    WRD_ERR_IO = 16,
    /// A frame from the producer failed validation.
    WRD_ERR_BAD_FRAME = 17,
    /// Permission denied (for example, DRM framebuffer handles need DRM master or CAP_SYS_ADMIN).
    WRD_ERR_PERMISSION = 18,
    /// A wait timed out.
    WRD_ERR_TIMEOUT = 19,
}

impl wrd_status {
    /// A static, NUL-terminated English description.
    pub fn message(self) -> &'static std::ffi::CStr {
        use wrd_status::*;
        match self {
            WRD_OK => c"success",
            WRD_ERR_INVALID_ARGUMENT => c"invalid argument",
            WRD_ERR_NULL_POINTER => c"a required pointer was NULL",
            WRD_ERR_CONNECT => c"could not connect to the PipeWire daemon",
            WRD_ERR_CONNECTION_LOST => c"the connection to PipeWire is gone",
            WRD_ERR_TOO_MANY_STREAMS => c"too many streams on this connection",
            WRD_ERR_NODE_NOT_FOUND => c"the target node does not exist or went away",
            WRD_ERR_NEGOTIATION => c"format negotiation failed",
            WRD_ERR_NO_FRAME => c"no frame is ready",
            WRD_ERR_BUFFER_TOO_SMALL => c"the buffer is too small",
            WRD_ERR_UNSUPPORTED => c"not supported",
            WRD_ERR_IMPORT_FAILED => c"GPU import failed",
            WRD_ERR_PIPEWIRE => c"PipeWire error",
            WRD_ERR_INVALID_STATE => c"the object is not in a state that allows this call",
            WRD_ERR_BUDGET_EXCEEDED => c"the memory budget would be exceeded",
            WRD_ERR_PANIC => c"internal error (a panic was caught)",
            WRD_ERR_IO => c"operating system error",
            WRD_ERR_BAD_FRAME => c"the producer sent an invalid frame",
            WRD_ERR_PERMISSION => c"permission denied",
            WRD_ERR_TIMEOUT => c"timed out",
        }
    }

    /// The status for a raw value, if it is one.
    pub fn from_raw(v: u32) -> Option<Self> {
        use wrd_status::*;
        const ALL: [wrd_status; 20] = [
            WRD_OK,
            WRD_ERR_INVALID_ARGUMENT,
            WRD_ERR_NULL_POINTER,
            WRD_ERR_CONNECT,
            WRD_ERR_CONNECTION_LOST,
            WRD_ERR_TOO_MANY_STREAMS,
            WRD_ERR_NODE_NOT_FOUND,
            WRD_ERR_NEGOTIATION,
            WRD_ERR_NO_FRAME,
            WRD_ERR_BUFFER_TOO_SMALL,
            WRD_ERR_UNSUPPORTED,
            WRD_ERR_IMPORT_FAILED,
            WRD_ERR_PIPEWIRE,
            WRD_ERR_INVALID_STATE,
            WRD_ERR_BUDGET_EXCEEDED,
            WRD_ERR_PANIC,
            WRD_ERR_IO,
            WRD_ERR_BAD_FRAME,
            WRD_ERR_PERMISSION,
            WRD_ERR_TIMEOUT,
        ];
        ALL.iter().copied().find(|s| *s as u32 == v)
    }
}

/// Errors of the safe Rust API. Each maps to one [`wrd_status`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("could not connect to PipeWire: {0}")]
    Connect(String),
    #[error("the connection to PipeWire is gone")]
    ConnectionLost,
    #[error("too many streams (limit {0})")]
    TooManyStreams(usize),
    #[error("node {0} not found")]
    NodeNotFound(u32),
    #[error("negotiation failed: {0}")]
    Negotiation(String),
    #[error("no frame is ready")]
    NoFrame,
    #[error("buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall { need: usize, have: usize },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("import failed: {0}")]
    ImportFailed(String),
    #[error("PipeWire error: {0}")]
    PipeWire(String),
    #[error("invalid state: {0}")]
    InvalidState(String),
    #[error("memory budget exceeded: {0}")]
    BudgetExceeded(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame: {0}")]
    BadFrame(String),
    #[error("permission denied: {0}")]
    Permission(String),
    #[error("timed out")]
    Timeout,
}

impl Error {
    /// The C status for this error.
    pub fn status(&self) -> wrd_status {
        use wrd_status::*;
        match self {
            Error::InvalidArgument(_) => WRD_ERR_INVALID_ARGUMENT,
            Error::Connect(_) => WRD_ERR_CONNECT,
            Error::ConnectionLost => WRD_ERR_CONNECTION_LOST,
            Error::TooManyStreams(_) => WRD_ERR_TOO_MANY_STREAMS,
            Error::NodeNotFound(_) => WRD_ERR_NODE_NOT_FOUND,
            Error::Negotiation(_) => WRD_ERR_NEGOTIATION,
            Error::NoFrame => WRD_ERR_NO_FRAME,
            Error::BufferTooSmall { .. } => WRD_ERR_BUFFER_TOO_SMALL,
            Error::Unsupported(_) => WRD_ERR_UNSUPPORTED,
            Error::ImportFailed(_) => WRD_ERR_IMPORT_FAILED,
            Error::PipeWire(_) => WRD_ERR_PIPEWIRE,
            Error::InvalidState(_) => WRD_ERR_INVALID_STATE,
            Error::BudgetExceeded(_) => WRD_ERR_BUDGET_EXCEEDED,
            Error::Io(_) => WRD_ERR_IO,
            Error::BadFrame(_) => WRD_ERR_BAD_FRAME,
            Error::Permission(_) => WRD_ERR_PERMISSION,
            Error::Timeout => WRD_ERR_TIMEOUT,
        }
    }
}

/// Result of the safe Rust API.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_values_are_stable_and_have_messages() {
        for v in 0..20u32 {
            let s = wrd_status::from_raw(v).expect("dense range");
            assert_eq!(s as u32, v);
            assert!(!s.message().to_bytes().is_empty());
        }
        assert_eq!(wrd_status::from_raw(20), None);
        assert_eq!(wrd_status::WRD_ERR_TIMEOUT as u32, 19);
    }
}
