//! Checking an uploaded image before it is stored: the header must be well-formed, the file
//! exactly as long as the header says, and the whole image must verify against the vendor's
//! firmware keys, with otter-boot's own streaming verifier (the check a device runs).

use std::fs::File;
use std::path::Path;

use embedded_storage::nor_flash::ReadNorFlash;
use otter_boot::image::{HEADER_LEN, Header, ImageError};
use otter_boot::trust::{Anchors, KeyId, TrustedKey};
use otter_boot::verify::{VerifyError, verify_with_buffer};

use crate::error::ApiError;
use crate::storage::FileFlash;

/// Read buffer of the verifier: large enough that a 256 MiB image takes few reads.
const READ_BUFFER_LEN: usize = 64 * 1024;

/// Why an upload is not a publishable image.
#[derive(Debug, thiserror::Error)]
pub enum ImageRejection {
    /// Not an image at all, or cut short, or with bytes after the signature (400).
    #[error("malformed image: {0}")]
    Malformed(#[from] ImageError),
    /// Signed by a key that is not one of the server's firmware keys (422).
    #[error(
        "image signed by key id {key_id}, which is not a firmware key of this server (trusted: {trusted})"
    )]
    UntrustedKey {
        /// The key id in the header.
        key_id: KeyId,
        /// The trusted key ids, comma-separated.
        trusted: String,
    },
    /// Well-formed but the payload hash or the signature does not verify (422).
    #[error("image refused: {0}")]
    Refused(VerifyError),
    /// The server could not read its own staged file, or its key configuration is broken.
    #[error("verifying the staged image: {0}")]
    Server(String),
}

impl From<ImageRejection> for ApiError {
    fn from(e: ImageRejection) -> Self {
        match e {
            ImageRejection::Malformed(_) => Self::BadRequest(e.to_string()),
            ImageRejection::UntrustedKey { .. } | ImageRejection::Refused(_) => {
                Self::Unprocessable(e.to_string())
            }
            ImageRejection::Server(_) => Self::internal(e),
        }
    }
}

/// Verifies the image in `path` against `keys`; blocking (run it in `spawn_blocking`).
/// Returns the verified header, the source of hardware id, version and security counter.
pub fn verify_file(path: &Path, keys: &[TrustedKey]) -> Result<Header, ImageRejection> {
    let server = |e: std::io::Error| ImageRejection::Server(e.to_string());
    let mut flash = FileFlash::new(File::open(path).map_err(server)?).map_err(server)?;
    let found = flash.len();
    let mut raw = [0u8; HEADER_LEN];
    if found < HEADER_LEN as u64 {
        return Err(ImageError::Truncated {
            needed: HEADER_LEN as u64,
            found,
        }
        .into());
    }
    flash
        .read(0, &mut raw)
        .map_err(|e| ImageRejection::Server(format!("{e:?}")))?;
    let header = Header::decode(&raw)?;
    let image_len = u64::from(header.image_len()?);
    if found < image_len {
        return Err(ImageError::Truncated {
            needed: image_len,
            found,
        }
        .into());
    }
    if found > image_len {
        return Err(ImageError::TrailingData { image_len, found }.into());
    }
    let capacity = u32::try_from(found).map_err(|_| ImageError::LengthOverflow)?;
    let anchors = Anchors {
        hardware_id: header.hardware_id,
        keys,
    };
    let mut buf = vec![0u8; READ_BUFFER_LEN];
    verify_with_buffer(&mut flash, 0, capacity, &anchors, 0, &mut buf).map_err(|e| match e {
        VerifyError::Image(e) => ImageRejection::Malformed(e),
        VerifyError::UnknownKey(key_id) => ImageRejection::UntrustedKey {
            key_id,
            trusted: trusted_list(keys),
        },
        VerifyError::WrongHardware { .. }
        | VerifyError::PayloadHashMismatch
        | VerifyError::BadSignature
        | VerifyError::Downgrade { .. } => ImageRejection::Refused(e),
        VerifyError::BadTrustAnchor(_) | VerifyError::BadBuffer | VerifyError::Flash(_) => {
            ImageRejection::Server(e.to_string())
        }
    })
}

fn trusted_list(keys: &[TrustedKey]) -> String {
    if keys.is_empty() {
        return "none configured".to_owned();
    }
    keys.iter()
        .map(|k| k.id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use otter_boot::image::{HardwareId, Version};
    use otter_keys::image::{ImageSpec, sign_image};
    use otter_keys::signer::{FileKey, Signer};

    fn signed(dir: &Path, name: &str) -> (Vec<u8>, TrustedKey) {
        let key = FileKey::generate_at(&dir.join(name)).unwrap();
        let spec = ImageSpec {
            hardware_id: HardwareId::new("board-1").unwrap(),
            version: Version::new(1, 2, 3),
            security_counter: 4,
        };
        let image = sign_image(&[7u8; 1000], &spec, &key).unwrap();
        (image, TrustedKey::new(key.public_key()))
    }

    fn check(dir: &Path, bytes: &[u8], keys: &[TrustedKey]) -> Result<Header, ImageRejection> {
        let path = dir.join("upload");
        std::fs::write(&path, bytes).unwrap();
        verify_file(&path, keys)
    }

    #[test]
    fn accepts_a_signed_image_and_returns_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let (image, key) = signed(dir.path(), "k");
        let header = check(dir.path(), &image, &[key]).unwrap();
        assert_eq!(header.version, Version::new(1, 2, 3));
        assert_eq!(header.hardware_id.as_str(), "board-1");
        assert_eq!(header.security_counter, 4);
    }

    #[test]
    fn classifies_every_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let (image, key) = signed(dir.path(), "k");
        let (_, other) = signed(dir.path(), "other");
        let keys = [key];
        let malformed = |r| matches!(r, Err(ImageRejection::Malformed(_)));
        assert!(malformed(check(dir.path(), &image[..100], &keys)));
        assert!(malformed(check(
            dir.path(),
            &image[..image.len() - 1],
            &keys
        )));
        let mut long = image.clone();
        long.push(0);
        assert!(malformed(check(dir.path(), &long, &keys)));
        let mut bad_magic = image.clone();
        bad_magic[0] = b'X';
        assert!(malformed(check(dir.path(), &bad_magic, &keys)));

        let mut tampered = image.clone();
        tampered[HEADER_LEN + 10] ^= 1;
        assert!(matches!(
            check(dir.path(), &tampered, &keys),
            Err(ImageRejection::Refused(VerifyError::PayloadHashMismatch))
        ));
        let mut bad_sig = image.clone();
        let last = bad_sig.len() - 1;
        bad_sig[last] ^= 1;
        assert!(matches!(
            check(dir.path(), &bad_sig, &keys),
            Err(ImageRejection::Refused(VerifyError::BadSignature))
        ));
        let err = check(dir.path(), &image, &[other]).unwrap_err();
        assert!(matches!(err, ImageRejection::UntrustedKey { .. }));
        assert!(err.to_string().contains(&other.id.to_string()), "{err}");
    }
}
