//! DMA-BUF modes of `wrd-testsrc`: the modifier offer, the producer's
//! fixation of the modifier, and DMA-BUF-typed buffers backed by memfds.
//!
//! The protocol is PipeWire's (`doc/dma-buf.dox`, `video-src-fixate.c`), as
//! mutter and xdg-desktop-portal-wlr implement it:
//!
//! 1. Per format the producer offers an EnumFormat whose
//!    `SPA_FORMAT_VIDEO_modifier` is an Enum choice of its modifiers with
//!    `MANDATORY | DONT_FIXATE`, then (unless DMA-BUF only) one without a
//!    modifier (SHM). A list of only `DRM_FORMAT_MOD_INVALID` is a single
//!    MANDATORY value instead (nothing to fixate).
//! 2. The link intersects both sides' modifiers and, because of
//!    DONT_FIXATE, leaves them a choice in the Format. The producer (the
//!    allocator) picks one it can allocate and announces a *fixated*
//!    EnumFormat (a single modifier, MANDATORY only) first, followed by its
//!    earlier offer. PipeWire renegotiates and sends a Format with that one
//!    modifier.
//! 3. On a fixed modifier the producer answers Buffers with
//!    `dataType = 1 << SPA_DATA_DmaBuf`; without a modifier, with MemFd.
//!
//! When the consumer later drops a modifier (its own `update_params`), the
//! link renegotiates: the fixated EnumFormat no longer matches, the offer
//! after it does, and the Format is a choice again, so the producer fixates
//! again. [`Fixation`] is that state machine, free of PipeWire so that it is
//! unit-tested here.
//!
//! A quirk of the intersection (`spa_pod_filter_prop`, 0.3.65 and later):
//! the result's Enum *default* is copied from one side's default (the
//! filter's: in a link, the consumer's) whether or not the other side has
//! it; only the alternatives are the intersection, in that side's order.
//! So fixation picks among the alternatives, never the bare default.
//!
//! There is no GPU or udmabuf here: the "DMA-BUF" planes are memfds holding
//! the picture in LINEAR layout whatever the modifier says, which is what
//! `wrd_capture::import::cpu::read_linear` and GPU-less test importers read.

use libspa::pod::deserialize::PodDeserializer;
use libspa::pod::{ChoiceValue, Object, Property, PropertyFlags, Value};
use libspa::utils::{Choice, ChoiceEnum, ChoiceFlags, Fraction, Id, Rectangle};
use libspa_sys as spa_sys;
use wrd_capture::PixelFormat;

/// `DRM_FORMAT_MOD_LINEAR`.
pub const DRM_FORMAT_MOD_LINEAR: u64 = 0;
/// `DRM_FORMAT_MOD_INVALID`: implicit modifier.
pub const DRM_FORMAT_MOD_INVALID: u64 = 0x00ff_ffff_ffff_ffff;

/// Parse one modifier: `linear`, `invalid`, `0x` hex or decimal u64.
pub fn parse_modifier(s: &str) -> Result<u64, String> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "linear" => return Ok(DRM_FORMAT_MOD_LINEAR),
        "invalid" => return Ok(DRM_FORMAT_MOD_INVALID),
        _ => {}
    }
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse::<u64>(),
    };
    r.map_err(|_| format!("bad modifier {s:?} (want linear, invalid, 0xHEX or decimal)"))
}

/// Parse a comma-separated modifier list (order kept, no duplicates, not
/// empty).
pub fn parse_modifier_list(s: &str) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let m = parse_modifier(part)?;
        if out.contains(&m) {
            return Err(format!("modifier {} listed twice", modifier_name(m)));
        }
        out.push(m);
    }
    Ok(out)
}

/// How logs and tests spell a modifier: `0x` and 16 hex digits.
pub fn modifier_name(m: u64) -> String {
    format!("{m:#018x}")
}

/// What the producer offers and can allocate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DmabufConfig {
    /// Modifiers offered for every format, preferred first (empty: SHM only).
    pub modifiers: Vec<u64>,
    /// The modifiers the producer "can allocate" (None: all it offers).
    pub alloc: Option<Vec<u64>>,
    /// Leave out the EnumFormat without a modifier.
    pub dmabuf_only: bool,
}

impl DmabufConfig {
    /// True when modifiers are offered.
    pub fn enabled(&self) -> bool {
        !self.modifiers.is_empty()
    }

    /// True when the producer can allocate buffers with modifier `m`.
    pub fn can_alloc(&self, m: u64) -> bool {
        self.modifiers.contains(&m) && self.alloc.as_ref().is_none_or(|a| a.contains(&m))
    }
}

/// What a Format param says about the modifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatModifier {
    /// No modifier property: shared memory.
    Shm,
    /// Still a choice (`DONT_FIXATE`): the producer must fixate. The values
    /// are the choice's alternatives (the intersection), in order.
    Choice(Vec<u64>),
    /// One modifier: DMA-BUF with it.
    Fixed(u64),
}

fn as_u64(v: i64) -> u64 {
    v as u64
}

/// Read the modifier of a Format param (serialized pod bytes).
pub fn format_modifier(pod: &[u8]) -> Result<FormatModifier, String> {
    let obj = match PodDeserializer::deserialize_any_from(pod) {
        Ok((_, Value::Object(o))) => o,
        Ok(_) => return Err("the Format is not an object".into()),
        Err(e) => return Err(format!("unparsable Format: {e:?}")),
    };
    let Some(prop) = obj
        .properties
        .iter()
        .find(|p| p.key == spa_sys::SPA_FORMAT_VIDEO_modifier)
    else {
        return Ok(FormatModifier::Shm);
    };
    let dont_fixate = prop.flags.contains(PropertyFlags::DONT_FIXATE);
    match &prop.value {
        Value::Long(m) => Ok(FormatModifier::Fixed(as_u64(*m))),
        Value::Choice(ChoiceValue::Long(Choice(_, e))) => match e {
            ChoiceEnum::None(m) => Ok(FormatModifier::Fixed(as_u64(*m))),
            ChoiceEnum::Enum {
                default,
                alternatives,
            } => {
                if !dont_fixate {
                    // PipeWire fixates choices without DONT_FIXATE to
                    // their default.
                    return Ok(FormatModifier::Fixed(as_u64(*default)));
                }
                let mut out: Vec<u64> = Vec::new();
                let src = if alternatives.is_empty() {
                    std::slice::from_ref(default)
                } else {
                    alternatives.as_slice()
                };
                for m in src {
                    if !out.contains(&as_u64(*m)) {
                        out.push(as_u64(*m));
                    }
                }
                Ok(FormatModifier::Choice(out))
            }
            other => Err(format!("modifier choice of an unexpected kind: {other:?}")),
        },
        other => Err(format!("modifier of an unexpected type: {other:?}")),
    }
}

/// What the producer does with a Format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatAction {
    /// Answer Buffers for shared memory (MemFd).
    Shm,
    /// Answer Buffers for DMA-BUF with this modifier.
    Dmabuf(u64),
    /// Do not answer Buffers: announce [`Fixation::enum_formats`] again.
    /// `chosen` is the modifier fixated (None: none of the candidates could
    /// be allocated, so they were withdrawn from the offer).
    Announce { chosen: Option<u64> },
}

/// The producer's side of modifier negotiation for one stream.
#[derive(Clone, Debug, Default)]
pub struct Fixation {
    cfg: DmabufConfig,
    /// The modifier announced in a fixated EnumFormat, if any.
    fixed: Option<u64>,
    /// Offered modifiers withdrawn because they could not be allocated.
    withdrawn: Vec<u64>,
}

impl Fixation {
    pub fn new(cfg: DmabufConfig) -> Fixation {
        Fixation {
            cfg,
            fixed: None,
            withdrawn: Vec::new(),
        }
    }

    pub fn config(&self) -> &DmabufConfig {
        &self.cfg
    }

    /// The modifier of the fixated EnumFormat now announced.
    pub fn fixed(&self) -> Option<u64> {
        self.fixed
    }

    /// The modifiers still offered in the choice.
    pub fn offered(&self) -> Vec<u64> {
        self.cfg
            .modifiers
            .iter()
            .copied()
            .filter(|m| !self.withdrawn.contains(m))
            .collect()
    }

    /// Forget the fixation (a new size: the next Format is fixated anew).
    pub fn reset(&mut self) {
        self.fixed = None;
    }

    /// Decide what to do with a negotiated Format. A choice is fixated to
    /// the first modifier in the producer's order that is a candidate and
    /// can be allocated.
    pub fn on_format(&mut self, m: &FormatModifier) -> FormatAction {
        match m {
            FormatModifier::Shm => FormatAction::Shm,
            FormatModifier::Fixed(m) => {
                if self.cfg.can_alloc(*m) {
                    FormatAction::Dmabuf(*m)
                } else {
                    // Only reachable through the no-fixation short path
                    // (a lone DRM_FORMAT_MOD_INVALID) with --alloc-modifiers
                    // excluding it, or a peer that fixated for us.
                    self.withdraw(&[*m]);
                    FormatAction::Announce { chosen: None }
                }
            }
            FormatModifier::Choice(cands) => {
                // The producer's preference (its --modifiers order) decides,
                // as an allocator given the list would.
                match self
                    .offered()
                    .into_iter()
                    .find(|m| cands.contains(m) && self.cfg.can_alloc(*m))
                {
                    Some(c) => {
                        self.fixed = Some(c);
                        FormatAction::Announce { chosen: Some(c) }
                    }
                    None => {
                        self.withdraw(cands);
                        FormatAction::Announce { chosen: None }
                    }
                }
            }
        }
    }

    fn withdraw(&mut self, mods: &[u64]) {
        for m in mods {
            if self.cfg.modifiers.contains(m) && !self.withdrawn.contains(m) {
                self.withdrawn.push(*m);
            }
        }
        if self.fixed.is_some_and(|f| self.withdrawn.contains(&f)) {
            self.fixed = None;
        }
    }

    /// The EnumFormats to announce for `fmt` at `w`x`h`, `rate` fps: the
    /// fixated one (if any), the modifier choice (if any modifier is left),
    /// then SHM (unless DMA-BUF only).
    pub fn enum_formats(&self, fmt: PixelFormat, w: u32, h: u32, rate: u32) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if let Some(m) = self.fixed {
            out.push(format_pod(fmt, w, h, rate, Some(ModifierProp::Fixed(m))));
        }
        let offered = self.offered();
        if !offered.is_empty() {
            let prop = if offered == [DRM_FORMAT_MOD_INVALID] {
                ModifierProp::Fixed(DRM_FORMAT_MOD_INVALID)
            } else {
                ModifierProp::Choice(offered)
            };
            out.push(format_pod(fmt, w, h, rate, Some(prop)));
        }
        if !self.cfg.dmabuf_only {
            out.push(format_pod(fmt, w, h, rate, None));
        }
        out
    }
}

/// The modifier property of an EnumFormat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModifierProp {
    /// One value, `MANDATORY`.
    Fixed(u64),
    /// An Enum choice (first = default), `MANDATORY | DONT_FIXATE`.
    Choice(Vec<u64>),
}

/// An EnumFormat: video/raw, `fmt`, fixed size and framerate, and the
/// modifier property if any.
pub fn format_pod(
    fmt: PixelFormat,
    w: u32,
    h: u32,
    rate: u32,
    modifier: Option<ModifierProp>,
) -> Vec<u8> {
    let mut properties = vec![
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
    ];
    match modifier {
        None => {}
        Some(ModifierProp::Fixed(m)) => properties.push(Property {
            key: spa_sys::SPA_FORMAT_VIDEO_modifier,
            flags: PropertyFlags::MANDATORY,
            value: Value::Long(m as i64),
        }),
        Some(ModifierProp::Choice(mods)) => properties.push(Property {
            key: spa_sys::SPA_FORMAT_VIDEO_modifier,
            flags: PropertyFlags::MANDATORY | PropertyFlags::DONT_FIXATE,
            value: Value::Choice(ChoiceValue::Long(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Enum {
                    default: mods[0] as i64,
                    alternatives: mods.iter().map(|m| *m as i64).collect(),
                },
            ))),
        }),
    }
    properties.push(Property::new(
        spa_sys::SPA_FORMAT_VIDEO_size,
        Value::Rectangle(Rectangle {
            width: w,
            height: h,
        }),
    ));
    properties.push(Property::new(
        spa_sys::SPA_FORMAT_VIDEO_framerate,
        Value::Fraction(Fraction {
            num: rate,
            denom: 1,
        }),
    ));
    crate::spa::serialize(Value::Object(Object {
        type_: spa_sys::SPA_TYPE_OBJECT_Format,
        id: spa_sys::SPA_PARAM_EnumFormat,
        properties,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u64 = 0x0100_0000_0000_0001; // I915_FORMAT_MOD_X_TILED
    const B: u64 = DRM_FORMAT_MOD_LINEAR;

    fn cfg(mods: &[u64], alloc: Option<&[u64]>, dmabuf_only: bool) -> DmabufConfig {
        DmabufConfig {
            modifiers: mods.to_vec(),
            alloc: alloc.map(|a| a.to_vec()),
            dmabuf_only,
        }
    }

    fn object(bytes: &[u8]) -> Object {
        match PodDeserializer::deserialize_any_from(bytes).unwrap().1 {
            Value::Object(o) => o,
            v => panic!("not an object: {v:?}"),
        }
    }

    fn modifier_prop(bytes: &[u8]) -> Option<Property> {
        object(bytes)
            .properties
            .into_iter()
            .find(|p| p.key == spa_sys::SPA_FORMAT_VIDEO_modifier)
    }

    /// A Format as PipeWire's intersection makes it: the Enum default is
    /// one side's, the alternatives are what both sides have.
    fn format_with(default: u64, alternatives: &[u64], flags: PropertyFlags) -> Vec<u8> {
        let mut o = object(&format_pod(PixelFormat::Bgrx, 64, 48, 30, None));
        o.id = spa_sys::SPA_PARAM_Format;
        o.properties.push(Property {
            key: spa_sys::SPA_FORMAT_VIDEO_modifier,
            flags,
            value: Value::Choice(ChoiceValue::Long(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Enum {
                    default: default as i64,
                    alternatives: alternatives.iter().map(|m| *m as i64).collect(),
                },
            ))),
        });
        crate::spa::serialize(Value::Object(o))
    }

    #[test]
    fn modifiers_parse() {
        assert_eq!(parse_modifier("linear"), Ok(0));
        assert_eq!(parse_modifier("INVALID"), Ok(DRM_FORMAT_MOD_INVALID));
        assert_eq!(parse_modifier("0x0100000000000001"), Ok(A));
        assert_eq!(parse_modifier("72057594037927937"), Ok(A));
        assert_eq!(parse_modifier(" 0 "), Ok(0));
        assert!(parse_modifier("0xzz").is_err());
        assert!(parse_modifier("-1").is_err());
        assert!(parse_modifier("").is_err());
        assert_eq!(
            parse_modifier_list("0x0100000000000001,linear"),
            Ok(vec![A, B])
        );
        assert!(parse_modifier_list("0,linear").is_err(), "duplicate");
        assert!(parse_modifier_list("").is_err());
        assert_eq!(modifier_name(A), "0x0100000000000001");
        assert_eq!(modifier_name(0), "0x0000000000000000");
    }

    #[test]
    fn offer_is_choice_then_shm() {
        let f = Fixation::new(cfg(&[A, B], None, false));
        let pods = f.enum_formats(PixelFormat::Bgrx, 320, 240, 30);
        assert_eq!(pods.len(), 2);
        let p = modifier_prop(&pods[0]).expect("modifier on the first pod");
        assert_eq!(
            p.flags,
            PropertyFlags::MANDATORY | PropertyFlags::DONT_FIXATE
        );
        assert_eq!(
            p.value,
            Value::Choice(ChoiceValue::Long(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Enum {
                    default: A as i64,
                    alternatives: vec![A as i64, B as i64]
                }
            )))
        );
        assert!(modifier_prop(&pods[1]).is_none(), "SHM pod has no modifier");

        let only = Fixation::new(cfg(&[A], None, true));
        assert_eq!(only.enum_formats(PixelFormat::Bgrx, 8, 8, 30).len(), 1);
        let shm = Fixation::new(cfg(&[], None, false));
        let pods = shm.enum_formats(PixelFormat::Bgrx, 8, 8, 30);
        assert_eq!(pods.len(), 1);
        assert!(modifier_prop(&pods[0]).is_none());
        // Exactly what the SHM producer always sent.
        assert_eq!(
            pods[0],
            crate::spa::video_format(
                spa_sys::SPA_PARAM_EnumFormat,
                PixelFormat::Bgrx,
                Value::Rectangle(Rectangle {
                    width: 8,
                    height: 8
                }),
                Value::Fraction(Fraction { num: 30, denom: 1 })
            )
        );
    }

    #[test]
    fn implicit_only_is_a_single_value_without_dont_fixate() {
        let f = Fixation::new(cfg(&[DRM_FORMAT_MOD_INVALID], None, false));
        let pods = f.enum_formats(PixelFormat::Bgrx, 8, 8, 30);
        let p = modifier_prop(&pods[0]).unwrap();
        assert_eq!(p.flags, PropertyFlags::MANDATORY);
        assert_eq!(p.value, Value::Long(DRM_FORMAT_MOD_INVALID as i64));
    }

    #[test]
    fn format_modifier_reads_every_shape() {
        let shm = format_pod(PixelFormat::Bgrx, 8, 8, 30, None);
        assert_eq!(format_modifier(&shm), Ok(FormatModifier::Shm));
        let fixed = format_pod(PixelFormat::Bgrx, 8, 8, 30, Some(ModifierProp::Fixed(A)));
        assert_eq!(format_modifier(&fixed), Ok(FormatModifier::Fixed(A)));
        let dont = PropertyFlags::MANDATORY | PropertyFlags::DONT_FIXATE;
        assert_eq!(
            format_modifier(&format_with(A, &[A, B], dont)),
            Ok(FormatModifier::Choice(vec![A, B]))
        );
        // The intersection's default is not a candidate.
        assert_eq!(
            format_modifier(&format_with(A, &[B], dont)),
            Ok(FormatModifier::Choice(vec![B]))
        );
        // A choice without DONT_FIXATE is its default.
        assert_eq!(
            format_modifier(&format_with(B, &[A, B], PropertyFlags::MANDATORY)),
            Ok(FormatModifier::Fixed(B))
        );
        assert!(format_modifier(&[1, 2, 3]).is_err());
    }

    #[test]
    fn fixation_cycle_and_renegotiation() {
        let mut f = Fixation::new(cfg(&[A, B], None, false));
        // First Format: both left, the first is fixated and announced
        // first, the choice and SHM stay behind it.
        assert_eq!(
            f.on_format(&FormatModifier::Choice(vec![A, B])),
            FormatAction::Announce { chosen: Some(A) }
        );
        let pods = f.enum_formats(PixelFormat::Bgrx, 8, 8, 30);
        assert_eq!(pods.len(), 3);
        let p = modifier_prop(&pods[0]).unwrap();
        assert_eq!(
            (p.flags, p.value),
            (PropertyFlags::MANDATORY, Value::Long(A as i64))
        );
        assert!(modifier_prop(&pods[1])
            .unwrap()
            .flags
            .contains(PropertyFlags::DONT_FIXATE));
        assert!(modifier_prop(&pods[2]).is_none());
        // The fixed Format: DMA-BUF buffers.
        assert_eq!(
            f.on_format(&FormatModifier::Fixed(A)),
            FormatAction::Dmabuf(A)
        );
        // The consumer dropped A: a choice of B comes, B is fixated.
        assert_eq!(
            f.on_format(&FormatModifier::Choice(vec![B])),
            FormatAction::Announce { chosen: Some(B) }
        );
        assert_eq!(f.fixed(), Some(B));
        assert_eq!(
            f.on_format(&FormatModifier::Fixed(B)),
            FormatAction::Dmabuf(B)
        );
        // Fallback to SHM.
        assert_eq!(f.on_format(&FormatModifier::Shm), FormatAction::Shm);
        // A resize forgets the fixation.
        f.reset();
        assert_eq!(f.enum_formats(PixelFormat::Bgrx, 8, 8, 30).len(), 2);
    }

    #[test]
    fn fixation_follows_the_producers_order() {
        let mut f = Fixation::new(cfg(&[A, B], None, false));
        assert_eq!(
            f.on_format(&FormatModifier::Choice(vec![B, A])),
            FormatAction::Announce { chosen: Some(A) }
        );
    }

    #[test]
    fn fixation_picks_an_allocatable_modifier_or_withdraws() {
        let mut f = Fixation::new(cfg(&[A, B], Some(&[B]), false));
        assert_eq!(
            f.on_format(&FormatModifier::Choice(vec![A, B])),
            FormatAction::Announce { chosen: Some(B) }
        );
        // Nothing allocatable among the candidates: withdrawn, the choice
        // keeps the rest.
        let mut f = Fixation::new(cfg(&[A, B], Some(&[B]), false));
        assert_eq!(
            f.on_format(&FormatModifier::Choice(vec![A])),
            FormatAction::Announce { chosen: None }
        );
        assert_eq!(f.offered(), vec![B]);
        assert_eq!(f.fixed(), None);
        // Everything withdrawn: only SHM is left.
        let mut f = Fixation::new(cfg(&[A], Some(&[]), false));
        f.on_format(&FormatModifier::Choice(vec![A]));
        let pods = f.enum_formats(PixelFormat::Bgrx, 8, 8, 30);
        assert_eq!(pods.len(), 1);
        assert!(modifier_prop(&pods[0]).is_none());
        // A candidate the producer never offered is not taken.
        let mut f = Fixation::new(cfg(&[A], None, false));
        assert_eq!(
            f.on_format(&FormatModifier::Choice(vec![B])),
            FormatAction::Announce { chosen: None }
        );
        assert_eq!(f.offered(), vec![A]);
        // A fixed Format with a modifier it cannot allocate is withdrawn.
        let mut f = Fixation::new(cfg(&[DRM_FORMAT_MOD_INVALID], Some(&[]), false));
        assert_eq!(
            f.on_format(&FormatModifier::Fixed(DRM_FORMAT_MOD_INVALID)),
            FormatAction::Announce { chosen: None }
        );
        assert!(f.offered().is_empty());
    }
}
