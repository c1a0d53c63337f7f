//! Where a key lives in a hardware security module, written as a PKCS#11 URI (RFC 7512):
//! `pkcs11:token=otter;object=firmware-2`. Only the two attributes Otter needs are read
//! (`token`, the token label; `object`, the key label); the module comes from
//! `module-path` in the query or from `OTTER_PKCS11_MODULE`, and the PIN only ever from
//! `OTTER_PKCS11_PIN` or a prompt, never from the URI or a flag.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A key in a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyUri {
    /// The token's label.
    pub token: String,
    /// The key's label (`CKA_LABEL`).
    pub object: String,
    /// The PKCS#11 module, when the URI names it (`?module-path=`).
    pub module: Option<PathBuf>,
}

/// Why a text is not a key URI Otter can use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UriError {
    /// It does not start with `pkcs11:`.
    #[error("not a PKCS#11 URI (expected pkcs11:token=LABEL;object=KEY)")]
    NotPkcs11,
    /// An attribute is named twice, or is empty.
    #[error("PKCS#11 URI: attribute {0:?} is empty or given twice")]
    Repeated(String),
    /// A required attribute is missing.
    #[error("PKCS#11 URI: {0:?} is required (pkcs11:token=LABEL;object=KEY)")]
    Missing(&'static str),
    /// A `%` escape that is not two hex digits, or text that is not UTF-8.
    #[error("PKCS#11 URI: bad percent-encoding in {0:?}")]
    Encoding(String),
    /// A PIN in the URI: it would end up in shell history and `ps`.
    #[error("PKCS#11 URI: no PIN in the URI (set OTTER_PKCS11_PIN or type it when asked)")]
    Pin,
}

impl KeyUri {
    /// Whether `text` is meant as a PKCS#11 URI rather than a file name.
    pub fn is_uri(text: &str) -> bool {
        strip_scheme(text).is_some()
    }
}

/// A token, where a key set makes its keys: `pkcs11:token=LABEL[?module-path=...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenUri {
    /// The token's label.
    pub token: String,
    /// The PKCS#11 module, when the URI names it.
    pub module: Option<PathBuf>,
}

impl TokenUri {
    /// The key labelled `object` in this token.
    pub fn key(&self, object: &str) -> KeyUri {
        KeyUri {
            token: self.token.clone(),
            object: object.to_owned(),
            module: self.module.clone(),
        }
    }
}

impl FromStr for TokenUri {
    type Err = UriError;

    /// Like a key URI without `object` (otter-keys names the keys it makes).
    fn from_str(text: &str) -> Result<Self, UriError> {
        let (token, object, module) = parse(text)?;
        if object.is_some() {
            return Err(UriError::Repeated("object".into()));
        }
        Ok(Self {
            token: token.ok_or(UriError::Missing("token"))?,
            module,
        })
    }
}

impl fmt::Display for TokenUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pkcs11:token={}", encode(&self.token))?;
        if let Some(module) = &self.module {
            write!(f, "?module-path={}", encode(&module.to_string_lossy()))?;
        }
        Ok(())
    }
}

type Parts = (Option<String>, Option<String>, Option<PathBuf>);

impl FromStr for KeyUri {
    type Err = UriError;

    fn from_str(text: &str) -> Result<Self, UriError> {
        let (token, object, module) = parse(text)?;
        Ok(Self {
            token: token.ok_or(UriError::Missing("token"))?,
            object: object.ok_or(UriError::Missing("object"))?,
            module,
        })
    }
}

/// The token, object and module of a PKCS#11 URI, each at most once.
/// `text` without its `pkcs11:` scheme, which RFC 3986 makes case-insensitive.
fn strip_scheme(text: &str) -> Option<&str> {
    let (scheme, rest) = text.split_at_checked("pkcs11:".len())?;
    scheme.eq_ignore_ascii_case("pkcs11:").then_some(rest)
}

fn parse(text: &str) -> Result<Parts, UriError> {
    let rest = strip_scheme(text).ok_or(UriError::NotPkcs11)?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (mut token, mut object, mut module) = (None, None, None);
    let attributes = path.split(';').map(|a| (a, false));
    let queries = query.split('&').map(|a| (a, true));
    for (attribute, in_query) in attributes.chain(queries).filter(|(a, _)| !a.is_empty()) {
        let (name, value) = attribute.split_once('=').unwrap_or((attribute, ""));
        // Before anything reads the value: an error must never quote a PIN.
        if matches!(name, "pin-value" | "pin-source") {
            return Err(UriError::Pin);
        }
        let value = decode(value)?;
        let slot = match (name, in_query) {
            ("token", false) => &mut token,
            ("object", false) => &mut object,
            ("module-path", true) => &mut module,
            // Other attributes (type, id, manufacturer, ...) narrow nothing Otter needs.
            _ => continue,
        };
        if value.is_empty() || slot.is_some() {
            return Err(UriError::Repeated(name.to_owned()));
        }
        *slot = Some(value);
    }
    Ok((token, object, module.map(PathBuf::from)))
}

impl fmt::Display for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pkcs11:token={};object={}",
            encode(&self.token),
            encode(&self.object)
        )?;
        if let Some(module) = &self.module {
            write!(f, "?module-path={}", encode(&module.to_string_lossy()))?;
        }
        Ok(())
    }
}

/// RFC 3986 percent-decoding.
fn decode(text: &str) -> Result<String, UriError> {
    let bad = || UriError::Encoding(text.to_owned());
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next().ok_or_else(bad)?, bytes.next().ok_or_else(bad)?];
            // Two hex digits exactly: `from_str_radix` alone would take `%+A` as 0x0A.
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(bad());
            }
            let hex = std::str::from_utf8(&hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Percent-encodes everything but RFC 3986's unreserved characters and `/`.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
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
    fn reads_token_object_and_module() {
        let uri: KeyUri = "pkcs11:token=otter%20vendor;object=firmware-2;type=private\
                           ?module-path=/usr/lib/softhsm/libsofthsm2.so"
            .parse()
            .unwrap();
        assert_eq!(uri.token, "otter vendor");
        assert_eq!(uri.object, "firmware-2");
        assert_eq!(
            uri.module.as_deref(),
            Some(std::path::Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(uri.to_string().parse::<KeyUri>().unwrap(), uri);
        assert!(KeyUri::is_uri("pkcs11:token=a;object=b"));
        assert!(!KeyUri::is_uri("keys/firmware-1.key"));
    }

    #[test]
    fn a_token_uri_names_no_object() {
        let t: TokenUri = "pkcs11:token=vendor?module-path=/m.so".parse().unwrap();
        assert_eq!(t.token, "vendor");
        assert_eq!(
            t.key("root-1").to_string(),
            "pkcs11:token=vendor;object=root-1?module-path=/m.so"
        );
        assert_eq!(t.to_string().parse::<TokenUri>().unwrap(), t);
        let e = "pkcs11:token=vendor;object=x"
            .parse::<TokenUri>()
            .unwrap_err();
        assert_eq!(e, UriError::Repeated("object".into()));
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        let e = |s: &str| s.parse::<KeyUri>().unwrap_err();
        assert_eq!(e("file:x"), UriError::NotPkcs11);
        assert_eq!(e("pkcs11:object=k"), UriError::Missing("token"));
        assert_eq!(e("pkcs11:token=t"), UriError::Missing("object"));
        assert_eq!(
            e("pkcs11:token=t;token=u;object=k"),
            UriError::Repeated("token".into())
        );
        assert_eq!(
            e("pkcs11:token=;object=k"),
            UriError::Repeated("token".into())
        );
        assert_eq!(
            e("pkcs11:token=t;object=k%2"),
            UriError::Encoding("k%2".into())
        );
        assert_eq!(
            e("pkcs11:token=t;object=%ff"),
            UriError::Encoding("%ff".into())
        );
        assert_eq!(e("pkcs11:token=t;object=k?pin-value=1234"), UriError::Pin);
        // A broken escape in a PIN is still refused as a PIN, never quoted.
        let pin = e("pkcs11:token=t;object=k?pin-value=12%4");
        assert_eq!(pin, UriError::Pin);
        assert!(!pin.to_string().contains("12"));
        assert_eq!(
            e("pkcs11:token=t;object=%+A"),
            UriError::Encoding("%+A".into())
        );
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        assert!(KeyUri::is_uri("PKCS11:token=t;object=k"));
        let uri: KeyUri = "Pkcs11:token=t;object=k".parse().unwrap();
        assert_eq!((uri.token.as_str(), uri.object.as_str()), ("t", "k"));
        assert!(!KeyUri::is_uri("pkcs1"));
        assert!(!KeyUri::is_uri("keys/firmware-1.key"));
    }
}
