//! What a request path under `/tuf/` names: a metadata file, or a target file with or
//! without its consistent-snapshot hash prefix.

/// A metadata file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MetadataFile {
    /// `N.root.json` (`Some(N)`) or `root.json` (the newest).
    Root(Option<u64>),
    /// `timestamp.json` (never versioned).
    Timestamp,
    /// `N.snapshot.json` or `snapshot.json`.
    Snapshot(Option<u64>),
    /// `N.targets.json` or `targets.json`.
    Targets(Option<u64>),
    /// `N.release.json` or `release.json` (delegated, offline release signing).
    Release(Option<u64>),
    /// `N.deltas.json` or `deltas.json` (delegated, offline release signing).
    Deltas(Option<u64>),
}

impl MetadataFile {
    /// Parses a file name; `None` for anything TUF clients do not ask for.
    pub(super) fn parse(name: &str) -> Option<Self> {
        let (version, role) = match name.split_once('.') {
            Some((first, rest)) if is_version(first) => (Some(parse_version(first)?), rest),
            _ => (None, name),
        };
        match (role, version) {
            ("root.json", v) => Some(Self::Root(v)),
            ("timestamp.json", None) => Some(Self::Timestamp),
            ("snapshot.json", v) => Some(Self::Snapshot(v)),
            ("targets.json", v) => Some(Self::Targets(v)),
            ("release.json", v) => Some(Self::Release(v)),
            ("deltas.json", v) => Some(Self::Deltas(v)),
            _ => None,
        }
    }

    /// Whether the name always means the same bytes (it carries a version).
    pub(super) fn is_versioned(self) -> bool {
        matches!(
            self,
            Self::Root(Some(_))
                | Self::Snapshot(Some(_))
                | Self::Targets(Some(_))
                | Self::Release(Some(_))
                | Self::Deltas(Some(_))
        )
    }
}

/// Largest version a metadata file can have: versions are stored as signed 64-bit integers,
/// so a larger one names no file (404), rather than failing the lookup (500).
const MAX_VERSION: u64 = i64::MAX as u64;

/// `text` as a version, if it is one a stored file can have.
fn parse_version(text: &str) -> Option<u64> {
    text.parse::<u64>().ok().filter(|&v| v <= MAX_VERSION)
}

/// A positive decimal without leading zeros.
fn is_version(text: &str) -> bool {
    !text.is_empty() && !text.starts_with('0') && text.bytes().all(|b| b.is_ascii_digit())
}

/// One reading of a target path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum TargetFile {
    /// The target name itself: whatever file the target is now.
    Current(String),
    /// A hash-prefixed name: exactly the file with this SHA-256.
    Prefixed {
        /// The target name without the prefix.
        name: String,
        /// The SHA-256 from the prefix.
        sha256: [u8; 32],
    },
}

/// The target files `path` may name, most literal first: the plain target name; the TUF
/// spec's consistent-snapshot form with the hash on the file name (`dir/HASH.file`, what
/// python-tuf fetches); and the hash before the whole name (`HASH.dir/file`, what tough
/// fetches).
pub(super) fn target_files(path: &str) -> Vec<TargetFile> {
    let mut files = vec![TargetFile::Current(path.to_owned())];
    let (dir, file) = match path.rsplit_once('/') {
        Some((dir, file)) => (Some(dir), file),
        None => (None, path),
    };
    if let Some((sha256, rest)) = split_hash(file) {
        let name = match dir {
            Some(dir) => format!("{dir}/{rest}"),
            None => rest.to_owned(),
        };
        files.push(TargetFile::Prefixed { name, sha256 });
    }
    if dir.is_some()
        && let Some((sha256, rest)) = split_hash(path)
    {
        files.push(TargetFile::Prefixed {
            name: rest.to_owned(),
            sha256,
        });
    }
    files
}

/// `HASH.rest` → the 32-byte hash and `rest` (non-empty).
fn split_hash(text: &str) -> Option<([u8; 32], &str)> {
    let (hash, rest) = text.split_at_checked(64)?;
    let rest = rest.strip_prefix('.').filter(|r| !r.is_empty())?;
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(hash, &mut sha256).ok()?;
    Some((sha256, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_names() {
        use MetadataFile::*;
        assert_eq!(MetadataFile::parse("root.json"), Some(Root(None)));
        assert_eq!(MetadataFile::parse("3.root.json"), Some(Root(Some(3))));
        assert_eq!(MetadataFile::parse("timestamp.json"), Some(Timestamp));
        assert_eq!(
            MetadataFile::parse("12.snapshot.json"),
            Some(Snapshot(Some(12)))
        );
        assert_eq!(MetadataFile::parse("targets.json"), Some(Targets(None)));
        assert_eq!(
            MetadataFile::parse("7.targets.json"),
            Some(Targets(Some(7)))
        );
        assert_eq!(
            MetadataFile::parse("3.release.json"),
            Some(Release(Some(3)))
        );
        assert_eq!(MetadataFile::parse("deltas.json"), Some(Deltas(None)));
        assert!(MetadataFile::parse("2.deltas.json").unwrap().is_versioned());
        for bad in [
            "1.other-role.json",
            "1.timestamp.json",
            "0.root.json",
            "01.root.json",
            "-1.root.json",
            "x.root.json",
            "root",
            "1.mirrors.json",
            "99999999999999999999999.root.json",
            "9223372036854775808.root.json",
            "18446744073709551615.snapshot.json",
            "18446744073709551616.targets.json",
            "",
        ] {
            assert_eq!(MetadataFile::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            MetadataFile::parse("9223372036854775807.targets.json"),
            Some(Targets(Some(9_223_372_036_854_775_807)))
        );
        assert!(Root(Some(1)).is_versioned() && !Root(None).is_versioned());
        assert!(!Timestamp.is_versioned());
    }

    #[test]
    fn target_paths_in_all_three_forms() {
        let hash = "ab".repeat(32);
        let sha = [0xab; 32];
        assert_eq!(
            target_files("firmware/acme-1/1.2.0.img"),
            vec![TargetFile::Current("firmware/acme-1/1.2.0.img".into())]
        );
        let spec = format!("firmware/acme-1/{hash}.1.2.0.img");
        assert_eq!(
            target_files(&spec)[1],
            TargetFile::Prefixed {
                name: "firmware/acme-1/1.2.0.img".into(),
                sha256: sha
            }
        );
        let tough = format!("{hash}.firmware/acme-1/1.2.0.img");
        assert_eq!(
            target_files(&tough),
            vec![
                TargetFile::Current(tough.clone()),
                TargetFile::Prefixed {
                    name: "firmware/acme-1/1.2.0.img".into(),
                    sha256: sha
                }
            ]
        );
        let flat = format!("{hash}.file.bin");
        assert_eq!(target_files(&flat).len(), 2);
        for not_prefixed in [
            format!("dir/{}.x", &hash[..63]),
            format!("dir/{hash}."),
            format!("dir/{hash}x"),
            format!("dir/{}.x", "zz".repeat(32)),
        ] {
            assert_eq!(target_files(&not_prefixed).len(), 1, "{not_prefixed}");
        }
    }
}
