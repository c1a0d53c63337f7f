//! Signing one role with the server's online keys, through `tough`'s editor and our
//! [`Signer`] trait (so a hardware module can hold the keys later).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lc_rs::rand::SystemRandom;
use otter_keys::signer::Signer;
use otter_keys::tuf::{SignerKeySource, tuf_key_id};
use serde::Serialize;
use tough::editor::signed::SignedRole;
use tough::key_source::KeySource;
use tough::schema::{KeyHolder, Role, RoleType, Root, Targets};

use super::TufError;

/// Signs the top-level targets metadata.
///
/// This is the seam for offline targets signing: today the server holds the targets key
/// ([`OnlineTargetsSigner`]). When the vendor signs targets offline and delegates deltas to
/// an online role, an implementation of this trait that signs the delegated role (and serves
/// the vendor's top-level targets) replaces it, and the rest of the writer stays unchanged.
#[async_trait]
pub trait TargetsSigner: Send + Sync + fmt::Debug {
    /// Checks that `root` lets this signer sign targets (at start, for a clear error).
    fn check_root(&self, root: &Root, root_version: u64) -> Result<(), TufError>;

    /// Signs `targets` so that clients trusting `root` accept it.
    async fn sign(&self, targets: Targets, root: &Root) -> Result<SignedRole<Targets>, TufError>;
}

/// The targets key held online by the server.
#[derive(Clone, Debug)]
pub struct OnlineTargetsSigner(RoleKey);

impl OnlineTargetsSigner {
    /// Signs targets with `key`.
    pub fn new(key: Arc<dyn Signer>) -> Self {
        Self(RoleKey::new(RoleType::Targets, key))
    }
}

#[async_trait]
impl TargetsSigner for OnlineTargetsSigner {
    fn check_root(&self, root: &Root, root_version: u64) -> Result<(), TufError> {
        self.0.check_root(root, root_version)
    }

    async fn sign(&self, targets: Targets, root: &Root) -> Result<SignedRole<Targets>, TufError> {
        self.0.sign(targets, root).await
    }
}

/// One online key and the role it signs.
#[derive(Clone)]
pub(super) struct RoleKey {
    role: RoleType,
    key: Arc<dyn Signer>,
}

impl fmt::Debug for RoleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoleKey")
            .field("role", &self.role)
            .field("key", &SignerKeySource::new(Arc::clone(&self.key)))
            .finish()
    }
}

impl RoleKey {
    /// `key` signing `role`.
    pub(super) fn new(role: RoleType, key: Arc<dyn Signer>) -> Self {
        Self { role, key }
    }

    /// The role's name.
    pub(super) fn role_name(&self) -> &'static str {
        role_name(self.role)
    }

    /// Checks that `root` lists this key for the role with a threshold of one (the server
    /// holds one key per role).
    pub(super) fn check_root(&self, root: &Root, root_version: u64) -> Result<(), TufError> {
        let fail = |why: String| TufError::KeyNotInRoot {
            role: self.role_name(),
            root_version,
            why,
        };
        let id = tuf_key_id(self.key.as_ref()).map_err(|e| fail(e.to_string()))?;
        let keys = root
            .roles
            .get(&self.role)
            .ok_or_else(|| fail("the root has no such role".into()))?;
        if !keys.keyids.contains(&id) {
            return Err(fail(format!(
                "it lists key(s) {} but the server holds {}",
                keys.keyids
                    .iter()
                    .map(hex::encode)
                    .collect::<Vec<_>>()
                    .join(", "),
                hex::encode(&id)
            )));
        }
        if keys.threshold.get() > 1 {
            return Err(fail(format!(
                "its threshold is {} but the server holds one key",
                keys.threshold
            )));
        }
        Ok(())
    }

    /// Signs `role` for clients trusting `root`; the result's buffer is the file to serve.
    pub(super) async fn sign<T>(&self, role: T, root: &Root) -> Result<SignedRole<T>, TufError>
    where
        T: Role + Serialize + Send + Sync,
    {
        let keys: Vec<Box<dyn KeySource>> =
            vec![Box::new(SignerKeySource::new(Arc::clone(&self.key)))];
        let holder = KeyHolder::Root(root.clone());
        SignedRole::new(role, &holder, &keys, &SystemRandom::new())
            .await
            .map_err(|source| TufError::Sign {
                role: self.role_name(),
                source: Box::new(source),
            })
    }
}

/// The TUF name of a role.
fn role_name(role: RoleType) -> &'static str {
    match role {
        RoleType::Root => "root",
        RoleType::Targets => "targets",
        RoleType::Snapshot => "snapshot",
        RoleType::Timestamp => "timestamp",
        RoleType::DelegatedTargets => "delegated targets",
    }
}
