//! SPA helpers shared by the producer and the test consumers: param pods and
//! buffer metadata lookup.

use std::os::raw::c_void;

use libspa::pod::serialize::PodSerializer;
use libspa::pod::{ChoiceValue, Object, Pod, Property, Value};
use libspa::utils::{Choice, ChoiceEnum, ChoiceFlags, Id};
use libspa_sys as spa_sys;
use wrd_capture::PixelFormat;

/// Serialize a pod value.
pub fn serialize(value: Value) -> Vec<u8> {
    PodSerializer::serialize(std::io::Cursor::new(Vec::new()), &value)
        .expect("pod serialization")
        .0
        .into_inner()
}

/// An object pod (`SPA_TYPE_OBJECT_*`, `SPA_PARAM_*`).
pub fn object(type_: u32, id: u32, properties: Vec<Property>) -> Vec<u8> {
    serialize(Value::Object(Object {
        type_,
        id,
        properties,
    }))
}

/// An int range choice.
pub fn int_range(default: i32, min: i32, max: i32) -> Value {
    Value::Choice(ChoiceValue::Int(Choice(
        ChoiceFlags::empty(),
        ChoiceEnum::Range { default, min, max },
    )))
}

/// An int flags choice allowing exactly `flags` (e.g. data type masks).
/// A consumer's size choice: any size up to 16384x16384 (default 320x240).
pub fn any_size() -> Value {
    use libspa::utils::Rectangle;
    let r = |width, height| Rectangle { width, height };
    Value::Choice(ChoiceValue::Rectangle(Choice(
        ChoiceFlags::empty(),
        ChoiceEnum::Range {
            default: r(320, 240),
            min: r(1, 1),
            max: r(16384, 16384),
        },
    )))
}

/// A consumer's frame-rate choice: 0/1 to 1000/1 (default 30/1).
pub fn any_rate() -> Value {
    use libspa::utils::Fraction;
    let f = |num| Fraction { num, denom: 1 };
    Value::Choice(ChoiceValue::Fraction(Choice(
        ChoiceFlags::empty(),
        ChoiceEnum::Range {
            default: f(30),
            min: f(0),
            max: f(1000),
        },
    )))
}

pub fn int_flags(flags: i32) -> Value {
    Value::Choice(ChoiceValue::Int(Choice(
        ChoiceFlags::empty(),
        ChoiceEnum::Flags {
            default: flags,
            flags: vec![flags],
        },
    )))
}

/// A `SPA_PARAM_Meta` param for meta `type_` (`SPA_META_*`) of `size`.
pub fn meta_param(type_: u32, size: Value) -> Vec<u8> {
    object(
        spa_sys::SPA_TYPE_OBJECT_ParamMeta,
        spa_sys::SPA_PARAM_Meta,
        vec![
            Property::new(spa_sys::SPA_PARAM_META_type, Value::Id(Id(type_))),
            Property::new(spa_sys::SPA_PARAM_META_size, size),
        ],
    )
}

/// A raw video format pod (`id` = `SPA_PARAM_EnumFormat` or `SPA_PARAM_Format`)
/// with the given size and framerate values (fixed or choices).
pub fn video_format(id: u32, fmt: PixelFormat, size: Value, framerate: Value) -> Vec<u8> {
    object(
        spa_sys::SPA_TYPE_OBJECT_Format,
        id,
        vec![
            Property::new(
                spa_sys::SPA_FORMAT_mediaType,
                Value::Id(Id(spa_sys::SPA_MEDIA_TYPE_video)),
            ),
            Property::new(
                spa_sys::SPA_FORMAT_mediaSubtype,
                Value::Id(Id(spa_sys::SPA_MEDIA_SUBTYPE_raw)),
            ),
            Property::new(
                spa_sys::SPA_FORMAT_VIDEO_format,
                Value::Id(Id(fmt.to_spa().as_raw())),
            ),
            Property::new(spa_sys::SPA_FORMAT_VIDEO_size, size),
            Property::new(spa_sys::SPA_FORMAT_VIDEO_framerate, framerate),
        ],
    )
}

/// Borrow serialized params as pods (for `connect` / `update_params`).
pub fn pods(params: &[Vec<u8>]) -> Vec<&Pod> {
    params
        .iter()
        .map(|p| Pod::from_bytes(p).expect("a serialized pod"))
        .collect()
}

/// The data and size of meta `type_` (`SPA_META_*`) in `buf`, if present
/// with at least `min_size` bytes.
///
/// # Safety
/// `buf` must point to a valid `spa_buffer` whose metas stay valid while the
/// result is used.
pub unsafe fn find_meta(
    buf: *mut spa_sys::spa_buffer,
    type_: u32,
    min_size: usize,
) -> Option<(*mut c_void, usize)> {
    if (*buf).n_metas == 0 || (*buf).metas.is_null() {
        return None;
    }
    let metas = std::slice::from_raw_parts((*buf).metas, (*buf).n_metas as usize);
    metas
        .iter()
        .find(|m| m.type_ == type_ && m.size as usize >= min_size && !m.data.is_null())
        .map(|m| (m.data, m.size as usize))
}
