//! Signing one role with the server's online keys, through `tough`'s editor and our
//! [`Signer`] trait (so a hardware module can hold the keys): [`Lister`] for the role that
//! lists targets (top-level targets, or the delegated deltas role), [`RoleKey`] for the rest.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use otter_keys::signer::Signer;
use otter_keys::tuf::delegation::{DELTAS_ROLE, check_delegated, sign_delegated};
use otter_keys::tuf::{SignerKeySource, tuf_key_id};
use serde::Serialize;
use tough::editor::signed::SignedRole;
use tough::key_source::KeySource;
use tough::schema::{Delegations, KeyHolder, Role, RoleType, Root, Signed, Targets};

use super::TufError;
use super::store::RoleName;

/// Who signs the metadata that lists targets, with which online key.
#[derive(Clone, Debug)]
pub(super) enum Lister {
    /// The server's targets key signs top-level targets listing every image and delta.
    Online(RoleKey),
    /// The vendor's top-level targets (imported from the key directory) delegates images
    /// to the offline release role and deltas to the role this key signs: the server lists
    /// deltas only.
    Delegated(DeltasKey),
}

/// The online key of the delegated `deltas` role.
#[derive(Clone)]
pub(super) struct DeltasKey(pub(super) Arc<dyn Signer>);

impl fmt::Debug for DeltasKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DeltasKey")
            .field(&SignerKeySource::new(Arc::clone(&self.0)))
            .finish()
    }
}

/// A signed metadata file as stored and served, with what the role above says of it.
#[derive(Clone, Debug)]
pub(super) struct SignedFile {
    /// The file.
    pub(super) buffer: Vec<u8>,
    /// Its SHA-256.
    pub(super) sha256: Vec<u8>,
    /// Its version.
    pub(super) version: NonZeroU64,
}

impl SignedFile {
    pub(super) fn of<T: Role + Serialize>(signed: &SignedRole<T>) -> Self {
        Self {
            buffer: signed.buffer().clone(),
            sha256: signed.sha256().to_vec(),
            version: signed.signed().signed.version(),
        }
    }
}

impl Lister {
    /// The role this lister signs.
    pub(super) fn role(&self) -> RoleName {
        match self {
            Self::Online(_) => RoleName::Targets,
            Self::Delegated(_) => RoleName::Deltas,
        }
    }

    /// Checks that `root` (and, when delegated, the vendor's top-level targets `top`) let
    /// this key sign its role (at start, for a clear error).
    pub(super) fn check(
        &self,
        root: &Root,
        root_version: u64,
        top: Option<&Targets>,
    ) -> Result<(), TufError> {
        match self {
            Self::Online(key) => key.check_root(root, root_version),
            Self::Delegated(DeltasKey(key)) => {
                let fail = |why: String| TufError::NotDelegated(why);
                let role = top
                    .and_then(|t| t.delegations.as_ref())
                    .and_then(|d| d.roles.iter().find(|r| r.name == DELTAS_ROLE))
                    .ok_or_else(|| {
                        fail(format!(
                            "the vendor's top-level targets delegates no {DELTAS_ROLE} role"
                        ))
                    })?;
                let id = tuf_key_id(key.as_ref()).map_err(|e| fail(e.to_string()))?;
                if !role.keyids.contains(&id) || role.threshold.get() > 1 {
                    return Err(fail(format!(
                        "its {DELTAS_ROLE} role wants key(s) {} (threshold {}), the server holds {}",
                        role.keyids
                            .iter()
                            .map(hex::encode)
                            .collect::<Vec<_>>()
                            .join(", "),
                        role.threshold,
                        hex::encode(&id)
                    )));
                }
                Ok(())
            }
        }
    }

    /// Signs `listing` for clients trusting `root` (and `top`, when delegated).
    pub(super) async fn sign(
        &self,
        listing: Targets,
        root: &Root,
        top: Option<&Targets>,
    ) -> Result<SignedFile, TufError> {
        match self {
            Self::Online(key) => key.sign(listing, root).await.map(|s| SignedFile::of(&s)),
            Self::Delegated(DeltasKey(key)) => {
                let delegations = delegations(top)?;
                let signed =
                    sign_delegated(listing, DELTAS_ROLE, delegations, std::slice::from_ref(key))
                        .await
                        .map_err(|e| TufError::Delegated {
                            role: DELTAS_ROLE,
                            why: e.to_string(),
                        })?;
                Ok(SignedFile::of(&signed))
            }
        }
    }

    /// Whether `stored` (this lister's newest file) still verifies.
    pub(super) fn verifies(
        &self,
        root: &Root,
        top: Option<&Targets>,
        stored: &Signed<Targets>,
    ) -> bool {
        match self {
            Self::Online(_) => root.verify_role(stored).is_ok(),
            Self::Delegated(_) => {
                delegations(top).is_ok_and(|d| check_delegated(d, DELTAS_ROLE, stored).is_ok())
            }
        }
    }
}

/// The delegations of the vendor's top-level targets.
pub(super) fn delegations(top: Option<&Targets>) -> Result<&Delegations, TufError> {
    top.and_then(|t| t.delegations.as_ref())
        .ok_or_else(|| TufError::NotDelegated("no vendor top-level targets is stored".into()))
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
