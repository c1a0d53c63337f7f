//! Root versions in the key directory: `KEYDIR/<N>.root.json` for every N (never
//! overwritten) and `KEYDIR/root.json`, a copy of the newest.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use tough::schema::{Root, Signed};

use super::TufError;

/// The TUF specification version our metadata follows.
pub const SPEC_VERSION: &str = "1.0.0";

/// File name of the newest root.
pub const ROOT_FILE: &str = "root.json";

/// `dir/<version>.root.json`.
pub fn root_version_path(dir: &Path, version: u64) -> PathBuf {
    dir.join(format!("{version}.root.json"))
}

/// The newest root in `dir` (the highest `<N>.root.json`) with its version N.
///
/// Checks that the file parses as TUF root metadata (key ids match their keys), that its
/// version is N and that it is signed by a threshold of its own root keys.
pub fn current_root(dir: &Path) -> Result<(u64, Signed<Root>), TufError> {
    let io = |source| TufError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut newest = None;
    for entry in fs::read_dir(dir).map_err(io)? {
        let name = entry.map_err(io)?.file_name();
        let Some(version) = name.to_str().and_then(parse_version) else {
            continue;
        };
        newest = newest.max(Some(version));
    }
    let version = newest.ok_or_else(|| TufError::NoRoot(dir.to_owned()))?;
    let path = root_version_path(dir, version);
    let root = read_root(&path)?;
    if root.signed.version.get() != version {
        return Err(TufError::Malformed {
            what: path.display().to_string(),
            why: format!("it says version {}", root.signed.version),
        });
    }
    Ok((version, root))
}

/// Reads and checks one root file (parse, key ids, self-signature threshold).
pub(super) fn read_root(path: &Path) -> Result<Signed<Root>, TufError> {
    let malformed = |why: String| TufError::Malformed {
        what: path.display().to_string(),
        why,
    };
    let bytes = fs::read(path).map_err(|source| TufError::Io {
        path: path.to_owned(),
        source,
    })?;
    let root: Signed<Root> =
        serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
    root.signed
        .verify_role(&root)
        .map_err(|e| malformed(e.to_string()))?;
    Ok(root)
}

/// `N` for a file named `<N>.root.json` (N a positive decimal number).
fn parse_version(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".root.json")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&v| v > 0)
}

/// Writes `bytes` as `dir/<version>.root.json` (refusing to overwrite) and then as
/// `dir/root.json` (replaced atomically). Returns the versioned path.
pub(super) fn write_root_version(
    dir: &Path,
    version: u64,
    bytes: &[u8],
) -> Result<PathBuf, TufError> {
    let path = root_version_path(dir, version);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| TufError::Io { path, source }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => TufError::RootExists(path.clone()),
            _ => io(&path)(e),
        })?;
    file.write_all(bytes).map_err(io(&path))?;
    file.sync_all().map_err(io(&path))?;

    let latest = dir.join(ROOT_FILE);
    let tmp = dir.join(format!("{ROOT_FILE}.tmp"));
    let mut file = File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, &latest).map_err(io(&latest))?;
    // Make the new directory entries durable too.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_positive_decimal_versions_count() {
        assert_eq!(parse_version("1.root.json"), Some(1));
        assert_eq!(parse_version("42.root.json"), Some(42));
        for name in [
            "root.json",
            "0.root.json",
            "+1.root.json",
            "a.root.json",
            "1.root.json.tmp",
            ".root.json",
        ] {
            assert_eq!(parse_version(name), None, "{name}");
        }
    }

    #[test]
    fn an_empty_directory_has_no_root() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(current_root(dir.path()), Err(TufError::NoRoot(_))));
    }

    #[test]
    fn versions_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        write_root_version(dir.path(), 1, b"one").unwrap();
        assert!(matches!(
            write_root_version(dir.path(), 1, b"other"),
            Err(TufError::RootExists(_))
        ));
        assert_eq!(fs::read(dir.path().join("1.root.json")).unwrap(), b"one");
        assert_eq!(fs::read(dir.path().join(ROOT_FILE)).unwrap(), b"one");
    }

    #[test]
    fn garbage_is_malformed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("3.root.json"), b"{}").unwrap();
        assert!(matches!(
            current_root(dir.path()),
            Err(TufError::Malformed { .. })
        ));
    }
}
