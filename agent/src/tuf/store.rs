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
        let path = self.dir.join(name);
        let parent = path.parent().unwrap_or(&self.dir).to_path_buf();
        fs::create_dir_all(&parent).map_err(self.io(name))?;
        let file_name = path.file_name().map(|f| f.to_string_lossy().into_owned());
        let tmp = parent.join(format!(".{}.tmp", file_name.unwrap_or_default()));
        let mut file = File::create(&tmp).map_err(self.io(name))?;
        file.write_all(bytes).map_err(self.io(name))?;
        file.sync_all().map_err(self.io(name))?;
        fs::rename(&tmp, &path).map_err(self.io(name))?;
        File::open(&parent)
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

/// The file a delegated role's metadata is kept in: `delegated/<hex of the name>.json`.
/// Role names come from signed metadata; a directory of their own and hex keep them from
/// ever naming a top-level file (`root.json`), a path, or two files on a case-insensitive
/// file system.
pub fn delegated_file(role: &str) -> String {
    format!("delegated/{}.json", hex::encode(role.as_bytes()))
}

/// A role name as it appears in a URL: every byte other than the unreserved ASCII letters,
/// digits, `-`, `_`, `.` and `~` percent-encoded, as tough and python-tuf request it.
pub(super) fn url_name(role: &str) -> String {
    let mut out = String::new();
    for b in role.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_never_become_paths_or_top_level_files() {
        assert_eq!(delegated_file("root"), "delegated/726f6f74.json");
        assert_eq!(delegated_file("../x"), "delegated/2e2e2f78.json");
        assert_ne!(delegated_file("A"), delegated_file("a"));
        assert_eq!(url_name("release"), "release");
        assert_eq!(url_name("a b/c.d~"), "a%20b%2Fc.d~");
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
        store.write("delegated/ab.json", b"role").unwrap();
        assert_eq!(
            store.read("delegated/ab.json").unwrap().as_deref(),
            Some(&b"role"[..])
        );
    }
}
