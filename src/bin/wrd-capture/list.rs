//! `wrd-capture list`: the video source nodes.
//!
//! The registry gives id, name, description and media class. Size and
//! format are not registry properties (they live in the node's EnumFormat
//! params), so by default each video node is probed: a stream is connected
//! for at most `PROBE_TIMEOUT` and the format it negotiates with the
//! library's default offer is shown. `--no-probe` skips that and shows `-`.

use std::time::{Duration, Instant};

use wrd_capture::{Event, NodeInfo, StreamConfig};

use crate::cli::{connect, wait_readable, Args, Fail};

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Video sources: what compositors and the portal expose (`Video/Source`,
/// also `Video/Source/Virtual`), and screencast streams published as
/// `Stream/Output/Video`.
pub fn is_video_source(n: &NodeInfo) -> bool {
    n.media_class.starts_with("Video/Source") || n.media_class == "Stream/Output/Video"
}

/// What a probe learned: "WxH" and the format name, or why not.
struct Probed {
    size: String,
    format: String,
}

fn probe(cap: &wrd_capture::Capture, nodes: &[NodeInfo]) -> Vec<Probed> {
    let streams: Vec<_> = nodes
        .iter()
        .map(|n| {
            cap.add_stream(
                n.id,
                StreamConfig {
                    pull_events: true,
                    ..Default::default()
                },
            )
            .ok()
        })
        .collect();
    let mut out: Vec<Option<Probed>> = nodes.iter().map(|_| None).collect();
    let deadline = Instant::now() + PROBE_TIMEOUT;
    while out.iter().any(Option::is_none) && Instant::now() < deadline {
        for (i, s) in streams.iter().enumerate() {
            if out[i].is_some() {
                continue;
            }
            let Some(s) = s else {
                out[i] = Some(Probed {
                    size: "?".into(),
                    format: "?".into(),
                });
                continue;
            };
            wait_readable(s.fd(), Duration::from_millis(20));
            while let Some(ev) = s.next_event() {
                match ev {
                    Event::FormatChanged(f) => {
                        out[i] = Some(Probed {
                            size: format!("{}x{}", f.width, f.height),
                            format: f.format.name().to_string(),
                        });
                    }
                    Event::Error { .. } | Event::NodeGone => {
                        out[i] = Some(Probed {
                            size: "?".into(),
                            format: "(no common format)".into(),
                        });
                    }
                    _ => {}
                }
                if out[i].is_some() {
                    break;
                }
            }
        }
    }
    drop(streams);
    out.into_iter()
        .map(|p| {
            p.unwrap_or(Probed {
                size: "?".into(),
                format: "(no answer)".into(),
            })
        })
        .collect()
}

pub fn run(args: &Args) -> Result<(), Fail> {
    let probe_n = 64;
    let cap = connect(args, probe_n)?;
    let nodes: Vec<NodeInfo> = cap
        .nodes()
        .into_iter()
        .filter(|n| args.all || is_video_source(n))
        .collect();
    if nodes.is_empty() {
        eprintln!(
            "wrd-capture: no {}nodes{}",
            if args.all { "" } else { "video source " },
            if args.all {
                ""
            } else {
                " (--all lists every node)"
            }
        );
        return Ok(());
    }
    let probed: Vec<Probed> = if args.probe {
        let video: Vec<NodeInfo> = nodes
            .iter()
            .filter(|n| is_video_source(n))
            .cloned()
            .collect();
        let mut results = probe(&cap, &video[..video.len().min(probe_n)]).into_iter();
        nodes
            .iter()
            .map(|n| {
                if is_video_source(n) {
                    results.next().unwrap_or(Probed {
                        size: "-".into(),
                        format: "-".into(),
                    })
                } else {
                    Probed {
                        size: "-".into(),
                        format: "-".into(),
                    }
                }
            })
            .collect()
    } else {
        nodes
            .iter()
            .map(|_| Probed {
                size: "-".into(),
                format: "-".into(),
            })
            .collect()
    };
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let rows: Vec<[String; 6]> = nodes
        .iter()
        .zip(&probed)
        .map(|(n, p)| {
            [
                n.id.to_string(),
                dash(&n.name),
                dash(&n.media_class),
                p.size.clone(),
                p.format.clone(),
                dash(&n.description),
            ]
        })
        .collect();
    let head = ["ID", "NAME", "MEDIA CLASS", "SIZE", "FORMAT", "DESCRIPTION"];
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(&head);
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(&cells);
    }
    Ok(())
}
