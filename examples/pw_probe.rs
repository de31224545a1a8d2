//! pw_probe — a minimal pw_stream video consumer used by the modern-PipeWire
//! leg (scripts/pw-target-smoke.sh, docs/modern-pipewire.md) to show that a
//! binary built once against the host's libpipewire 0.3.65 runs against other
//! client libraries and daemons, and how the session manager links it.
//!
//! Prints the client library version (`pw_get_library_version()`, run time)
//! and the daemon version (core info), connects an input video stream with
//! `pw_stream_connect(target_id)` and/or stream properties, and waits for
//! frames.
//!
//! ```text
//! pw_probe [--target-id ID] [--prop KEY=VALUE]... [--frames N] [--timeout SECS]
//! ```
//! Exit status: 0 when N frames arrived, 1 on stream error, 2 on timeout,
//! 3 on bad arguments or connection failure.

use std::cell::Cell;
use std::ffi::CStr;
use std::rc::Rc;
use std::time::Duration;

use pipewire as pw;
use pw::spa;
use spa::pod::Pod;

fn usage() -> ! {
    eprintln!(
        "usage: pw_probe [--target-id ID] [--prop KEY=VALUE]... [--frames N] [--timeout SECS]"
    );
    std::process::exit(3);
}

fn main() {
    let mut target_id: Option<u32> = None;
    let mut props: Vec<(String, String)> = vec![
        ("media.type".into(), "Video".into()),
        ("media.category".into(), "Capture".into()),
        ("media.role".into(), "Screen".into()),
        ("node.name".into(), "wrd-pw-probe".into()),
    ];
    let mut frames: u32 = 60;
    let mut timeout: f64 = 10.0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--target-id" => {
                target_id = Some(
                    args.next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or_else(|| usage()),
                )
            }
            "--prop" => {
                let kv = args.next().unwrap_or_else(|| usage());
                let (k, v) = kv.split_once('=').unwrap_or_else(|| usage());
                props.retain(|(pk, _)| pk != k);
                if !v.is_empty() {
                    props.push((k.into(), v.into()));
                }
            }
            "--frames" => {
                frames = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--timeout" => {
                timeout = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            _ => usage(),
        }
    }
    std::process::exit(run(target_id, props, frames, timeout).unwrap_or_else(|e| {
        eprintln!("pw_probe: {e}");
        3
    }));
}

fn run(
    target_id: Option<u32>,
    props: Vec<(String, String)>,
    frames: u32,
    timeout: f64,
) -> Result<i32, pw::Error> {
    pw::init();
    // SAFETY: returns a static NUL-terminated string.
    let lib = unsafe { CStr::from_ptr(pw::sys::pw_get_library_version()) };
    println!("library {}", lib.to_string_lossy());

    let mainloop = pw::main_loop::MainLoop::new(None)?;
    let context = pw::context::Context::new(&mainloop)?;
    let core = context.connect(None)?;
    let _core_listener = core
        .add_listener_local()
        .info(|info| println!("daemon {} ({})", info.version(), info.name()))
        .register();

    let mut p = pw::properties::Properties::new();
    for (k, v) in &props {
        p.insert(k.as_str(), v.as_str());
    }
    let stream = pw::stream::Stream::new(&core, "wrd-pw-probe", p)?;

    let status = Rc::new(Cell::new(2)); // timeout unless something else happens
    let count = Rc::new(Cell::new(0u32));
    let (ml1, ml2, ml3) = (mainloop.clone(), mainloop.clone(), mainloop.clone());
    let (st1, st2) = (status.clone(), status.clone());
    let c1 = count.clone();
    let _listener = stream
        .add_local_listener_with_user_data(spa::param::video::VideoInfoRaw::default())
        .state_changed(move |_, _, old, new| {
            println!("state {old:?} -> {new:?}");
            if let pw::stream::StreamState::Error(_) = new {
                st1.set(1);
                ml1.quit();
            }
        })
        .param_changed(|_, info, id, param| {
            let Some(param) = param else { return };
            if id != spa::param::ParamType::Format.as_raw() {
                return;
            }
            if info.parse(param).is_ok() {
                println!(
                    "format {:?} {}x{} modifier {:#x}",
                    info.format(),
                    info.size().width,
                    info.size().height,
                    info.modifier()
                );
            }
        })
        .process(move |stream, _| {
            if let Some(mut b) = stream.dequeue_buffer() {
                if b.datas_mut().is_empty() {
                    return;
                }
                c1.set(c1.get() + 1);
                if c1.get() == frames {
                    st2.set(0);
                    ml2.quit();
                }
            }
        })
        .register()?;

    use spa::param::format::{FormatProperties as F, MediaSubtype, MediaType};
    use spa::param::video::VideoFormat as V;
    let obj = spa::pod::object!(
        spa::utils::SpaTypes::ObjectParamFormat,
        spa::param::ParamType::EnumFormat,
        spa::pod::property!(F::MediaType, Id, MediaType::Video),
        spa::pod::property!(F::MediaSubtype, Id, MediaSubtype::Raw),
        spa::pod::property!(
            F::VideoFormat,
            Choice,
            Enum,
            Id,
            V::BGRx,
            V::BGRx,
            V::RGBx,
            V::BGRA,
            V::RGBA
        ),
        spa::pod::property!(
            F::VideoSize,
            Choice,
            Range,
            Rectangle,
            spa::utils::Rectangle {
                width: 320,
                height: 240
            },
            spa::utils::Rectangle {
                width: 1,
                height: 1
            },
            spa::utils::Rectangle {
                width: 8192,
                height: 8192
            }
        ),
        spa::pod::property!(
            F::VideoFramerate,
            Choice,
            Range,
            Fraction,
            spa::utils::Fraction { num: 30, denom: 1 },
            spa::utils::Fraction { num: 0, denom: 1 },
            spa::utils::Fraction {
                num: 1000,
                denom: 1
            }
        ),
    );
    let bytes: Vec<u8> = spa::pod::serialize::PodSerializer::serialize(
        std::io::Cursor::new(Vec::new()),
        &spa::pod::Value::Object(obj),
    )
    .expect("serialize EnumFormat")
    .0
    .into_inner();
    let mut params = [Pod::from_bytes(&bytes).expect("pod")];

    stream.connect(
        spa::utils::Direction::Input,
        target_id,
        pw::stream::StreamFlags::AUTOCONNECT | pw::stream::StreamFlags::MAP_BUFFERS,
        &mut params,
    )?;

    let timer = mainloop.loop_().add_timer(move |_| ml3.quit());
    timer
        .update_timer(Some(Duration::from_secs_f64(timeout)), None)
        .into_sync_result()?;

    mainloop.run();
    println!("frames {} status {}", count.get(), status.get());
    Ok(status.get())
}
