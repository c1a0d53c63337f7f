//! A logged-in session on one token of a PKCS#11 module, and ed25519 keys that never leave
//! it: generated inside (`CKA_SENSITIVE`, not `CKA_EXTRACTABLE`), used through `CKM_EDDSA`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use ed25519_dalek::{Signature, VerifyingKey};

use super::HsmError;
use crate::signer::{KeyError, Signer};

/// `CKA_EC_PARAMS` of Ed25519: the printable string "edwards25519" (PKCS#11 3.0 §2.3.10).
const ED25519_PARAMS: &[u8] = b"\x13\x0cedwards25519";

/// A token, logged in as its user.
pub struct Token {
    session: Session,
    label: String,
}

impl Token {
    /// Loads `module`, finds the token labelled `label` and logs in with `pin`.
    pub fn open(module: &Path, label: &str, pin: &str) -> Result<Self, HsmError> {
        let module_error = |e: CkError| HsmError::Module {
            module: module.to_owned(),
            why: e.to_string(),
        };
        let pkcs11 = context(module).map_err(module_error)?;
        let mut seen = Vec::new();
        let mut found = Vec::new();
        for slot in pkcs11.get_slots_with_token().map_err(module_error)? {
            let info = pkcs11.get_token_info(slot).map_err(module_error)?;
            if info.label().trim_end() == label {
                found.push(slot);
            } else if !info.label().trim_end().is_empty() {
                // A free slot shows an uninitialised token with an empty label: not worth
                // naming.
                seen.push(info.label().trim_end().to_owned());
            }
        }
        // Two tokens of one label: signing with whichever came first could use the wrong
        // one (an attacker's token plugged in beside the vendor's, say).
        let slot = match found.as_slice() {
            [slot] => *slot,
            [] => {
                return Err(HsmError::NoToken {
                    label: label.to_owned(),
                    seen,
                });
            }
            several => {
                return Err(HsmError::DuplicateToken {
                    label: label.to_owned(),
                    count: several.len(),
                });
            }
        };
        let session = pkcs11.open_rw_session(slot).map_err(module_error)?;
        match session.login(UserType::User, Some(&AuthPin::new(pin.into()))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(
                RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange,
                _,
            )) => {
                return Err(HsmError::WrongPin(label.to_owned()));
            }
            Err(e) => return Err(HsmError::Token(label.to_owned(), e.to_string())),
        }
        Ok(Self {
            session,
            label: label.to_owned(),
        })
    }

    /// Generates an ed25519 key pair labelled `key` inside the token; the private half is
    /// sensitive and not extractable, so it can sign and nothing more.
    pub fn generate(self, key: &str) -> Result<HsmKey, HsmError> {
        if self.find(ObjectClass::PRIVATE_KEY, key)?.is_some() {
            return Err(HsmError::KeyExists(self.label.clone(), key.to_owned()));
        }
        let common = [
            Attribute::Token(true),
            Attribute::Label(key.as_bytes().to_vec()),
            Attribute::Id(key.as_bytes().to_vec()),
        ];
        let mut public = vec![
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(ED25519_PARAMS.to_vec()),
        ];
        public.extend_from_slice(&common);
        let mut private = vec![
            Attribute::Private(true),
            Attribute::Sign(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
        ];
        private.extend_from_slice(&common);
        (self.session)
            .generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public, &private)
            .map_err(|e| self.error(e))?;
        self.key(key)
    }

    /// The key labelled `key`.
    pub fn key(self, key: &str) -> Result<HsmKey, HsmError> {
        let missing = || HsmError::NoKey(self.label.clone(), key.to_owned());
        let private = self
            .find(ObjectClass::PRIVATE_KEY, key)?
            .ok_or_else(missing)?;
        let public = self
            .find(ObjectClass::PUBLIC_KEY, key)?
            .ok_or_else(missing)?;
        let point = (self
            .session
            .get_attributes(public, &[AttributeType::EcPoint]))
        .map_err(|e| self.error(e))?;
        let point = match point.as_slice() {
            [Attribute::EcPoint(bytes)] => bytes.clone(),
            _ => return Err(self.bad_key(key, "it has no CKA_EC_POINT")),
        };
        let public =
            ed25519_point(&point).ok_or_else(|| self.bad_key(key, "it is not an ed25519 key"))?;
        Ok(HsmKey {
            uri_label: format!("{}/{key}", self.label),
            session: Mutex::new(self.session),
            private,
            public,
        })
    }

    /// Whether the private key `key` is sensitive and not extractable now.
    pub fn stays_inside(&self, key: &str) -> Result<bool, HsmError> {
        let wanted = [AttributeType::Sensitive, AttributeType::Extractable];
        Ok(matches!(
            self.private_attributes(key, &wanted)?.as_slice(),
            [Attribute::Sensitive(true), Attribute::Extractable(false)]
        ))
    }

    /// Whether the private key `key` was generated inside the token (`CKA_LOCAL`) and has
    /// always been sensitive and never extractable: what `generate` makes. A key imported
    /// with the same flags set has been outside, so a copy may exist.
    pub fn born_inside(&self, key: &str) -> Result<bool, HsmError> {
        let wanted = [
            AttributeType::Local,
            AttributeType::AlwaysSensitive,
            AttributeType::NeverExtractable,
        ];
        Ok(matches!(
            self.private_attributes(key, &wanted)?.as_slice(),
            [
                Attribute::Local(true),
                Attribute::AlwaysSensitive(true),
                Attribute::NeverExtractable(true)
            ]
        ))
    }

    fn private_attributes(
        &self,
        key: &str,
        wanted: &[AttributeType],
    ) -> Result<Vec<Attribute>, HsmError> {
        let handle = (self.find(ObjectClass::PRIVATE_KEY, key)?)
            .ok_or_else(|| HsmError::NoKey(self.label.clone(), key.to_owned()))?;
        (self.session.get_attributes(handle, wanted)).map_err(|e| self.error(e))
    }

    /// The token's answer when asked for the private key's value: must be a refusal.
    pub fn try_export(&self, key: &str) -> Result<Vec<u8>, HsmError> {
        let handle = (self.find(ObjectClass::PRIVATE_KEY, key)?)
            .ok_or_else(|| HsmError::NoKey(self.label.clone(), key.to_owned()))?;
        let attributes = (self.session.get_attributes(handle, &[AttributeType::Value]))
            .map_err(|e| self.error(e))?;
        match attributes.as_slice() {
            [Attribute::Value(bytes)] => Ok(bytes.clone()),
            _ => Err(HsmError::Token(
                self.label.clone(),
                "the value was not given".into(),
            )),
        }
    }

    fn find(&self, class: ObjectClass, key: &str) -> Result<Option<ObjectHandle>, HsmError> {
        let template = [
            Attribute::Class(class),
            Attribute::Label(key.as_bytes().to_vec()),
        ];
        let found = self
            .session
            .find_objects(&template)
            .map_err(|e| self.error(e))?;
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            _ => Err(HsmError::Token(
                self.label.clone(),
                format!(
                    "{} objects are labelled {key:?}; labels must be unique",
                    found.len()
                ),
            )),
        }
    }

    fn error(&self, e: CkError) -> HsmError {
        HsmError::Token(self.label.clone(), e.to_string())
    }

    fn bad_key(&self, key: &str, why: &str) -> HsmError {
        HsmError::Token(self.label.clone(), format!("key {key:?}: {why}"))
    }
}

/// The process's one context of `module`, loaded and initialised on first use. Shared, so
/// that no key's context finalises the module under another key's session.
fn context(module: &Path) -> Result<Pkcs11, CkError> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut contexts = (CONTEXTS.get_or_init(Mutex::default).lock())
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(context) = contexts.get(module) {
        return Ok(context.clone());
    }
    let context = Pkcs11::new(module)?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(())
        | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, Function::Initialize)) => {}
        Err(e) => return Err(e),
    }
    contexts.insert(module.to_owned(), context.clone());
    Ok(context)
}

/// The 32 key bytes of a `CKA_EC_POINT`: raw, or wrapped in a DER OCTET STRING.
fn ed25519_point(point: &[u8]) -> Option<[u8; 32]> {
    // By length first: a raw key may itself begin with the bytes 04 20.
    match point.len() {
        32 => point.try_into().ok(),
        34 => point.strip_prefix(&[0x04, 0x20])?.try_into().ok(),
        _ => None,
    }
}

/// An ed25519 private key inside a token.
pub struct HsmKey {
    uri_label: String,
    session: Mutex<Session>,
    private: ObjectHandle,
    public: [u8; 32],
}

impl std::fmt::Debug for HsmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HsmKey({})", self.uri_label)
    }
}

impl Signer for HsmKey {
    fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// Signs inside the token and checks the answer against the public key, so a token
    /// that misbehaves never yields a signature that devices would refuse.
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], KeyError> {
        let failed = |why: String| KeyError::Sign(format!("{}: {why}", self.uri_label));
        let session = self
            .session
            .lock()
            .map_err(|_| failed("session lock poisoned".into()))?;
        let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        let signature =
            (session.sign(&mechanism, self.private, message)).map_err(|e| failed(e.to_string()))?;
        let signature: [u8; 64] = (signature.as_slice().try_into())
            .map_err(|_| failed(format!("a {}-byte signature", signature.len())))?;
        let public = VerifyingKey::from_bytes(&self.public).map_err(|e| failed(e.to_string()))?;
        (public.verify_strict(message, &Signature::from_bytes(&signature)))
            .map_err(|_| failed("the token's signature does not verify".into()))?;
        Ok(signature)
    }
}

/// Where to find the module: the URI's `module-path`, else `OTTER_PKCS11_MODULE`.
pub fn module_path(from_uri: Option<&Path>) -> Result<PathBuf, HsmError> {
    if let Some(path) = from_uri {
        return Ok(path.to_owned());
    }
    std::env::var_os("OTTER_PKCS11_MODULE")
        .map(PathBuf::from)
        .ok_or(HsmError::NoModule)
}

#[cfg(test)]
mod tests {
    use super::ed25519_point;

    #[test]
    fn reads_raw_and_der_wrapped_points() {
        let raw = [7u8; 32];
        assert_eq!(ed25519_point(&raw), Some(raw));
        let mut der = vec![0x04, 0x20];
        der.extend_from_slice(&raw);
        assert_eq!(ed25519_point(&der), Some(raw));
        assert_eq!(ed25519_point(&der[..20]), None);
        assert_eq!(ed25519_point(&[0x04, 0x41, 1, 2]), None);
        let mut starts_like_der = [9u8; 32];
        starts_like_der[..2].copy_from_slice(&[0x04, 0x20]);
        assert_eq!(ed25519_point(&starts_like_der), Some(starts_like_der));
    }
}
