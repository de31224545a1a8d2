//! Building and running the C test programs as a C user would: the library
//! installed with `make install` into a private prefix (the profile the
//! tests run under), programs compiled with the installed header and
//! pkg-config only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use wrd_testsrc::sandbox::Sandbox;

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `make install` into a private prefix, once per test binary.
pub fn prefix() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!(
            "wrd-c-{}-{}",
            env!("CARGO_CRATE_NAME"),
            std::process::id()
        ));
        let prefix = dir.join("prefix");
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        let out = Command::new("make")
            .current_dir(ROOT)
            .arg("install")
            .arg(format!("PREFIX={}", prefix.display()))
            .arg(format!("PROFILE={profile}"))
            .output()
            .expect("make");
        assert!(
            out.status.success(),
            "make install failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for f in [
            "include/wrd_capture.h",
            "lib/pkgconfig/wrd-capture.pc",
            "lib/libwrd_capture.so",
            "lib/libwrd_capture.a",
        ] {
            assert!(prefix.join(f).exists(), "{f} installed");
        }
        prefix
    })
}

pub fn pkg_config(args: &[&str]) -> Vec<String> {
    let out = Command::new("pkg-config")
        .args(args)
        .arg("wrd-capture")
        .env("PKG_CONFIG_PATH", prefix().join("lib/pkgconfig"))
        .output()
        .expect("pkg-config");
    assert!(
        out.status.success(),
        "pkg-config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Build `tests/c/<name>.c` (or as C++) with the installed header and
/// pkg-config only.
pub fn build(name: &str, compiler: &str, std: &str) -> PathBuf {
    let src = Path::new(ROOT).join("tests/c").join(format!("{name}.c"));
    let exe = prefix()
        .parent()
        .unwrap()
        .join(format!("{name}-{compiler}"));
    let mut cmd = Command::new(compiler);
    if compiler == "c++" {
        cmd.args(["-x", "c++"]);
    }
    cmd.arg(format!("-std={std}"))
        .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-pthread"])
        .args(pkg_config(&["--cflags"]))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .args(pkg_config(&["--libs"]));
    let out = cmd.output().expect("compiler");
    assert!(
        out.status.success(),
        "{compiler} {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

pub fn run(sb: &Sandbox, exe: &Path, args: &[String]) -> String {
    let out = sb
        .command(exe)
        .args(args)
        .env("LD_LIBRARY_PATH", prefix().join("lib"))
        .output()
        .expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{} failed:\n{text}", exe.display());
    text
}
