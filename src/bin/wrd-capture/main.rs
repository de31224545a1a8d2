//! `wrd-capture`: list PipeWire video sources, record frames to files, watch
//! live stream statistics. A thin shell over the library's Rust API; see
//! `docs/wrd-capture.1` for the manual.

mod cli;
mod list;
mod record;
mod stats;

use std::process::ExitCode;

use cli::{Fail, USAGE};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None => {
            eprint!("{USAGE}");
            return ExitCode::from(cli::EXIT_USAGE);
        }
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some("-V" | "--version") => {
            println!("wrd-capture {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some("list") => cli::Args::parse(&args[1..], cli::Cmd::List).and_then(|a| list::run(&a)),
        Some("record") => {
            cli::Args::parse(&args[1..], cli::Cmd::Record).and_then(|a| record::run(&a))
        }
        Some("stats") => cli::Args::parse(&args[1..], cli::Cmd::Stats).and_then(|a| stats::run(&a)),
        Some(other) => Err(Fail::usage(format!("unknown command '{other}'"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("wrd-capture: {}", f.message);
            if f.code == cli::EXIT_USAGE {
                eprintln!("Try 'wrd-capture --help'.");
            }
            ExitCode::from(f.code)
        }
    }
}
