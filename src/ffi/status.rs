//! Status messages.

use std::ffi::c_char;

use crate::error::wrd_status;

/// Return a static, NUL-terminated English description of a status code.
/// Never returns NULL; unknown values give "unknown status". Any thread.
#[no_mangle]
pub extern "C" fn wrd_status_message(status: u32) -> *const c_char {
    ffi_panic_boundary! {
        match wrd_status::from_raw(status) {
            Some(s) => s.message().as_ptr(),
            None => c"unknown status".as_ptr(),
        }
    }
}
