//! Proof that a delta worker is alive: each worker holds an exclusive `flock` on its own
//! file `<data-dir>/workers/<worker-id>.lock` for as long as its process lives. The kernel
//! drops the lock when the process dies, even by `kill -9`, so any server sharing the data
//! dir (a restart of the same server, or a replica on the same host) can tell a dead
//! worker's jobs from a live one's at once, without waiting for a heartbeat to go stale.
//! Replicas with their own data dirs still rely on the heartbeat.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

const SUFFIX: &str = ".lock";

/// The lock of a live worker; dropping it removes the file and releases the lock.
#[derive(Debug)]
pub struct Lease {
    path: PathBuf,
    _file: File,
}

impl Lease {
    /// Takes the lease of `worker` in `dir`. The file is locked under a temporary name
    /// first, so a scan never sees an unlocked file of a live worker.
    pub fn take(dir: &Path, worker: &str) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let temp = dir.join(format!(".{worker}.new"));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        flock(&file, FlockOperation::NonBlockingLockExclusive)?;
        let path = dir.join(format!("{worker}{SUFFIX}"));
        std::fs::rename(&temp, &path)?;
        Ok(Self { path, _file: file })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The workers in `dir` whose process is gone: their files are no longer locked. A caller
/// that has dealt with one calls [`forget`].
pub fn dead_workers(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut dead = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(worker) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
            continue;
        };
        let Ok(file) = File::open(entry.path()) else {
            continue;
        };
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
            dead.push(worker.to_owned());
        }
    }
    Ok(dead)
}

/// Removes the file of a dead worker whose jobs were re-queued.
pub fn forget(dir: &Path, worker: &str) -> io::Result<()> {
    match std::fs::remove_file(dir.join(format!("{worker}{SUFFIX}"))) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Where the leases of workers using `data_dir` live.
pub fn lease_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("workers")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lease_is_alive_and_a_dropped_or_abandoned_one_is_dead() {
        let dir = tempfile::tempdir().unwrap();
        let live = Lease::take(dir.path(), "wrk_live").unwrap();
        // A file left by a process that died (nobody holds its lock).
        std::fs::write(dir.path().join("wrk_gone.lock"), b"").unwrap();
        assert_eq!(
            dead_workers(dir.path()).unwrap(),
            vec!["wrk_gone".to_owned()]
        );
        forget(dir.path(), "wrk_gone").unwrap();
        assert!(dead_workers(dir.path()).unwrap().is_empty(), "forgotten");
        drop(live);
        assert!(!dir.path().join("wrk_live.lock").exists());
        assert!(
            dead_workers(&dir.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }
}
