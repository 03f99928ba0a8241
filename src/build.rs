//! Builds `sandpen-relay` (src/gateway/relay/program.rs), which sandpen embeds and places in
//! every gateway-mode task container: std only and statically linked, so that it runs in any
//! image whatever its C library. It is compiled on its own, not as part of sandpen, because
//! cargo cannot link one binary of a package statically and the others not.

use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "src/gateway/relay/program.rs";

fn main() {
    println!("cargo::rerun-if-changed={SOURCE}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("sandpen-relay");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-name",
            "sandpen_relay",
            "--crate-type",
            "bin",
        ])
        .args(["--target", &target])
        .args(["-C", "opt-level=s", "-C", "panic=abort", "-C", "strip=symbols"])
        .args(["-C", "target-feature=+crt-static"])
        .arg("-o")
        .arg(&out)
        .arg(SOURCE)
        .status()
        .expect("running rustc for sandpen-relay");
    assert!(
        status.success(),
        "building sandpen-relay statically failed ({status}): the C library's static archive \
         (libc.a, Debian's libc6-dev) is needed"
    );
}
