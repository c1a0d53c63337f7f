//! The differ's own process (`otter-server delta-child`, hidden): it limits its address
//! space and CPU time, reads the two images from stdin, and writes the compressed patch to
//! stdout. Whatever an input does to it (abort, out of memory, endless work) ends this
//! process, never the server that started it ([`super::isolate`] is the server's side).
//!
//! Wire format. stdin: the old image's length (8 bytes, little-endian), the old image, then
//! the new image up to end of input. stdout on success: the raw patch length and the diff
//! time in microseconds (8 bytes little-endian each), then the compressed patch.

use std::io::{self, Read, Write};
use std::time::Duration;

use super::build::diff_and_compress;

/// Exit status of a child that refused its input (a reasoned failure, not a crash); the
/// reason is on stderr.
pub const EXIT_REFUSED: i32 = 3;

/// Exit status of a child that could not set its limits or read its input.
pub const EXIT_SETUP: i32 = 4;

/// Exit status of a child that found its parent gone.
pub const EXIT_ORPHANED: i32 = 5;

/// Resource limits the child sets on itself before reading any input.
#[derive(Clone, Copy, Debug)]
pub struct ChildLimits {
    /// Largest address space (`RLIMIT_AS`), bytes.
    pub memory_bytes: u64,
    /// CPU seconds (`RLIMIT_CPU`); the kernel kills the child past it.
    pub cpu_seconds: u64,
}

/// Runs the child to its end; returns the process exit status.
pub fn run(limits: ChildLimits) -> i32 {
    if let Err(e) = limit_self(limits) {
        eprintln!("delta-child: setting resource limits: {e}");
        return EXIT_SETUP;
    }
    watch_parent();
    let mut input = Vec::new();
    if let Err(e) = io::stdin().lock().read_to_end(&mut input) {
        eprintln!("delta-child: reading the images: {e}");
        return EXIT_SETUP;
    }
    let Some((old, new)) = split_input(&input) else {
        eprintln!(
            "delta-child: expected an 8-byte old-image length and both images, got {} bytes",
            input.len()
        );
        return EXIT_SETUP;
    };
    let unchecked = match diff_and_compress(old, new) {
        Ok(unchecked) => unchecked,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_REFUSED;
        }
    };
    let micros = u64::try_from(unchecked.diff_time.as_micros()).unwrap_or(u64::MAX);
    let mut out = io::stdout().lock();
    let written = out
        .write_all(&unchecked.raw_len.to_le_bytes())
        .and_then(|()| out.write_all(&micros.to_le_bytes()))
        .and_then(|()| out.write_all(&unchecked.patch))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("delta-child: writing the patch: {e}");
            EXIT_SETUP
        }
    }
}

/// Frames the two images for the child's stdin.
pub fn frame_input(old: &[u8], new: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(8 + old.len() + new.len());
    input.extend_from_slice(&(old.len() as u64).to_le_bytes());
    input.extend_from_slice(old);
    input.extend_from_slice(new);
    input
}

fn split_input(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = input.split_first_chunk::<8>()?;
    let old_len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
    (old_len <= rest.len()).then(|| rest.split_at(old_len))
}

/// Parses what a successful child wrote: raw length, diff time and patch.
pub fn parse_output(output: &[u8]) -> Option<(u64, Duration, &[u8])> {
    let (raw_len, rest) = output.split_first_chunk::<8>()?;
    let (micros, patch) = rest.split_first_chunk::<8>()?;
    Some((
        u64::from_le_bytes(*raw_len),
        Duration::from_micros(u64::from_le_bytes(*micros)),
        patch,
    ))
}

fn limit_self(limits: ChildLimits) -> io::Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let cpu = limits.cpu_seconds.max(1);
    setrlimit(
        Resource::Cpu,
        Rlimit {
            current: Some(cpu),
            maximum: Some(cpu.saturating_add(5)),
        },
    )?;
    setrlimit(
        Resource::As,
        Rlimit {
            current: Some(limits.memory_bytes),
            maximum: Some(limits.memory_bytes),
        },
    )?;
    Ok(())
}

/// Exits once the parent is gone (a server killed with -9 leaves no orphan differ running).
fn watch_parent() {
    let parent = rustix::process::getppid();
    let spawned = std::thread::Builder::new()
        .name("parent-watch".into())
        .stack_size(64 << 10)
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                if rustix::process::getppid() != parent {
                    std::process::exit(EXIT_ORPHANED);
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("delta-child: cannot watch the parent process: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_frame_splits_back_into_both_images() {
        let framed = frame_input(b"old image", b"new");
        assert_eq!(split_input(&framed), Some((&b"old image"[..], &b"new"[..])));
        assert_eq!(split_input(&framed[..5]), None);
        let mut lying = framed.clone();
        lying[0] = 200;
        assert_eq!(split_input(&lying), None);
        assert!(parse_output(&[0; 15]).is_none());
        let (raw, time, patch) =
            parse_output(&[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9]).unwrap();
        assert_eq!(
            (raw, time, patch),
            (1, Duration::from_micros(2), &[9u8][..])
        );
    }
}
