//! The server's side of the differ child process ([`super::child`]): start it, feed it the
//! two images, read the patch back, and turn every way it can end into a typed error. A
//! crash, an exceeded memory or CPU limit, or a hang past the wall-clock limit (the child
//! is killed) is a [`ChildError::Crashed`], which fails the job run; a reasoned refusal is a
//! [`ChildError::Refused`], which fails only that base.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::build::Unchecked;
use super::child::{self, EXIT_REFUSED};

/// The child's stderr kept for the error message.
const STDERR_CAP: u64 = 16 << 10;

/// How to run a differ child.
#[derive(Clone, Debug)]
pub struct Isolation {
    /// The program: the server binary itself (its hidden `delta-child` subcommand).
    pub exe: PathBuf,
    /// Wall-clock limit; the child is killed past it (also its CPU-time limit).
    pub timeout: Duration,
    /// Address-space limit of the child.
    pub memory_bytes: u64,
}

/// How a differ child failed.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The child refused the images with a reason (the base fails; retrying cannot help).
    #[error("{0}")]
    Refused(String),
    /// The child died, was killed, or could not run (the job run fails and is retried).
    #[error("the differ process {0}")]
    Crashed(String),
}

/// Diffs `old` into `new` in a child process under `iso`'s limits.
pub async fn diff_in_child(
    iso: &Isolation,
    old: &[u8],
    new: &[u8],
) -> Result<Unchecked, ChildError> {
    let mut child = tokio::process::Command::new(&iso.exe)
        .arg("delta-child")
        .arg("--memory-limit")
        .arg(iso.memory_bytes.to_string())
        .arg("--cpu-seconds")
        .arg(iso.timeout.as_secs().max(1).to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            ChildError::Crashed(format!("{} could not be started: {e}", iso.exe.display()))
        })?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(ChildError::Crashed("has no pipes".into()));
    };
    let input = child::frame_input(old, new);
    let out_cap = 16 + 3 * new.len() as u64 + (1 << 20);
    let run = async {
        let write = async {
            // A child that dies early closes its stdin; its exit status tells why.
            let _ = stdin.write_all(&input).await;
            drop(stdin);
        };
        let ((), out, err) = tokio::join!(
            write,
            read_capped(stdout, out_cap),
            read_capped(stderr, STDERR_CAP)
        );
        (child.wait().await, out, err)
    };
    let Ok((status, out, err)) = tokio::time::timeout(iso.timeout, run).await else {
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Err(ChildError::Crashed(format!(
            "ran past the time limit of {} and was killed",
            humantime::format_duration(iso.timeout)
        )));
    };
    let status =
        status.map_err(|e| ChildError::Crashed(format!("could not be waited for: {e}")))?;
    let stderr = String::from_utf8_lossy(&err.unwrap_or_default())
        .trim()
        .to_owned();
    if !status.success() {
        return Err(failure(status, stderr));
    }
    let out = out.map_err(|e| ChildError::Crashed(format!("output unreadable: {e}")))?;
    let (raw_len, diff_time, patch) = child::parse_output(&out)
        .ok_or_else(|| ChildError::Crashed(format!("wrote {} bytes, not a patch", out.len())))?;
    Ok(Unchecked {
        patch: patch.to_vec(),
        raw_len,
        diff_time,
    })
}

async fn read_capped(stream: impl AsyncRead + Unpin, cap: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    stream.take(cap + 1).read_to_end(&mut buf).await?;
    if buf.len() as u64 > cap {
        return Err(std::io::Error::other(format!("more than {cap} bytes")));
    }
    Ok(buf)
}

/// Describes a failed child from its exit status and stderr.
fn failure(status: ExitStatus, stderr: String) -> ChildError {
    use std::os::unix::process::ExitStatusExt;
    let said = if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    };
    if status.code() == Some(EXIT_REFUSED) {
        return ChildError::Refused(stderr);
    }
    match (status.code(), status.signal()) {
        (_, Some(signal)) => ChildError::Crashed(format!(
            "was killed by signal {signal}{}{said}",
            signal_name(signal)
        )),
        (Some(code), None) => ChildError::Crashed(format!("exited with status {code}{said}")),
        (None, None) => ChildError::Crashed(format!("ended with {status}{said}")),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        6 => " (SIGABRT: aborted, e.g. out of memory under its limit)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV: crashed, e.g. stack overflow)",
        24 => " (SIGXCPU: CPU time limit)",
        _ => "",
    }
}
