//! Running the `otter-keys` binary from a test: the output of a command that must work,
//! and the error of one that must fail cleanly.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub fn otter_keys(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otter-keys"))
        .args(args)
        .output()
        .unwrap()
}

pub fn ok(args: &[&str]) -> String {
    let out = otter_keys(args);
    assert!(
        out.status.success(),
        "otter-keys {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Fails cleanly: non-zero exit, an `error:` line, never a panic.
pub fn fails(args: &[&str]) -> String {
    let out = otter_keys(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "otter-keys {args:?} should fail");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("error"), "{stderr}");
    stderr
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
