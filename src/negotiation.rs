//! SPA format negotiation: the EnumFormat pods a stream offers, the Buffers
//! and Meta params it answers a Format with, and the parsing of that Format.
//!
//! Per pixel format the offer is (when an importer gives modifiers) one
//! EnumFormat with a modifier choice (MANDATORY | DONT_FIXATE, preferred
//! first) followed by one without any modifier (SHM fallback), so that
//! SHM-only producers (GNOME headless, xdpw on pixman) and DMA-BUF producers
//! both find a match. Pods are serialized into a `Vec` that grows, so any
//! number of modifiers fits (OBS's fixed 4 KiB buffer overflowed).

use std::io::Cursor;

use libspa::param::format::{FormatProperties, MediaSubtype, MediaType};
use libspa::param::ParamType;
use libspa::pod::serialize::PodSerializer;
use libspa::pod::{ChoiceValue, Object, Pod, Property, PropertyFlags, Value};
use libspa::utils::{Choice, ChoiceEnum, ChoiceFlags, Fraction, Id, Rectangle, SpaTypes};

use crate::dmabuf::DRM_FORMAT_MOD_INVALID;
use crate::format::PixelFormat;

/// Largest width or height accepted from a producer.
pub const MAX_DIMENSION: u32 = 16384;
/// Most damage rectangles asked for per frame.
pub const MAX_DAMAGE_RECTS: usize = 16;
/// Largest cursor bitmap asked for, in pixels per side.
pub const CURSOR_BITMAP_SIZE: u32 = 256;

/// SPA meta types (spa/buffer/meta.h); values are ABI and never change.
pub mod meta_type {
    pub const HEADER: u32 = 1;
    pub const VIDEO_CROP: u32 = 2;
    pub const VIDEO_DAMAGE: u32 = 3;
    pub const BITMAP: u32 = 4;
    pub const CURSOR: u32 = 5;
    pub const VIDEO_TRANSFORM: u32 = 8;
    pub const SYNC_TIMELINE: u32 = 9;
}

/// SPA data types (spa/buffer/buffer.h).
pub mod data_type {
    pub const MEM_PTR: u32 = 1;
    pub const MEM_FD: u32 = 2;
    pub const DMA_BUF: u32 = 3;
    pub const MEM_ID: u32 = 4;
    pub const SYNC_OBJ: u32 = 5;
}

/// What a stream offers.
#[derive(Clone, Debug)]
pub struct Offer {
    /// Formats in order of preference.
    pub formats: Vec<PixelFormat>,
    /// Modifiers per format for the DMA-BUF variant (empty: SHM only).
    pub modifiers: Vec<(PixelFormat, Vec<u64>)>,
    /// Upper bound of the frame rate (frames per second; 0 = no bound).
    pub max_framerate: u32,
    /// Whether the daemon honours `SPA_POD_PROP_FLAG_DONT_FIXATE`.
    pub dont_fixate: bool,
    /// Ask for explicit sync (SyncTimeline meta, SyncObj datas) with
    /// DMA-BUF: only when the client library and the daemon are >= 1.2.
    pub explicit_sync: bool,
}

/// `SPA_PARAM_BUFFERS_metaType` (PipeWire 1.2; not in the 0.3.65 headers).
pub const SPA_PARAM_BUFFERS_META_TYPE: u32 = 7;

/// `struct spa_meta_sync_timeline` (PipeWire 1.2; not in the 0.3.65 headers).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpaMetaSyncTimeline {
    pub flags: u32,
    pub padding: u32,
    pub acquire_point: u64,
    pub release_point: u64,
}

/// Colour matrix of a YUV format.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ColorMatrix {
    /// Not stated by the producer.
    #[default]
    Unknown = 0,
    Bt601 = 1,
    Bt709 = 2,
}

/// Quantization range of a YUV format.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ColorRange {
    /// Not stated by the producer.
    #[default]
    Unknown = 0,
    Limited = 1,
    Full = 2,
}

/// A negotiated format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NegotiatedFormat {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    /// Frame rate as num/denom (0/1 = variable).
    pub framerate: (u32, u32),
    /// Frame rate bound, if the producer states one.
    pub max_framerate: (u32, u32),
    /// The DRM modifier when DMA-BUF was negotiated.
    pub modifier: Option<u64>,
    pub matrix: ColorMatrix,
    pub range: ColorRange,
}

fn serialize(obj: Object) -> Vec<u8> {
    PodSerializer::serialize(Cursor::new(Vec::new()), &Value::Object(obj))
        // Serializing into a growable Vec cannot fail.
        .expect("pod serialization into a Vec")
        .0
        .into_inner()
}

fn prop(key: u32, value: Value) -> Property {
    Property {
        key,
        flags: PropertyFlags::empty(),
        value,
    }
}

fn enum_format(fmt: PixelFormat, modifiers: Option<&[u64]>, offer: &Offer) -> Vec<u8> {
    let max_rate = if offer.max_framerate == 0 {
        1000
    } else {
        offer.max_framerate
    };
    let mut properties = vec![
        prop(
            FormatProperties::MediaType.as_raw(),
            Value::Id(Id(MediaType::Video.as_raw())),
        ),
        prop(
            FormatProperties::MediaSubtype.as_raw(),
            Value::Id(Id(MediaSubtype::Raw.as_raw())),
        ),
        prop(
            FormatProperties::VideoFormat.as_raw(),
            Value::Id(Id(fmt.to_spa().as_raw())),
        ),
    ];
    if let Some(mods) = modifiers {
        let mandatory = PropertyFlags::MANDATORY;
        let value = if mods.len() == 1 && mods[0] == DRM_FORMAT_MOD_INVALID {
            // Only implicit: one value, no choice.
            Value::Long(mods[0] as i64)
        } else {
            Value::Choice(ChoiceValue::Long(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Enum {
                    default: mods[0] as i64,
                    alternatives: mods.iter().map(|m| *m as i64).collect(),
                },
            )))
        };
        let flags = if offer.dont_fixate && !matches!(value, Value::Long(_)) {
            mandatory | PropertyFlags::DONT_FIXATE
        } else {
            mandatory
        };
        properties.push(Property {
            key: FormatProperties::VideoModifier.as_raw(),
            flags,
            value,
        });
    }
    properties.push(prop(
        FormatProperties::VideoSize.as_raw(),
        Value::Choice(ChoiceValue::Rectangle(Choice(
            ChoiceFlags::empty(),
            ChoiceEnum::Range {
                default: Rectangle {
                    width: 1920,
                    height: 1080,
                },
                min: Rectangle {
                    width: 1,
                    height: 1,
                },
                max: Rectangle {
                    width: MAX_DIMENSION,
                    height: MAX_DIMENSION,
                },
            },
        ))),
    ));
    let rate_range = |max: u32| {
        Value::Choice(ChoiceValue::Fraction(Choice(
            ChoiceFlags::empty(),
            ChoiceEnum::Range {
                default: Fraction { num: max, denom: 1 },
                min: Fraction { num: 0, denom: 1 },
                max: Fraction { num: max, denom: 1 },
            },
        )))
    };
    // `framerate` stays wide so fixed-rate producers match; `maxFramerate`
    // carries the caller's bound (Mutter and KWin throttle to it).
    properties.push(prop(
        FormatProperties::VideoFramerate.as_raw(),
        rate_range(1000),
    ));
    properties.push(prop(
        FormatProperties::VideoMaxFramerate.as_raw(),
        rate_range(max_rate),
    ));
    serialize(Object {
        type_: SpaTypes::ObjectParamFormat.as_raw(),
        id: ParamType::EnumFormat.as_raw(),
        properties,
    })
}

/// The EnumFormat pods for an offer, in order of preference.
pub fn enum_formats(offer: &Offer) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for &fmt in &offer.formats {
        if let Some((_, mods)) = offer
            .modifiers
            .iter()
            .find(|(f, m)| *f == fmt && !m.is_empty())
        {
            out.push(enum_format(fmt, Some(mods), offer));
        }
        out.push(enum_format(fmt, None, offer));
    }
    out
}

/// The Buffers params answering a negotiated format: with explicit sync
/// first one that requires the SyncTimeline meta and accepts SyncObj datas,
/// then the plain one (a producer without explicit sync takes that).
pub fn buffers_params(dmabuf: bool, n_buffers: u32, explicit_sync: bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if dmabuf && explicit_sync {
        out.push(buffers_param_with(
            (1 << data_type::DMA_BUF) | (1 << data_type::SYNC_OBJ),
            n_buffers,
            Some(1 << meta_type::SYNC_TIMELINE),
        ));
    }
    out.push(buffers_param(dmabuf, n_buffers));
    out
}

/// The Buffers param answering a negotiated format.
pub fn buffers_param(dmabuf: bool, n_buffers: u32) -> Vec<u8> {
    let types = if dmabuf {
        1 << data_type::DMA_BUF
    } else {
        (1 << data_type::MEM_FD) | (1 << data_type::MEM_PTR)
    };
    buffers_param_with(types, n_buffers, None)
}

fn buffers_param_with(types: i32, n_buffers: u32, meta_types: Option<i32>) -> Vec<u8> {
    let mut properties = vec![
        prop(
            libspa_sys::SPA_PARAM_BUFFERS_buffers,
            Value::Choice(ChoiceValue::Int(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Range {
                    default: n_buffers as i32,
                    min: 2,
                    max: 16,
                },
            ))),
        ),
        prop(
            libspa_sys::SPA_PARAM_BUFFERS_dataType,
            Value::Choice(ChoiceValue::Int(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Flags {
                    default: types,
                    flags: vec![],
                },
            ))),
        ),
    ];
    if let Some(m) = meta_types {
        properties.push(prop(
            SPA_PARAM_BUFFERS_META_TYPE,
            Value::Choice(ChoiceValue::Int(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Flags {
                    default: m,
                    flags: vec![],
                },
            ))),
        ));
    }
    serialize(Object {
        type_: SpaTypes::ObjectParamBuffers.as_raw(),
        id: ParamType::Buffers.as_raw(),
        properties,
    })
}

fn meta_param(kind: u32, size: Value) -> Vec<u8> {
    serialize(Object {
        type_: SpaTypes::ObjectParamMeta.as_raw(),
        id: ParamType::Meta.as_raw(),
        properties: vec![
            prop(libspa_sys::SPA_PARAM_META_type, Value::Id(Id(kind))),
            prop(libspa_sys::SPA_PARAM_META_size, size),
        ],
    })
}

/// Size of a cursor meta with room for a `w` x `h` 32-bit bitmap.
pub fn cursor_meta_size(w: u32, h: u32) -> usize {
    std::mem::size_of::<libspa_sys::spa_meta_cursor>()
        + std::mem::size_of::<libspa_sys::spa_meta_bitmap>()
        + (w as usize) * (h as usize) * 4
}

/// The Meta params a stream asks for: Header, VideoCrop, VideoDamage,
/// Cursor (with a bitmap) and VideoTransform, plus SyncTimeline with
/// explicit sync.
pub fn meta_params_for(explicit_sync: bool) -> Vec<Vec<u8>> {
    let mut v = meta_params();
    if explicit_sync {
        v.push(meta_param(
            meta_type::SYNC_TIMELINE,
            Value::Int(std::mem::size_of::<SpaMetaSyncTimeline>() as i32),
        ));
    }
    v
}

/// The Meta params of [`meta_params_for`] without explicit sync.
pub fn meta_params() -> Vec<Vec<u8>> {
    let region = std::mem::size_of::<libspa_sys::spa_meta_region>() as i32;
    let range = |default: i32, min: i32, max: i32| {
        Value::Choice(ChoiceValue::Int(Choice(
            ChoiceFlags::empty(),
            ChoiceEnum::Range { default, min, max },
        )))
    };
    vec![
        meta_param(
            meta_type::HEADER,
            Value::Int(std::mem::size_of::<libspa_sys::spa_meta_header>() as i32),
        ),
        meta_param(meta_type::VIDEO_CROP, Value::Int(region)),
        meta_param(
            meta_type::VIDEO_DAMAGE,
            range(
                region * MAX_DAMAGE_RECTS as i32,
                region,
                region * MAX_DAMAGE_RECTS as i32,
            ),
        ),
        meta_param(
            meta_type::CURSOR,
            range(
                cursor_meta_size(64, 64) as i32,
                cursor_meta_size(1, 1) as i32,
                cursor_meta_size(CURSOR_BITMAP_SIZE, CURSOR_BITMAP_SIZE) as i32,
            ),
        ),
        meta_param(
            meta_type::VIDEO_TRANSFORM,
            Value::Int(std::mem::size_of::<libspa_sys::spa_meta_videotransform>() as i32),
        ),
    ]
}

/// View serialized pods as `&Pod` for the PipeWire calls.
pub fn as_pods(bufs: &[Vec<u8>]) -> Vec<&Pod> {
    bufs.iter()
        .map(|b| Pod::from_bytes(b).expect("serialized pod is well formed"))
        .collect()
}

/// Why a Format could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum FormatError {
    NotVideoRaw,
    Unparsable,
    UnsupportedFormat(u32),
    BadSize(u32, u32),
    /// The modifier is still a choice (DONT_FIXATE): the producer fixates it
    /// and sends the Format again.
    ModifierNotFixed(Vec<u64>),
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormatError::NotVideoRaw => f.write_str("not a raw video format"),
            FormatError::Unparsable => f.write_str("unparsable video format"),
            FormatError::UnsupportedFormat(v) => write!(f, "unsupported SPA video format {v}"),
            FormatError::BadSize(w, h) => write!(f, "bad size {w}x{h}"),
            FormatError::ModifierNotFixed(m) => {
                write!(f, "modifier not fixated yet ({} candidates)", m.len())
            }
        }
    }
}

/// The single value of a property, or its choice's values (default first).
fn values(v: &Value) -> Vec<Value> {
    match v {
        Value::Choice(c) => {
            fn all<T: Copy + PartialEq + libspa::pod::CanonicalFixedSizedPod>(
                e: &ChoiceEnum<T>,
                wrap: impl Fn(T) -> Value,
            ) -> Vec<Value> {
                match e {
                    ChoiceEnum::None(v) => vec![wrap(*v)],
                    ChoiceEnum::Enum {
                        default,
                        alternatives,
                    } => {
                        let mut out = vec![wrap(*default)];
                        out.extend(
                            alternatives
                                .iter()
                                .filter(|a| **a != *default)
                                .map(|a| wrap(*a)),
                        );
                        out
                    }
                    ChoiceEnum::Range { default, .. }
                    | ChoiceEnum::Step { default, .. }
                    | ChoiceEnum::Flags { default, .. } => vec![wrap(*default)],
                }
            }
            match c {
                ChoiceValue::Long(Choice(_, e)) => all(e, Value::Long),
                ChoiceValue::Int(Choice(_, e)) => all(e, Value::Int),
                ChoiceValue::Id(Choice(_, e)) => all(e, Value::Id),
                ChoiceValue::Rectangle(Choice(_, e)) => all(e, Value::Rectangle),
                ChoiceValue::Fraction(Choice(_, e)) => all(e, Value::Fraction),
                _ => Vec::new(),
            }
        }
        other => vec![other.clone()],
    }
}

/// Parse a Format param the producer and we agreed on. Everything in it is
/// untrusted: missing or mistyped fields are errors, sizes are bounded, and
/// a modifier that is still a choice is reported, not guessed.
pub fn parse_format(pod: &Pod) -> Result<NegotiatedFormat, FormatError> {
    // libspa 0.8's deserializer panics on some malformed pods (a Choice
    // whose size is below its 16-byte body header underflows `len - 16`, a
    // zero child size divides by zero); found by tests/fuzz_stable.rs. The
    // producer's Format is untrusted: such a pod is unparsable.
    let bytes = pod.as_bytes();
    let parsed = std::panic::catch_unwind(|| {
        libspa::pod::deserialize::PodDeserializer::deserialize_any_from(bytes)
            .ok()
            .map(|(_, v)| v)
    });
    let obj = match parsed {
        Ok(Some(Value::Object(o))) => o,
        _ => return Err(FormatError::Unparsable),
    };
    let get = |key: FormatProperties| {
        obj.properties
            .iter()
            .find(|p| p.key == key.as_raw())
            .map(|p| values(&p.value))
            .unwrap_or_default()
    };
    let id = |key| match get(key).first() {
        Some(Value::Id(Id(v))) => Some(*v),
        _ => None,
    };
    if id(FormatProperties::MediaType) != Some(MediaType::Video.as_raw())
        || id(FormatProperties::MediaSubtype) != Some(MediaSubtype::Raw.as_raw())
    {
        return Err(FormatError::NotVideoRaw);
    }
    let raw_format = id(FormatProperties::VideoFormat).ok_or(FormatError::Unparsable)?;
    let format = PixelFormat::from_spa(libspa::param::video::VideoFormat::from_raw(raw_format))
        .ok_or(FormatError::UnsupportedFormat(raw_format))?;
    let size = match get(FormatProperties::VideoSize).first() {
        Some(Value::Rectangle(r)) => *r,
        _ => return Err(FormatError::Unparsable),
    };
    if size.width == 0
        || size.height == 0
        || size.width > MAX_DIMENSION
        || size.height > MAX_DIMENSION
    {
        return Err(FormatError::BadSize(size.width, size.height));
    }
    let modifier = {
        let mods: Vec<u64> = get(FormatProperties::VideoModifier)
            .iter()
            .filter_map(|v| match v {
                Value::Long(m) => Some(*m as u64),
                _ => None,
            })
            .collect();
        // DONT_FIXATE, not the number of values, says fixation is pending
        // (PipeWire's dma-buf.dox): with one modifier left the Format still
        // carries the flag until the producer sends its fixated one.
        let pending = obj.properties.iter().any(|p| {
            p.key == FormatProperties::VideoModifier.as_raw()
                && p.flags.contains(PropertyFlags::DONT_FIXATE)
        });
        match mods.len() {
            0 => None,
            1 if !pending => Some(mods[0]),
            _ => return Err(FormatError::ModifierNotFixed(mods)),
        }
    };
    let fraction = |key| match get(key).first() {
        Some(Value::Fraction(f)) => (f.num, f.denom),
        _ => (0, 1),
    };
    let int = |key| match get(key).first() {
        Some(Value::Id(Id(v))) => *v,
        Some(Value::Int(v)) => *v as u32,
        _ => 0,
    };
    let matrix = match int(FormatProperties::VideoColorMatrix) {
        libspa_sys::SPA_VIDEO_COLOR_MATRIX_BT601 => ColorMatrix::Bt601,
        libspa_sys::SPA_VIDEO_COLOR_MATRIX_BT709 => ColorMatrix::Bt709,
        _ => ColorMatrix::Unknown,
    };
    let range = match int(FormatProperties::VideoColorRange) {
        libspa_sys::SPA_VIDEO_COLOR_RANGE_0_255 => ColorRange::Full,
        libspa_sys::SPA_VIDEO_COLOR_RANGE_16_235 => ColorRange::Limited,
        _ => ColorRange::Unknown,
    };
    Ok(NegotiatedFormat {
        format,
        width: size.width,
        height: size.height,
        framerate: fraction(FormatProperties::VideoFramerate),
        max_framerate: fraction(FormatProperties::VideoMaxFramerate),
        modifier,
        matrix,
        range,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use libspa::pod::deserialize::PodDeserializer;

    fn offer(mods: Vec<(PixelFormat, Vec<u64>)>) -> Offer {
        Offer {
            formats: vec![PixelFormat::Bgrx, PixelFormat::Nv12],
            modifiers: mods,
            max_framerate: 30,
            dont_fixate: true,
            explicit_sync: false,
        }
    }

    fn object(bytes: &[u8]) -> Object {
        match PodDeserializer::deserialize_any_from(bytes).unwrap().1 {
            Value::Object(o) => o,
            other => panic!("not an object: {other:?}"),
        }
    }

    fn find(o: &Object, key: u32) -> Option<&Property> {
        o.properties.iter().find(|p| p.key == key)
    }

    #[test]
    fn shm_only_offer_has_no_modifier() {
        let pods = enum_formats(&offer(vec![]));
        assert_eq!(pods.len(), 2);
        for p in &pods {
            let o = object(p);
            assert!(find(&o, FormatProperties::VideoModifier.as_raw()).is_none());
        }
        let o = object(&pods[0]);
        assert_eq!(
            find(&o, FormatProperties::VideoFormat.as_raw())
                .unwrap()
                .value,
            Value::Id(Id(PixelFormat::Bgrx.to_spa().as_raw()))
        );
    }

    #[test]
    fn modifier_offer_comes_first_with_mandatory_dont_fixate_and_shm_fallback() {
        let mods: Vec<u64> = (0..300u64).collect(); // many modifiers: the builder grows
        let pods = enum_formats(&offer(vec![(PixelFormat::Bgrx, mods.clone())]));
        assert_eq!(pods.len(), 3, "dmabuf BGRx, shm BGRx, shm NV12");
        let o = object(&pods[0]);
        let m = find(&o, FormatProperties::VideoModifier.as_raw()).expect("modifier");
        assert!(m.flags.contains(PropertyFlags::MANDATORY));
        assert!(m.flags.contains(PropertyFlags::DONT_FIXATE));
        match &m.value {
            Value::Choice(ChoiceValue::Long(Choice(
                _,
                ChoiceEnum::Enum {
                    default,
                    alternatives,
                },
            ))) => {
                assert_eq!(*default, 0);
                assert_eq!(alternatives.len(), 300);
            }
            v => panic!("unexpected {v:?}"),
        }
        assert!(find(&object(&pods[1]), FormatProperties::VideoModifier.as_raw()).is_none());
    }

    #[test]
    fn implicit_only_is_a_single_mandatory_value() {
        let pods = enum_formats(&offer(vec![(
            PixelFormat::Bgrx,
            vec![DRM_FORMAT_MOD_INVALID],
        )]));
        let o = object(&pods[0]);
        let m = find(&o, FormatProperties::VideoModifier.as_raw()).unwrap();
        assert_eq!(m.value, Value::Long(DRM_FORMAT_MOD_INVALID as i64));
        assert!(m.flags.contains(PropertyFlags::MANDATORY));
        assert!(!m.flags.contains(PropertyFlags::DONT_FIXATE));
    }

    #[test]
    fn max_framerate_is_the_callers() {
        let pods = enum_formats(&offer(vec![]));
        let o = object(&pods[0]);
        match &find(&o, FormatProperties::VideoMaxFramerate.as_raw())
            .unwrap()
            .value
        {
            Value::Choice(ChoiceValue::Fraction(Choice(_, ChoiceEnum::Range { max, .. }))) => {
                assert_eq!(*max, Fraction { num: 30, denom: 1 })
            }
            v => panic!("unexpected {v:?}"),
        }
    }

    #[test]
    fn buffers_param_data_types() {
        let get = |b: &[u8]| {
            let o = object(b);
            match &find(&o, libspa_sys::SPA_PARAM_BUFFERS_dataType)
                .unwrap()
                .value
            {
                Value::Choice(ChoiceValue::Int(Choice(_, ChoiceEnum::Flags { default, .. }))) => {
                    *default
                }
                v => panic!("unexpected {v:?}"),
            }
        };
        assert_eq!(get(&buffers_param(false, 8)), 0b110);
        assert_eq!(get(&buffers_param(true, 8)), 0b1000);
    }

    #[test]
    fn explicit_sync_params_only_when_asked() {
        let plain = buffers_params(true, 8, false);
        assert_eq!(plain.len(), 1);
        assert!(find(&object(&plain[0]), SPA_PARAM_BUFFERS_META_TYPE).is_none());
        let sync = buffers_params(true, 8, true);
        assert_eq!(sync.len(), 2, "sync variant first, plain fallback");
        let o = object(&sync[0]);
        match &find(&o, SPA_PARAM_BUFFERS_META_TYPE).unwrap().value {
            Value::Choice(ChoiceValue::Int(Choice(_, ChoiceEnum::Flags { default, .. }))) => {
                assert_eq!(*default, 1 << meta_type::SYNC_TIMELINE)
            }
            v => panic!("unexpected {v:?}"),
        }
        // SHM never asks for sync objects.
        assert_eq!(buffers_params(false, 8, true).len(), 1);
        assert_eq!(meta_params_for(true).len(), 6);
        assert_eq!(meta_params_for(false).len(), 5);
        assert_eq!(std::mem::size_of::<SpaMetaSyncTimeline>(), 24);
    }

    #[test]
    fn meta_params_are_the_five_we_want() {
        let kinds: Vec<u32> = meta_params()
            .iter()
            .map(|b| {
                match find(&object(b), libspa_sys::SPA_PARAM_META_type)
                    .unwrap()
                    .value
                {
                    Value::Id(Id(k)) => k,
                    ref v => panic!("unexpected {v:?}"),
                }
            })
            .collect();
        assert_eq!(kinds, vec![1, 2, 3, 5, 8]);
    }

    #[test]
    fn parse_rejects_garbage_and_accepts_a_fixed_format() {
        // A fixed Format as a producer would send it.
        let bytes = serialize(Object {
            type_: SpaTypes::ObjectParamFormat.as_raw(),
            id: ParamType::Format.as_raw(),
            properties: vec![
                prop(
                    FormatProperties::MediaType.as_raw(),
                    Value::Id(Id(MediaType::Video.as_raw())),
                ),
                prop(
                    FormatProperties::MediaSubtype.as_raw(),
                    Value::Id(Id(MediaSubtype::Raw.as_raw())),
                ),
                prop(
                    FormatProperties::VideoFormat.as_raw(),
                    Value::Id(Id(PixelFormat::I420.to_spa().as_raw())),
                ),
                prop(
                    FormatProperties::VideoSize.as_raw(),
                    Value::Rectangle(Rectangle {
                        width: 33,
                        height: 17,
                    }),
                ),
                prop(
                    FormatProperties::VideoFramerate.as_raw(),
                    Value::Fraction(Fraction { num: 60, denom: 1 }),
                ),
            ],
        });
        let f = parse_format(Pod::from_bytes(&bytes).unwrap()).unwrap();
        assert_eq!(
            (f.format, f.width, f.height, f.framerate),
            (PixelFormat::I420, 33, 17, (60, 1))
        );
        assert_eq!(f.modifier, None);

        let bad = serialize(Object {
            type_: SpaTypes::ObjectParamFormat.as_raw(),
            id: ParamType::Format.as_raw(),
            properties: vec![
                prop(
                    FormatProperties::MediaType.as_raw(),
                    Value::Id(Id(MediaType::Video.as_raw())),
                ),
                prop(
                    FormatProperties::MediaSubtype.as_raw(),
                    Value::Id(Id(MediaSubtype::Raw.as_raw())),
                ),
                prop(
                    FormatProperties::VideoFormat.as_raw(),
                    Value::Id(Id(PixelFormat::Bgrx.to_spa().as_raw())),
                ),
                prop(
                    FormatProperties::VideoSize.as_raw(),
                    Value::Rectangle(Rectangle {
                        width: 0,
                        height: 17,
                    }),
                ),
            ],
        });
        assert_eq!(
            parse_format(Pod::from_bytes(&bad).unwrap()),
            Err(FormatError::BadSize(0, 17))
        );

        // A modifier still offered as a choice is not guessed.
        let pods = enum_formats(&offer(vec![(PixelFormat::Bgrx, vec![5, 7])]));
        let mut o = object(&pods[0]);
        o.id = ParamType::Format.as_raw();
        for p in o.properties.iter_mut() {
            if p.key == FormatProperties::VideoSize.as_raw() {
                p.value = Value::Rectangle(Rectangle {
                    width: 64,
                    height: 48,
                });
            }
        }
        let bytes = serialize(o.clone());
        assert_eq!(
            parse_format(Pod::from_bytes(&bytes).unwrap()),
            Err(FormatError::ModifierNotFixed(vec![5, 7]))
        );
        // One modifier left but still DONT_FIXATE: pending.
        for p in o.properties.iter_mut() {
            if p.key == FormatProperties::VideoModifier.as_raw() {
                p.value = Value::Long(7);
            }
        }
        assert_eq!(
            parse_format(Pod::from_bytes(&serialize(o.clone())).unwrap()),
            Err(FormatError::ModifierNotFixed(vec![7]))
        );
        // Fixed by the producer (no DONT_FIXATE): parsed.
        for p in o.properties.iter_mut() {
            if p.key == FormatProperties::VideoModifier.as_raw() {
                p.flags.remove(PropertyFlags::DONT_FIXATE);
            }
        }
        let f = parse_format(Pod::from_bytes(&serialize(o)).unwrap()).unwrap();
        assert_eq!(
            (f.format, f.width, f.modifier),
            (PixelFormat::Bgrx, 64, Some(7))
        );
    }
}
