//! The key directory a vendor creates once with `otter-keys init` and keeps offline.
//!
//! ```text
//! KEYDIR/                      mode 0700
//!   keyset.json                which key file plays which role, root threshold
//!   keys/<name>.key            ed25519 private keys, PKCS#8 DER, mode 0600
//!   root.json, <N>.root.json   the signed TUF root, every version kept (see `tuf`)
//! ```
//!
//! Roles: TUF root (N keys, threshold K), targets, snapshot, timestamp (online on the
//! server), the director (signs per-device assignments), one or more firmware keys (sign
//! images; several during a rotation) and one or more rollout keys (the fleet manager's:
//! sign each rollout's policy, which bounds what the server may assign; several during a
//! rotation).

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::hsm::{KeyUri, TokenUri};
use crate::signer::{FileKey, KeyError, Signer};

/// Why a key directory could not be created, opened or changed.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    /// A key file problem.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Reading or writing the directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `init` into a directory that already has content.
    #[error("{0}: exists and is not empty; refusing to overwrite a key directory")]
    Exists(PathBuf),
    /// `keyset.json` is missing or unreadable.
    #[error("{path}: not an otter key directory ({why})")]
    NotAKeySet {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Threshold outside 1..=number of keys.
    #[error("root threshold {threshold} must be between 1 and the number of root keys ({keys})")]
    BadThreshold {
        /// Requested threshold.
        threshold: usize,
        /// Number of root keys.
        keys: usize,
    },
    /// A token key is not the key its `.pub` names: a record or public key was changed.
    #[error(
        "key {name}: the token's key {found} is not the one keys/{name}.pub names ({expected}); \
         its .pkcs11 record or .pub was changed"
    )]
    Mismatch {
        /// The key's name.
        name: String,
        /// The public key in the token (hex).
        found: String,
        /// The public key in `.pub` (hex).
        expected: String,
    },
    /// The online and offline keys were asked into one token.
    #[error(
        "the online keys need a token of their own ({0:?} was given for both): the server logs \
         in to it and must reach no root, firmware or rollout key"
    )]
    SameToken(String),
    /// A key name that is not in the key set.
    #[error("no key named {0:?} in this key directory")]
    UnknownKey(String),
    /// Offline release signing is already on.
    #[error("offline release signing is already on in this key directory")]
    ReleaseSigningOn,
    /// Offline release signing is off.
    #[error(
        "this key directory has no release keys; create it with `otter-keys init \
         --offline-release` to sign releases offline"
    )]
    NoReleaseSigning,
}

/// An online or single-key role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// TUF targets.
    Targets,
    /// TUF snapshot.
    Snapshot,
    /// TUF timestamp.
    Timestamp,
    /// The director, which signs per-device assignments.
    Director,
}

/// A token's URI as recorded: without the module, so a record can not make anyone load a
/// library (the module comes from the environment of whoever signs).
fn without_module(token: &TokenUri) -> String {
    TokenUri {
        module: None,
        ..token.clone()
    }
    .to_string()
}

/// The roles whose keys a vendor rotates and may keep in a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// Signs images.
    Firmware,
    /// Signs rollout policies.
    Rollout,
}

impl KeyKind {
    fn prefix(self) -> &'static str {
        match self {
            Self::Firmware => "firmware",
            Self::Rollout => "rollout",
        }
    }
}

/// The root keys and how many must sign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootKeys {
    /// Signatures needed.
    pub threshold: usize,
    /// Names of the current root keys.
    pub keys: Vec<String>,
}

/// Offline release signing: the top-level targets key becomes offline and delegates images
/// to these release keys and deltas to one online key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseKeys {
    /// Release signatures needed.
    pub threshold: usize,
    /// Names of the release keys (offline).
    pub keys: Vec<String>,
    /// Name of the deltas key (online, held by the server).
    pub deltas: String,
}

/// Contents of `keyset.json`: names of key files per role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Layout version of this file.
    pub format: u32,
    /// TUF root keys.
    pub root: RootKeys,
    /// TUF targets key.
    pub targets: String,
    /// TUF snapshot key.
    pub snapshot: String,
    /// TUF timestamp key.
    pub timestamp: String,
    /// Director key.
    pub director: String,
    /// Firmware signing keys, oldest first; the last one signs new images.
    pub firmware: Vec<String>,
    /// Rollout policy keys, oldest first; the last one signs new policies. Empty in key
    /// directories made before rollout keys existed (`rotate-rollout-key` adds one).
    #[serde(default)]
    pub rollout: Vec<String>,
    /// The PKCS#11 token (`pkcs11:token=LABEL`) where this key set makes its keys; `None`:
    /// key files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<String>,
    /// The token for the online keys (targets, snapshot, timestamp, director), kept apart so
    /// that the server, which logs in to it, can reach no root, firmware or rollout key;
    /// `None`: they go where the others do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11_online: Option<String>,
    /// Offline release signing through TUF delegations; `None`: the online targets key
    /// lists images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseKeys>,
    /// Root keys no longer in use; their names are never given to a new key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
}

/// An opened key directory.
#[derive(Debug)]
pub struct KeySet {
    dir: PathBuf,
    manifest: Manifest,
    /// The PKCS#11 module named on the command line at creation (records never keep it).
    module: Option<PathBuf>,
}

const MANIFEST: &str = "keyset.json";

impl KeySet {
    /// Creates a key directory with fresh keys for every role: `root_keys` root keys of
    /// which `threshold` must sign. Refuses a directory that exists with content.
    pub fn create(dir: &Path, root_keys: usize, threshold: usize) -> Result<Self, KeySetError> {
        Self::create_in(dir, root_keys, threshold, None, None, None)
    }

    /// [`KeySet::create`], with keys made inside PKCS#11 tokens: the offline roles' (root,
    /// firmware, rollout) in `token` and the online roles' in `online` (or `token` when not
    /// given); the directory then holds no private key of those, only each key's public
    /// half and URI. The two must be different tokens.
    ///
    /// `release: Some((n, k))` turns on offline release signing: `n` release keys of which
    /// `k` must sign, an online deltas key, and the targets key offline.
    pub fn create_in(
        dir: &Path,
        root_keys: usize,
        threshold: usize,
        token: Option<&TokenUri>,
        online: Option<&TokenUri>,
        release: Option<(usize, usize)>,
    ) -> Result<Self, KeySetError> {
        if let Some((keys, threshold)) = release
            && (threshold == 0 || threshold > keys)
        {
            return Err(KeySetError::BadThreshold { threshold, keys });
        }
        if let (Some(offline), Some(online)) = (token, online)
            && offline.token == online.token
        {
            return Err(KeySetError::SameToken(online.token.clone()));
        }
        if threshold == 0 || threshold > root_keys {
            return Err(KeySetError::BadThreshold {
                threshold,
                keys: root_keys,
            });
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| KeySetError::Io { path, source }
        };
        if dir.exists() {
            let mut entries = fs::read_dir(dir).map_err(io(dir))?;
            if entries.next().is_some() {
                return Err(KeySetError::Exists(dir.to_owned()));
            }
        }
        let keys = dir.join("keys");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&keys)
            .map_err(io(&keys))?;
        let manifest = Manifest {
            format: 1,
            root: RootKeys {
                threshold,
                keys: (1..=root_keys).map(|i| format!("root-{i}")).collect(),
            },
            targets: "targets".into(),
            snapshot: "snapshot".into(),
            timestamp: "timestamp".into(),
            director: "director".into(),
            firmware: vec!["firmware-1".into()],
            rollout: vec!["rollout-1".into()],
            // The module is never recorded: a record can not make anyone load a library.
            pkcs11: token.map(without_module),
            pkcs11_online: online.map(without_module),
            release: release.map(|(keys, threshold)| ReleaseKeys {
                threshold,
                keys: (1..=keys).map(|i| format!("release-{i}")).collect(),
                deltas: "deltas".into(),
            }),
            retired: Vec::new(),
        };
        let set = Self {
            dir: dir.to_owned(),
            manifest,
            module: token.or(online).and_then(|t| t.module.clone()),
        };
        for name in set.all_key_names() {
            set.generate(&name)?;
        }
        set.save()?;
        Ok(set)
    }

    /// Opens an existing key directory.
    pub fn open(dir: &Path) -> Result<Self, KeySetError> {
        let path = dir.join(MANIFEST);
        let not = |why: String| KeySetError::NotAKeySet {
            path: dir.to_owned(),
            why,
        };
        let text = fs::read_to_string(&path).map_err(|e| not(format!("{MANIFEST}: {e}")))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| not(format!("{MANIFEST}: {e}")))?;
        if manifest.format != 1 {
            return Err(not(format!("unknown format {}", manifest.format)));
        }
        Ok(Self {
            dir: dir.to_owned(),
            manifest,
            module: None,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The role assignments.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The file of key `name`.
    pub fn key_path(&self, name: &str) -> PathBuf {
        self.dir.join("keys").join(format!("{name}.key"))
    }

    /// `keys/<name>.pub`: the public half (hex), which a server can hold without the key.
    pub fn public_key_path(&self, name: &str) -> PathBuf {
        self.dir.join("keys").join(format!("{name}.pub"))
    }

    fn write_public_key(&self, name: &str, key: &FileKey) -> Result<(), KeySetError> {
        let path = self.public_key_path(name);
        fs::write(&path, format!("{}\n", hex::encode(key.public_key())))
            .map_err(|source| KeySetError::Io { path, source })
    }

    /// The firmware public keys, oldest first: from `<name>.pub` when present (so the
    /// update server needs no firmware private key), else from the private key file.
    pub fn firmware_public_keys(&self) -> Result<Vec<[u8; 32]>, KeySetError> {
        self.public_keys(&self.manifest.firmware)
    }

    /// The rollout public keys, oldest first, found like the firmware ones.
    pub fn rollout_public_keys(&self) -> Result<Vec<[u8; 32]>, KeySetError> {
        self.public_keys(&self.manifest.rollout)
    }

    fn public_keys(&self, names: &[String]) -> Result<Vec<[u8; 32]>, KeySetError> {
        let mut keys = Vec::new();
        for name in names {
            let path = self.public_key_path(name);
            let key = match fs::read_to_string(&path) {
                Ok(text) => {
                    let mut raw = [0u8; 32];
                    hex::decode_to_slice(text.trim(), &mut raw).map_err(|e| {
                        KeySetError::NotAKeySet {
                            path: path.clone(),
                            why: format!("expected 64 hex digits of a public key ({e})"),
                        }
                    })?;
                    raw
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.load(name)?.public_key(),
                Err(source) => return Err(KeySetError::Io { path, source }),
            };
            keys.push(key);
        }
        Ok(keys)
    }

    /// Makes key `name`: in the key set's token (with `<name>.pkcs11` naming it and its
    /// `.pub` beside), or as a key file (with a `.pub` for firmware and rollout keys, which
    /// the update server needs without their private halves).
    fn generate(&self, name: &str) -> Result<(), KeySetError> {
        let m = &self.manifest;
        let online = self.online_key_names().iter().any(|n| n == name);
        let token = match (&m.pkcs11_online, online) {
            (Some(online), true) => Some(online),
            _ => m.pkcs11.as_ref(),
        };
        let Some(token) = token else {
            let key = FileKey::generate_at(&self.key_path(name))?;
            let release = m
                .release
                .iter()
                .flat_map(|r| r.keys.iter().chain([&r.deltas]));
            if (m.firmware.iter().chain(&m.rollout).chain(release)).any(|n| n == name) {
                self.write_public_key(name, &key)?;
            }
            return Ok(());
        };
        let token: TokenUri = token.parse().map_err(|e| KeySetError::NotAKeySet {
            path: self.dir.join(MANIFEST),
            why: format!("pkcs11: {e}"),
        })?;
        // A label of its own, so key sets sharing a token never collide.
        let mut tag = [0u8; 4];
        getrandom::fill(&mut tag).map_err(|e| KeyError::Random(e.to_string()))?;
        let mut uri = token.key(&format!("{name}-{}", hex::encode(tag)));
        uri.module.clone_from(&self.module);
        let key = crate::hsm::generate_key(&uri).map_err(KeyError::from)?;
        self.write_token_record(name, &uri, &key)
    }

    /// `keys/<name>.pkcs11` (the URI, without a module: that comes from the environment of
    /// whoever signs) and `keys/<name>.pub` of a key in a token.
    fn write_token_record(
        &self,
        name: &str,
        uri: &KeyUri,
        key: &dyn Signer,
    ) -> Result<(), KeySetError> {
        let path = self.token_record_path(name);
        let uri = KeyUri {
            module: None,
            ..uri.clone()
        };
        fs::write(&path, format!("{uri}\n")).map_err(|source| KeySetError::Io { path, source })?;
        let path = self.public_key_path(name);
        fs::write(&path, format!("{}\n", hex::encode(key.public_key())))
            .map_err(|source| KeySetError::Io { path, source })
    }

    /// `keys/<name>.pkcs11`: where a key kept in a token is.
    pub fn token_record_path(&self, name: &str) -> PathBuf {
        self.dir.join("keys").join(format!("{name}.pkcs11"))
    }

    /// Opens key `name` to sign with, wherever it lives: in a token when
    /// `keys/<name>.pkcs11` names one (and only if that key is the one `keys/<name>.pub`
    /// names, so an edited record can not swap one role's key for another's), else the key
    /// file.
    pub fn signer(&self, name: &str) -> Result<Arc<dyn Signer>, KeySetError> {
        let record = self.token_record_path(name);
        match fs::read_to_string(&record) {
            Ok(text) => {
                let uri: KeyUri = text.trim().parse().map_err(|e| KeySetError::NotAKeySet {
                    path: record.clone(),
                    why: format!("{e}"),
                })?;
                // A record names no module; the one given at creation serves this process.
                let uri = KeyUri {
                    module: uri.module.or_else(|| self.module.clone()),
                    ..uri
                };
                let key = crate::hsm::open_key(&uri).map_err(KeyError::from)?;
                let expected = self.public_keys(&[name.to_owned()])?;
                if expected.first() != Some(&key.public_key()) {
                    return Err(KeySetError::Mismatch {
                        name: name.to_owned(),
                        found: hex::encode(key.public_key()),
                        expected: expected.first().map(hex::encode).unwrap_or_default(),
                    });
                }
                Ok(Arc::new(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Arc::new(self.load(name)?)),
            Err(source) => Err(KeySetError::Io {
                path: record,
                source,
            }),
        }
    }

    /// The signer of a single-key role, wherever it lives (see [`KeySet::signer`]).
    pub fn role_signer(&self, role: Role) -> Result<Arc<dyn Signer>, KeySetError> {
        self.signer(self.role_name(role))
    }

    /// The public key of a single-key role, from its `.pub` when present (no token or key
    /// file is opened), else from its key.
    pub fn role_public_key(&self, role: Role) -> Result<[u8; 32], KeySetError> {
        let name = self.role_name(role).to_owned();
        let keys = self.public_keys(std::slice::from_ref(&name))?;
        keys.first().copied().ok_or(KeySetError::UnknownKey(name))
    }

    fn role_name(&self, role: Role) -> &str {
        let m = &self.manifest;
        match role {
            Role::Targets => &m.targets,
            Role::Snapshot => &m.snapshot,
            Role::Timestamp => &m.timestamp,
            Role::Director => &m.director,
        }
    }

    /// Loads key `name`.
    pub fn load(&self, name: &str) -> Result<FileKey, KeySetError> {
        if !self.all_key_names().iter().any(|n| n == name) && !self.key_path(name).exists() {
            return Err(KeySetError::UnknownKey(name.to_owned()));
        }
        Ok(FileKey::load(&self.key_path(name))?)
    }

    /// Loads the key of a single-key role.
    pub fn role_key(&self, role: Role) -> Result<FileKey, KeySetError> {
        self.load(self.role_name(role))
    }

    /// Loads the current root keys.
    pub fn root_keys(&self) -> Result<Vec<FileKey>, KeySetError> {
        self.manifest
            .root
            .keys
            .iter()
            .map(|n| self.load(n))
            .collect()
    }

    /// Loads the firmware keys, oldest first.
    pub fn firmware_keys(&self) -> Result<Vec<FileKey>, KeySetError> {
        self.manifest
            .firmware
            .iter()
            .map(|n| self.load(n))
            .collect()
    }

    /// The firmware key that signs new images (the newest).
    pub fn signing_firmware_key(&self) -> Result<FileKey, KeySetError> {
        let name = self
            .manifest
            .firmware
            .last()
            .ok_or_else(|| KeySetError::UnknownKey("firmware".into()))?;
        self.load(name)
    }

    /// Adds a firmware key (rotation): images signed by old and new keys both verify on
    /// devices provisioned with a trust bundle made after this.
    pub fn add_firmware_key(&mut self) -> Result<FileKey, KeySetError> {
        let (name, key) = self.new_public_key("firmware")?;
        self.manifest.firmware.push(name);
        self.save()?;
        Ok(key)
    }

    /// Loads the rollout keys, oldest first.
    pub fn rollout_keys(&self) -> Result<Vec<FileKey>, KeySetError> {
        self.manifest.rollout.iter().map(|n| self.load(n)).collect()
    }

    /// Adds a rollout key (rotation, or the first one in an older key directory): policies
    /// signed by old and new keys both verify on devices provisioned with a trust bundle
    /// made after this.
    pub fn add_rollout_key(&mut self) -> Result<FileKey, KeySetError> {
        let (name, key) = self.new_public_key("rollout")?;
        self.manifest.rollout.push(name);
        self.save()?;
        Ok(key)
    }

    /// Adds a key that lives in a PKCS#11 token (`key`, opened or generated at `uri`) as the
    /// newest firmware or rollout key: `keys/<name>.pub` holds its public half and
    /// `keys/<name>.pkcs11` the URI to sign with; no private key file exists. Returns its name.
    pub fn add_token_key(
        &mut self,
        kind: KeyKind,
        uri: &crate::hsm::KeyUri,
        key: &dyn Signer,
    ) -> Result<String, KeySetError> {
        let name = self.fresh_name(kind.prefix());
        self.write_token_record(&name, uri, key)?;
        match kind {
            KeyKind::Firmware => self.manifest.firmware.push(name.clone()),
            KeyKind::Rollout => self.manifest.rollout.push(name.clone()),
        }
        self.save()?;
        Ok(name)
    }

    /// A fresh key `prefix-N` with its `.pub` file beside it.
    fn new_public_key(&self, prefix: &str) -> Result<(String, FileKey), KeySetError> {
        let name = self.fresh_name(prefix);
        let key = FileKey::generate_at(&self.key_path(&name))?;
        self.write_public_key(&name, &key)?;
        Ok((name, key))
    }

    /// Replaces the current root keys and threshold (used by root rotation once the new
    /// root is signed). Creates `new_keys` fresh root keys; returns their names.
    pub fn set_root_keys(
        &mut self,
        keep: &[String],
        new_keys: usize,
        threshold: usize,
    ) -> Result<Vec<String>, KeySetError> {
        for k in keep {
            if !self.manifest.root.keys.contains(k) {
                return Err(KeySetError::UnknownKey(k.clone()));
            }
        }
        let total = keep.len() + new_keys;
        if threshold == 0 || threshold > total {
            return Err(KeySetError::BadThreshold {
                threshold,
                keys: total,
            });
        }
        let mut names = Vec::new();
        for _ in 0..new_keys {
            let name = self.fresh_name("root");
            self.generate(&name)?;
            names.push(name);
        }
        let mut keys = keep.to_vec();
        keys.extend(names.iter().cloned());
        let dropped: Vec<String> = (self.manifest.root.keys.iter())
            .filter(|k| !keys.contains(k))
            .cloned()
            .collect();
        self.manifest.retired.extend(dropped);
        self.manifest.root = RootKeys { threshold, keys };
        self.save()?;
        Ok(names)
    }

    /// Writes `keyset.json` (via a temporary file, so a crash leaves the old one).
    pub fn save(&self) -> Result<(), KeySetError> {
        let path = self.dir.join(MANIFEST);
        let tmp = self.dir.join(format!("{MANIFEST}.tmp"));
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| KeySetError::Io { path, source }
        };
        let mut text =
            serde_json::to_string_pretty(&self.manifest).map_err(|e| KeySetError::NotAKeySet {
                path: self.dir.clone(),
                why: e.to_string(),
            })?;
        text.push('\n');
        fs::write(&tmp, text).map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))
    }

    fn all_key_names(&self) -> Vec<String> {
        let m = &self.manifest;
        let mut names = m.root.keys.clone();
        names.extend([&m.targets, &m.snapshot, &m.timestamp, &m.director].map(String::clone));
        names.extend(m.firmware.iter().cloned());
        names.extend(m.rollout.iter().cloned());
        if let Some(release) = &m.release {
            names.extend(release.keys.iter().cloned());
            names.push(release.deltas.clone());
        }
        names
    }

    /// The keys the server holds: snapshot, timestamp, director, and the targets key, or,
    /// with offline release signing, the deltas key in its place.
    pub fn online_key_names(&self) -> Vec<String> {
        let m = &self.manifest;
        let mut names = vec![m.snapshot.clone(), m.timestamp.clone(), m.director.clone()];
        match &m.release {
            Some(release) => names.push(release.deltas.clone()),
            None => names.push(m.targets.clone()),
        }
        names
    }

    /// Turns on offline release signing in an existing key set: `keys` fresh release keys
    /// (`threshold` of them must sign) and a fresh deltas key. The targets key must then be
    /// replaced by an offline one with a root rotation
    /// ([`crate::tuf::enable_offline_release`] does both).
    pub fn add_release_keys(&mut self, keys: usize, threshold: usize) -> Result<(), KeySetError> {
        if threshold == 0 || threshold > keys {
            return Err(KeySetError::BadThreshold { threshold, keys });
        }
        if self.manifest.release.is_some() {
            return Err(KeySetError::ReleaseSigningOn);
        }
        let deltas = self.fresh_name("deltas");
        self.manifest.release = Some(ReleaseKeys {
            threshold,
            keys: Vec::new(),
            deltas: deltas.clone(),
        });
        for _ in 0..keys {
            // Fresh among the names so far, the ones just made included.
            let name = self.fresh_name("release");
            if let Some(release) = self.manifest.release.as_mut() {
                release.keys.push(name.clone());
            }
            self.generate(&name)?;
        }
        self.generate(&deltas)?;
        self.save()
    }

    /// Makes a fresh targets key (`targets-N`) and names it the targets key; the old one is
    /// retired. Only a root rotation that names the new key makes it valid.
    pub fn replace_targets_key(&mut self) -> Result<String, KeySetError> {
        let name = self.fresh_name("targets");
        self.generate(&name)?;
        let old = std::mem::replace(&mut self.manifest.targets, name.clone());
        self.manifest.retired.push(old);
        self.save()?;
        Ok(name)
    }

    /// The release keys' names and threshold, if offline release signing is on.
    pub fn release_keys(&self) -> Option<&ReleaseKeys> {
        self.manifest.release.as_ref()
    }

    /// Names of every key file in `keys/`, sorted (current and retired keys alike).
    pub fn key_file_names(&self) -> Result<Vec<String>, KeySetError> {
        let dir = self.dir.join("keys");
        let entries = fs::read_dir(&dir).map_err(|source| KeySetError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".key").map(str::to_owned)
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// `prefix-N`, N one past every number ever used (in the manifest, among retired names
    /// and key files), so a name never comes to mean a different key.
    fn fresh_name(&self, prefix: &str) -> String {
        let number = |name: &str| {
            name.strip_prefix(prefix)?
                .strip_prefix('-')?
                .parse::<u64>()
                .ok()
        };
        let mut used: Vec<String> = self.all_key_names();
        used.extend(self.manifest.retired.iter().cloned());
        used.extend(self.key_file_names().unwrap_or_default());
        let next = used.iter().filter_map(|n| number(n)).max().unwrap_or(0) + 1;
        format!("{prefix}-{next}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_every_role_key_with_0600_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let kd = dir.path().join("k");
        let set = KeySet::create(&kd, 3, 2).unwrap();
        assert_eq!(set.manifest().root.keys, ["root-1", "root-2", "root-3"]);
        assert_eq!(
            fs::metadata(&kd).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for entry in fs::read_dir(kd.join("keys")).unwrap() {
            let entry = entry.unwrap();
            if entry.path().extension().is_some_and(|e| e == "key") {
                let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{:?}", entry.path());
            }
        }
        assert!(set.public_key_path("firmware-1").exists());
        assert_eq!(set.manifest().rollout, ["rollout-1"]);
        assert!(set.public_key_path("rollout-1").exists());
        assert!(set.key_path("rollout-1").exists());
        let reopened = KeySet::open(&kd).unwrap();
        assert_eq!(reopened.manifest(), set.manifest());
        assert_eq!(reopened.root_keys().unwrap().len(), 3);
        let t1 = set.role_key(Role::Targets).unwrap().public_key();
        assert_eq!(reopened.role_key(Role::Targets).unwrap().public_key(), t1);
        assert_ne!(reopened.role_key(Role::Director).unwrap().public_key(), t1);
    }

    #[test]
    fn refuses_a_non_empty_directory_and_bad_thresholds() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x"), b"").unwrap();
        assert!(matches!(
            KeySet::create(dir.path(), 1, 1),
            Err(KeySetError::Exists(_))
        ));
        let kd = dir.path().join("k");
        for (n, k) in [(1, 0), (1, 2), (3, 4)] {
            assert!(matches!(
                KeySet::create(&kd, n, k),
                Err(KeySetError::BadThreshold { .. })
            ));
        }
        assert!(!kd.exists(), "nothing written on refusal");
    }

    #[test]
    fn adding_a_firmware_key_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = KeySet::create(&dir.path().join("k"), 1, 1).unwrap();
        let old = set.signing_firmware_key().unwrap().key_id();
        let new = set.add_firmware_key().unwrap().key_id();
        assert_ne!(old, new);
        let reopened = KeySet::open(set.dir()).unwrap();
        let ids: Vec<_> = reopened
            .firmware_keys()
            .unwrap()
            .iter()
            .map(Signer::key_id)
            .collect();
        assert_eq!(ids, [old, new]);
        assert_eq!(reopened.signing_firmware_key().unwrap().key_id(), new);
    }

    #[test]
    fn adding_a_rollout_key_keeps_the_old_one_and_needs_no_private_key_to_list() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = KeySet::create(&dir.path().join("k"), 1, 1).unwrap();
        let old = set.rollout_keys().unwrap()[0].public_key();
        let new = set.add_rollout_key().unwrap().public_key();
        assert_ne!(old, new);
        let reopened = KeySet::open(set.dir()).unwrap();
        assert_eq!(reopened.manifest().rollout, ["rollout-1", "rollout-2"]);
        for name in ["rollout-1", "rollout-2"] {
            fs::remove_file(reopened.key_path(name)).unwrap();
        }
        assert_eq!(reopened.rollout_public_keys().unwrap(), [old, new]);
    }

    #[test]
    fn a_key_directory_from_before_rollout_keys_opens_and_gets_one() {
        let dir = tempfile::tempdir().unwrap();
        let set = KeySet::create(&dir.path().join("k"), 1, 1).unwrap();
        // keyset.json as written before the rollout role existed.
        let path = set.dir().join(MANIFEST);
        let mut json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        json.as_object_mut().unwrap().remove("rollout");
        fs::write(&path, json.to_string()).unwrap();
        fs::remove_file(set.key_path("rollout-1")).unwrap();
        fs::remove_file(set.public_key_path("rollout-1")).unwrap();

        let mut old = KeySet::open(set.dir()).unwrap();
        assert!(old.manifest().rollout.is_empty());
        assert!(old.rollout_public_keys().unwrap().is_empty());
        old.add_rollout_key().unwrap();
        assert_eq!(old.manifest().rollout, ["rollout-1"]);
    }

    #[test]
    fn firmware_public_keys_need_no_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = KeySet::create(&dir.path().join("k"), 1, 1).unwrap();
        set.add_firmware_key().unwrap();
        let expected: Vec<[u8; 32]> = set
            .firmware_keys()
            .unwrap()
            .iter()
            .map(Signer::public_key)
            .collect();
        // What a server gets: the public halves only.
        for name in set.manifest().firmware.clone() {
            std::fs::remove_file(set.key_path(&name)).unwrap();
        }
        assert_eq!(set.firmware_public_keys().unwrap(), expected);
        std::fs::write(set.public_key_path("firmware-1"), "zz").unwrap();
        assert!(matches!(
            set.firmware_public_keys(),
            Err(KeySetError::NotAKeySet { .. })
        ));
    }

    #[test]
    fn replacing_root_keys_keeps_retired_files_and_fresh_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = KeySet::create(&dir.path().join("k"), 2, 1).unwrap();
        let new = set.set_root_keys(&["root-2".into()], 1, 2).unwrap();
        assert_eq!(new, ["root-3"]);
        assert_eq!(set.manifest().root.keys, ["root-2", "root-3"]);
        assert!(set.key_path("root-1").exists(), "retired key kept");
        assert!(set.load("root-1").is_ok(), "retired key still loadable");
        assert!(matches!(
            set.set_root_keys(&["root-9".into()], 0, 1),
            Err(KeySetError::UnknownKey(_))
        ));
        assert_eq!(set.manifest().retired, ["root-1"]);
    }

    #[test]
    fn a_lost_key_file_never_gives_its_name_to_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = KeySet::create(&dir.path().join("k"), 2, 1).unwrap();
        fs::remove_file(set.key_path("root-1")).unwrap();
        let new = set.set_root_keys(&["root-2".into()], 1, 1).unwrap();
        assert_eq!(new, ["root-3"], "not root-1 again");
        fs::remove_file(set.key_path("root-3")).unwrap();
        let new = set.set_root_keys(&["root-2".into()], 1, 1).unwrap();
        assert_eq!(new, ["root-4"]);
    }

    #[test]
    fn opening_something_else_says_so() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            KeySet::open(dir.path()),
            Err(KeySetError::NotAKeySet { .. })
        ));
        fs::write(dir.path().join(MANIFEST), b"{").unwrap();
        assert!(matches!(
            KeySet::open(dir.path()),
            Err(KeySetError::NotAKeySet { .. })
        ));
    }
}
