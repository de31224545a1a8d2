//! The checked-in C header must be what cbindgen generates from the sources.

#[test]
fn header_is_up_to_date() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config =
        cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let text = String::from_utf8(generated.clone()).expect("utf-8 header");
    let mut leaks = Vec::new();
    for line in text.lines() {
        let name = line
            .strip_prefix("#define ")
            .or_else(|| line.strip_prefix("typedef struct "))
            .or_else(|| line.strip_prefix("typedef enum "))
            .and_then(|r| r.split_whitespace().next());
        if let Some(name) = name {
            if !(name.starts_with("wrd_") || name.starts_with("WRD_")) {
                leaks.push(name.to_string());
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{leaks:?} leak into the C header without the wrd_ prefix: exclude them in cbindgen.toml"
    );
    let path = format!("{dir}/include/wrd_capture.h");
    let checked_in = std::fs::read(&path).unwrap_or_default();
    if generated != checked_in {
        if std::env::var_os("WRD_UPDATE_HEADER").is_some() {
            std::fs::write(&path, &generated).expect("write header");
            return;
        }
        panic!("include/wrd_capture.h is stale: run `make header` (WRD_UPDATE_HEADER=1 cargo test --test header) and commit it");
    }
}
