//! Keys kept in a hardware security module through PKCS#11 (`cryptoki`): the vendor's
//! signing keys can live in a token and sign there, so no file on any machine holds them.
//!
//! A key is named by a PKCS#11 URI ([`uri`]), e.g. `pkcs11:token=otter;object=firmware-2`,
//! wherever a command takes a key file; [`token`] opens the module, logs in and signs with
//! `CKM_EDDSA`. The PIN comes from `OTTER_PKCS11_PIN` or a prompt, never from a flag.

pub mod token;
pub mod uri;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

pub use token::{HsmKey, Token};
pub use uri::{KeyUri, TokenUri, UriError};

/// Why a key in a token could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    /// The URI is not usable.
    #[error(transparent)]
    Uri(#[from] UriError),
    /// Neither the URI nor `OTTER_PKCS11_MODULE` names the module.
    #[error(
        "no PKCS#11 module: set OTTER_PKCS11_MODULE (e.g. /usr/lib/softhsm/libsofthsm2.so) \
         or add ?module-path=... to the key URI"
    )]
    NoModule,
    /// The module could not be loaded or initialised.
    #[error("PKCS#11 module {module}: {why}")]
    Module {
        /// The module.
        module: PathBuf,
        /// What failed.
        why: String,
    },
    /// No token has that label.
    #[error("no token labelled {label:?} (tokens present: {seen:?})")]
    NoToken {
        /// The label asked for.
        label: String,
        /// The labels present.
        seen: Vec<String>,
    },
    /// More than one token carries the label.
    #[error(
        "{count} tokens are labelled {label:?}; relabel all but one (softhsm2-util \
         --init-token, or the HSM's tool) so it is clear which one signs"
    )]
    DuplicateToken {
        /// The label.
        label: String,
        /// How many tokens carry it.
        count: usize,
    },
    /// The token refused the PIN.
    #[error("token {0:?}: wrong PIN")]
    WrongPin(String),
    /// No PIN was given and none can be asked for.
    #[error("token {0:?} needs its user PIN: set OTTER_PKCS11_PIN or run from a terminal")]
    NoPin(String),
    /// The key is not in the token.
    #[error("token {0:?} has no key labelled {1:?}")]
    NoKey(String, String),
    /// `generate` with a label already taken.
    #[error("token {0:?} already has a key labelled {1:?}; refusing to make a second")]
    KeyExists(String, String),
    /// Anything else the token said.
    #[error("token {0:?}: {1}")]
    Token(String, String),
}

/// Opens the key `uri` names, asking for the PIN as [`pin`] does.
pub fn open_key(uri: &KeyUri) -> Result<HsmKey, HsmError> {
    log_in(uri)?.key(&uri.object)
}

/// Generates a key where `uri` says, asking for the PIN as [`pin`] does.
pub fn generate_key(uri: &KeyUri) -> Result<HsmKey, HsmError> {
    log_in(uri)?.generate(&uri.object)
}

/// Logs in to `uri`'s token; a typed PIN is remembered only once the token accepted it, so
/// a mistyped one is never tried again on its own (tokens lock after a few wrong PINs).
fn log_in(uri: &KeyUri) -> Result<Token, HsmError> {
    let module = token::module_path(uri.module.as_deref())?;
    let pin = pin(&uri.token)?;
    let token = Token::open(&module, &uri.token, &pin)?;
    remember_pin(&uri.token, pin);
    Ok(token)
}

/// What a key in a token allows, as an auditor asks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// Its public half.
    pub public_key: [u8; 32],
    /// `CKA_SENSITIVE` and not `CKA_EXTRACTABLE`.
    pub stays_inside: bool,
    /// `CKA_LOCAL`, `CKA_ALWAYS_SENSITIVE` and `CKA_NEVER_EXTRACTABLE`: made inside, never
    /// out (an imported key may have a copy elsewhere).
    pub born_inside: bool,
    /// The token refused to give the private key's value when asked.
    pub export_refused: bool,
}

/// Asks the token about the key `uri` names: its public half, its attributes, and whether
/// the token hands out its private value (it must not).
pub fn audit(uri: &KeyUri) -> Result<Audit, HsmError> {
    let module = token::module_path(uri.module.as_deref())?;
    let token = Token::open(&module, &uri.token, &pin(&uri.token)?)?;
    let stays_inside = token.stays_inside(&uri.object)?;
    let born_inside = token.born_inside(&uri.object)?;
    let export_refused = token.try_export(&uri.object).is_err();
    let public_key = crate::signer::Signer::public_key(&token.key(&uri.object)?);
    Ok(Audit {
        public_key,
        stays_inside,
        born_inside,
        export_refused,
    })
}

/// The user PIN of `token`: `OTTER_PKCS11_PIN`, else typed at a prompt (not echoed) once
/// per token and process.
pub fn pin(token: &str) -> Result<String, HsmError> {
    if let Ok(pin) = std::env::var("OTTER_PKCS11_PIN") {
        return Ok(pin);
    }
    if let Some(pin) = typed_pins().get(token) {
        return Ok(pin.to_string());
    }
    rpassword::prompt_password(format!("PIN of token {token:?}: "))
        .map_err(|_| HsmError::NoPin(token.to_owned()))
}

/// PINs typed at the prompt that their token accepted, by token label.
fn typed_pins() -> std::sync::MutexGuard<'static, HashMap<String, zeroize::Zeroizing<String>>> {
    static TYPED: OnceLock<Mutex<HashMap<String, zeroize::Zeroizing<String>>>> = OnceLock::new();
    (TYPED.get_or_init(Mutex::default).lock()).unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn remember_pin(token: &str, pin: String) {
    if std::env::var_os("OTTER_PKCS11_PIN").is_none() {
        typed_pins().insert(token.to_owned(), zeroize::Zeroizing::new(pin));
    }
}
