//! Signing firmware into otter-boot's image format, and inspecting signed images.
//!
//! Uses otter-boot's own encoder and verifier: there is exactly one definition of a valid
//! image, shared with the bootloader and the agent.

use std::fmt::Write as _;

use otter_boot::image::{
    DIGEST_LEN, HardwareId, Header, ImageError, Version, encode_image, signed_message,
};
use otter_boot::trust::{Anchors, TrustedKey};
use otter_boot::verify::{VerifyError, verify_bytes};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::signer::{KeyError, Signer};

/// Why an image could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignImageError {
    /// A header field is out of range (hardware id syntax, payload over 4 GiB).
    #[error("{0}")]
    Image(#[from] ImageError),
    /// The signer failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The signed image did not verify with the signer's own public key (a broken signer).
    #[error("the signed image does not verify with the signing key: {0}")]
    SelfCheck(VerifyError),
}

/// What goes into a header besides the payload and the key.
#[derive(Clone, Copy, Debug)]
pub struct ImageSpec {
    /// Board the image is for.
    pub hardware_id: HardwareId,
    /// Release version.
    pub version: Version,
    /// Anti-rollback counter.
    pub security_counter: u32,
}

/// Wraps `payload` into a signed image.
pub fn sign_image(
    payload: &[u8],
    spec: &ImageSpec,
    signer: &dyn Signer,
) -> Result<Vec<u8>, SignImageError> {
    let payload_len = u32::try_from(payload.len()).map_err(|_| ImageError::LengthOverflow)?;
    let payload_sha256: [u8; DIGEST_LEN] = Sha256::digest(payload).into();
    let header = Header {
        flags: 0,
        hardware_id: spec.hardware_id,
        version: spec.version,
        security_counter: spec.security_counter,
        payload_len,
        key_id: signer.key_id(),
        payload_sha256,
    };
    let signature = signer.sign(&signed_message(&header.encode(), &payload_sha256))?;
    let mut out = vec![0u8; header.image_len()? as usize];
    encode_image(&header, payload, &signature, &mut out)?;
    let own = [TrustedKey::new(signer.public_key())];
    let anchors = Anchors {
        hardware_id: spec.hardware_id,
        keys: &own,
    };
    verify_bytes(&out, &anchors, 0).map_err(SignImageError::SelfCheck)?;
    Ok(out)
}

/// What `inspect` reports about an image.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// Total bytes.
    pub image_len: u64,
    /// SHA-256 of the whole file (what TUF lists), hex.
    pub image_sha256: String,
    /// The decoded header, if it decodes.
    pub header: Option<HeaderView>,
    /// Why the header does not decode.
    pub header_error: Option<String>,
    /// Verification against a trust bundle: `None` when no bundle was given.
    pub verification: Option<Verification>,
}

/// The header, in display form.
#[derive(Debug, Serialize)]
pub struct HeaderView {
    /// Board.
    pub hardware_id: String,
    /// Version.
    pub version: String,
    /// Anti-rollback counter.
    pub security_counter: u32,
    /// Payload bytes.
    pub payload_len: u32,
    /// Signing key id, hex.
    pub key_id: String,
    /// Payload SHA-256 from the header, hex.
    pub payload_sha256: String,
    /// Flag bits.
    pub flags: u32,
}

/// The outcome of verifying against a trust bundle.
#[derive(Debug, Serialize)]
pub struct Verification {
    /// Whether every check passed.
    pub ok: bool,
    /// What failed, in words.
    pub error: Option<String>,
}

/// Decodes `image` and, given anchors, verifies it (hash and signature; no security floor).
pub fn inspect(image: &[u8], anchors: Option<&Anchors<'_>>) -> Inspection {
    let (header, header_error) = match Header::decode(image) {
        Ok(h) => (Some(view(&h)), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let verification = anchors.map(|a| match verify_bytes(image, a, 0) {
        Ok(_) => Verification {
            ok: true,
            error: None,
        },
        Err(e) => Verification {
            ok: false,
            error: Some(e.to_string()),
        },
    });
    Inspection {
        image_len: image.len() as u64,
        image_sha256: hex::encode(Sha256::digest(image)),
        header,
        header_error,
        verification,
    }
}

fn view(h: &Header) -> HeaderView {
    HeaderView {
        hardware_id: h.hardware_id.to_string(),
        version: h.version.to_string(),
        security_counter: h.security_counter,
        payload_len: h.payload_len,
        key_id: h.key_id.to_string(),
        payload_sha256: hex::encode(h.payload_sha256),
        flags: h.flags,
    }
}

impl Inspection {
    /// A two-column table for people.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut row = |k: &str, v: &dyn std::fmt::Display| {
            let _ = writeln!(out, "{k:<18} {v}");
        };
        row("image length", &self.image_len);
        row("image sha256", &self.image_sha256);
        match (&self.header, &self.header_error) {
            (Some(h), _) => {
                row("hardware id", &h.hardware_id);
                row("version", &h.version);
                row("security counter", &h.security_counter);
                row("payload length", &h.payload_len);
                row("key id", &h.key_id);
                row("payload sha256", &h.payload_sha256);
                row("flags", &format_args!("{:#010x}", h.flags));
            }
            (None, Some(e)) => row("header", &format_args!("INVALID: {e}")),
            (None, None) => {}
        }
        match &self.verification {
            Some(Verification { ok: true, .. }) => row("verification", &"OK (hash and signature)"),
            Some(Verification { error, .. }) => row(
                "verification",
                &format_args!("FAILED: {}", error.as_deref().unwrap_or("unknown")),
            ),
            None => row("verification", &"not checked (pass --trust DIR)"),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::FileKey;

    fn key() -> (tempfile::TempDir, FileKey) {
        let dir = tempfile::tempdir().unwrap();
        let k = FileKey::generate_at(&dir.path().join("fw.key")).unwrap();
        (dir, k)
    }

    fn spec() -> ImageSpec {
        ImageSpec {
            hardware_id: HardwareId::new("board-1").unwrap(),
            version: Version::new(1, 2, 3),
            security_counter: 4,
        }
    }

    #[test]
    fn signed_images_verify_with_otter_boot() {
        let (_d, k) = key();
        let img = sign_image(b"firmware bytes", &spec(), &k).unwrap();
        let keys = [TrustedKey::new(k.public_key())];
        let anchors = Anchors {
            hardware_id: spec().hardware_id,
            keys: &keys,
        };
        let h = verify_bytes(&img, &anchors, 4).unwrap();
        assert_eq!((h.version, h.security_counter), (Version::new(1, 2, 3), 4));
        assert_eq!(h.key_id, k.key_id());
    }

    #[test]
    fn inspect_reports_exactly_what_failed() {
        let (_d, k) = key();
        let img = sign_image(&[7u8; 1000], &spec(), &k).unwrap();
        let keys = [TrustedKey::new(k.public_key())];
        let anchors = Anchors {
            hardware_id: spec().hardware_id,
            keys: &keys,
        };
        let ok = inspect(&img, Some(&anchors));
        assert!(ok.verification.as_ref().unwrap().ok);
        assert!(ok.table().contains("OK (hash and signature)"));
        let cases = [
            (1usize, "bad magic"),
            (10, "unknown header flags"),
            (600, "payload SHA-256 does not match"),
            (img.len() - 1, "signature does not verify"),
        ];
        for (at, expect) in cases {
            let mut bad = img.clone();
            bad[at] ^= 1;
            let r = inspect(&bad, Some(&anchors));
            let err = r.verification.unwrap().error.unwrap();
            assert!(err.contains(expect), "byte {at}: {err}");
        }
        let mut hdr = img.clone();
        hdr[56] ^= 1; // security counter, covered by the signature
        let err = inspect(&hdr, Some(&anchors))
            .verification
            .unwrap()
            .error
            .unwrap();
        assert!(err.contains("signature"), "{err}");
    }

    #[test]
    fn inspect_without_trust_shows_the_header_only() {
        let (_d, k) = key();
        let img = sign_image(b"x", &spec(), &k).unwrap();
        let r = inspect(&img, None);
        assert!(r.verification.is_none());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["header"]["version"], "1.2.3");
        assert_eq!(json["header"]["hardware_id"], "board-1");
        assert!(r.table().contains("not checked"));
        let garbage = inspect(b"not an image", None);
        assert!(garbage.header_error.unwrap().contains("truncated"));
    }
}
