//! Remembers the last image signed per board, so `sign-image` can default the security
//! counter to the previous one and warn when a version does not go up.
//!
//! Kept as `signed-images.json` beside the firmware key file.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use otter_boot::image::Version;
use serde::{Deserialize, Serialize};

/// The last signing for one board.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastSigned {
    /// Version signed.
    pub version: String,
    /// Its security counter.
    pub security_counter: u32,
}

/// The log: board → last signing.
#[derive(Debug, Default)]
pub struct SigningLog {
    /// `None`: remembers nothing (the caller gave the counter explicitly).
    path: Option<PathBuf>,
    entries: BTreeMap<String, LastSigned>,
}

impl SigningLog {
    /// The log that belongs to the key file at `key_path` (empty if none yet).
    pub fn for_key(key_path: &Path) -> Result<Self, String> {
        let dir = key_path.parent().unwrap_or(Path::new("."));
        Self::at(dir.join("signed-images.json"))
    }

    /// The log kept in the file `path` (empty if none yet).
    pub fn at(path: PathBuf) -> Result<Self, String> {
        let entries = match fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(Self {
            path: Some(path),
            entries,
        })
    }

    /// A log that knows nothing and records nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// The last signing for `hardware_id`.
    pub fn last(&self, hardware_id: &str) -> Option<(Version, u32)> {
        let e = self.entries.get(hardware_id)?;
        Some((e.version.parse().ok()?, e.security_counter))
    }

    /// Records a signing and saves the log.
    pub fn record(
        &mut self,
        hardware_id: &str,
        version: Version,
        counter: u32,
    ) -> Result<(), String> {
        self.entries.insert(
            hardware_id.to_owned(),
            LastSigned {
                version: version.to_string(),
                security_counter: counter,
            },
        );
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text = serde_json::to_string_pretty(&self.entries).map_err(|e| e.to_string())?;
        fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_signing_per_board() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("fw.key");
        let mut log = SigningLog::for_key(&key).unwrap();
        assert_eq!(log.last("a"), None);
        log.record("a", Version::new(1, 0, 0), 3).unwrap();
        log.record("b", Version::new(2, 0, 0), 1).unwrap();
        let log = SigningLog::for_key(&key).unwrap();
        assert_eq!(log.last("a"), Some((Version::new(1, 0, 0), 3)));
        assert_eq!(log.last("b"), Some((Version::new(2, 0, 0), 1)));

        let mut none = SigningLog::none();
        none.record("a", Version::new(9, 0, 0), 9).unwrap();
        assert_eq!(none.last("a"), Some((Version::new(9, 0, 0), 9)));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no file written"
        );
    }
}
