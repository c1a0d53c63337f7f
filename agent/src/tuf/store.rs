//! The trusted metadata on disk: one file per role, exactly the bytes received, each
//! replaced atomically (written beside, synced, renamed, directory synced), so a power cut
//! leaves the old file or the new one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::RefreshError;

/// The metadata directory.
#[derive(Debug)]
pub(super) struct Store {
    dir: PathBuf,
}

impl Store {
    pub(super) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn io(&self, name: &str) -> impl FnOnce(std::io::Error) -> RefreshError {
        let path = self.dir.join(name);
        move |source| RefreshError::Io { path, source }
    }

    /// The stored bytes of `name`, if any.
    pub(super) fn read(&self, name: &str) -> Result<Option<Vec<u8>>, RefreshError> {
        match fs::read(self.dir.join(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(name)(e)),
        }
    }

    /// Replaces `name` with `bytes`.
    pub(super) fn write(&self, name: &str, bytes: &[u8]) -> Result<(), RefreshError> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut file = File::create(&tmp).map_err(self.io(name))?;
        file.write_all(bytes).map_err(self.io(name))?;
        file.sync_all().map_err(self.io(name))?;
        fs::rename(&tmp, self.dir.join(name)).map_err(self.io(name))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(self.io(name))
    }

    /// Removes `name` (absent is fine).
    pub(super) fn remove(&self, name: &str) -> Result<(), RefreshError> {
        match fs::remove_file(self.dir.join(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io(name)(e)),
        }
    }
}

/// The file a role's metadata is kept in: `<role>.json`, with every byte of the name other
/// than ASCII letters, digits, `-` and `_` percent-encoded (delegated role names come from
/// signed metadata, but never become a path).
pub(super) fn role_file(role: &str) -> String {
    let mut out = String::new();
    for b in role.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str(".json");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_never_become_paths() {
        assert_eq!(role_file("targets"), "targets.json");
        assert_eq!(role_file("../root"), "%2E%2E%2Froot.json");
        assert_eq!(role_file("a b.c"), "a%20b%2Ec.json");
    }

    #[test]
    fn files_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.read("x.json").unwrap(), None);
        store.write("x.json", b"one").unwrap();
        store.write("x.json", b"two").unwrap();
        assert_eq!(store.read("x.json").unwrap().as_deref(), Some(&b"two"[..]));
        store.remove("x.json").unwrap();
        store.remove("x.json").unwrap();
        assert_eq!(store.read("x.json").unwrap(), None);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
