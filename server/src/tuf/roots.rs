//! Signed root versions: imported from the key directory (where `otter-keys` writes them)
//! into the database, so every replica serves the same `N.root.json` files.

use std::path::Path;

use otter_keys::tuf::{current_root, root_version_path};
use sqlx::AnyConnection;
use tough::schema::{Root, Signed};

use super::TufError;
use super::store;

/// Imports `dir/<N>.root.json` for N = 1 ..= the newest into the database, checking that
/// each is root version N, signed by its own keys and by the previous version's. A version
/// already stored is never overwritten; a different file for it is an error. Afterwards the
/// database must hold every version from 1 up.
pub(super) async fn import(conn: &mut AnyConnection, dir: &Path) -> Result<(), TufError> {
    let (newest, _) = current_root(dir)?;
    let mut previous: Option<Signed<Root>> = None;
    for version in 1..=newest {
        let path = root_version_path(dir, version);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                previous = None;
                continue;
            }
            Err(e) => {
                return Err(TufError::RootFile {
                    path,
                    why: e.to_string(),
                });
            }
        };
        let root = check(&path, &text, version, previous.as_ref())?;
        match store::root(&mut *conn, Some(version)).await? {
            Some((_, stored)) if stored != text => {
                return Err(TufError::RootConflict { version, path });
            }
            Some(_) => {}
            None => store::insert_root(&mut *conn, version, &text).await?,
        }
        previous = Some(root);
    }
    for (expected, version) in (1..).zip(store::root_versions(conn).await?) {
        if version != expected {
            return Err(TufError::RootMissing(expected));
        }
    }
    Ok(())
}

/// The newest stored root and its version.
pub(super) async fn newest(conn: &mut AnyConnection) -> Result<(u64, Signed<Root>), TufError> {
    let (version, body) = store::root(conn, None)
        .await?
        .ok_or(TufError::RootMissing(1))?;
    let root = serde_json::from_str(&body).map_err(|e| TufError::Stored {
        what: format!("{version}.root.json"),
        why: e.to_string(),
    })?;
    Ok((version, root))
}

/// Parses and verifies one root file.
fn check(
    path: &Path,
    text: &str,
    version: u64,
    previous: Option<&Signed<Root>>,
) -> Result<Signed<Root>, TufError> {
    let bad = |why: String| TufError::RootFile {
        path: path.to_owned(),
        why,
    };
    let root: Signed<Root> = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    if root.signed.version.get() != version {
        return Err(bad(format!("it says version {}", root.signed.version)));
    }
    root.signed
        .verify_role(&root)
        .map_err(|e| bad(format!("not signed by its own root keys: {e}")))?;
    if let Some(previous) = previous {
        previous.signed.verify_role(&root).map_err(|e| {
            bad(format!(
                "not signed by the root keys of version {}: {e}",
                version - 1
            ))
        })?;
    }
    Ok(root)
}
