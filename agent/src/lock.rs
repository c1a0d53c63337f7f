//! One agent per state dir: every `otter-agent` command holds an exclusive lock on
//! `state_dir/agent.lock` for the life of the process (the kernel drops it when the process
//! ends, even by `kill -9`). A second process is refused with the holder's pid and command,
//! since two agents writing one flash and one message counter would corrupt both.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;

/// Why the state dir could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock file cannot be opened or written.
    #[error("lock file {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another process holds it.
    #[error(
        "state dir {dir} is in use by another otter-agent ({holder}); stop it first \
         (lock file {path})"
    )]
    Held {
        /// The state dir.
        dir: PathBuf,
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as it wrote itself into the file.
        holder: String,
    },
}

/// The held lock; dropping it (or ending the process) releases it.
#[derive(Debug)]
pub struct StateLock {
    _file: std::fs::File,
}

/// The lock file in `state_dir`.
pub fn lock_path(state_dir: &Path) -> PathBuf {
    state_dir.join("agent.lock")
}

/// Takes the lock on `state_dir` (creating the dir, mode 0700), or says who holds it.
pub fn lock(state_dir: &Path) -> Result<StateLock, LockError> {
    use std::os::unix::fs::DirBuilderExt;
    let path = lock_path(state_dir);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(io)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io)?;
    if !file.try_lock_exclusive().map_err(io)? {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = match holder.trim() {
            "" => "a process that has not written its pid yet".to_owned(),
            text => text.chars().take(200).collect(),
        };
        return Err(LockError::Held {
            dir: state_dir.to_path_buf(),
            path,
            holder,
        });
    }
    let me = format!(
        "pid {}: {}",
        std::process::id(),
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(me.as_bytes()).map_err(io)?;
    Ok(StateLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_state_dir_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        let err = lock(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(held);
        lock(dir.path()).unwrap();
    }
}
