//! The `wrd-capture` command (filled in by the users'-side work).
fn main() {
    eprintln!("wrd-capture: not yet implemented");
    std::process::exit(2);
}
