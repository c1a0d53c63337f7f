//! What Otter records about its TUF targets, shared by the server (which writes it) and the
//! agent (which reads it), so neither side can drift.
//!
//! Two kinds of target: full signed images at `firmware/<hardware-id>/<version>.img`, and
//! bsdiff patches between two releases at `deltas/<hardware-id>/<from>_<to>.patch`. Each
//! carries its facts in the target's `custom` object, flat, with a `kind` field saying which.

use std::collections::HashMap;

use otter_boot::image::Version;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::wire::serde_helpers;

/// The compression of every published patch.
pub const DELTA_COMPRESSION: &str = "zstd";

/// Base-2 log of the largest zstd window a patch may use (128 KiB). Bounds what a device
/// needs to decompress: the server compresses with this window, the agent refuses larger.
pub const DELTA_ZSTD_WINDOW_LOG: u32 = 17;

/// TUF target name of a full image.
pub fn image_target_name(hardware_id: &str, version: Version) -> String {
    format!("firmware/{hardware_id}/{version}.img")
}

/// TUF target name of a patch from one release to another.
pub fn delta_target_name(hardware_id: &str, from: Version, to: Version) -> String {
    format!("deltas/{hardware_id}/{from}_{to}.patch")
}

/// Facts about a target, as stored in its `custom` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetInfo {
    /// A full signed image.
    Image(ImageInfo),
    /// A compressed bsdiff patch.
    Delta(DeltaInfo),
}

/// The signed header facts of a full image (copied from the header the server verified).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The board the image is built for.
    pub hardware_id: String,
    /// The release version.
    #[serde(with = "serde_helpers::version")]
    pub version: Version,
    /// The anti-rollback counter.
    pub security_counter: u32,
}

/// How to turn one release into another with this patch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaInfo {
    /// The board both images are built for.
    pub hardware_id: String,
    /// The release the patch applies to.
    #[serde(with = "serde_helpers::version")]
    pub from_version: Version,
    /// SHA-256 of the whole image the patch applies to (the device checks its running image).
    #[serde(with = "serde_helpers::hex32")]
    pub from_sha256: [u8; 32],
    /// The full-image target the patch produces.
    pub to_target: String,
    /// The release the patch produces.
    #[serde(with = "serde_helpers::version")]
    pub to_version: Version,
    /// SHA-256 of the produced image.
    #[serde(with = "serde_helpers::hex32")]
    pub to_sha256: [u8; 32],
    /// Length of the produced image in bytes (the applier stops there).
    pub to_length: u64,
    /// Compression of the patch file ([`DELTA_COMPRESSION`]).
    pub compression: String,
    /// Base-2 log of the zstd window used.
    pub window_log: u32,
}

/// Why a target's `custom` object is not Otter's.
#[derive(Debug, thiserror::Error)]
#[error("target custom fields: {0}")]
pub struct TargetInfoError(#[from] serde_json::Error);

impl TargetInfo {
    /// The `custom` map of a TUF target.
    pub fn to_custom(&self) -> HashMap<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map.into_iter().collect(),
            // Serializing plain structs of strings and numbers to JSON cannot fail.
            _ => HashMap::new(),
        }
    }

    /// Reads the `custom` map of a TUF target.
    pub fn from_custom(custom: &HashMap<String, Value>) -> Result<Self, TargetInfoError> {
        let map: serde_json::Map<String, Value> =
            custom.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Ok(serde_json::from_value(Value::Object(map))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_repository_layout() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        assert_eq!(
            image_target_name("acme-1", v("1.2.0")),
            "firmware/acme-1/1.2.0.img"
        );
        assert_eq!(
            delta_target_name("acme-1", v("1.1.0"), v("1.2.0")),
            "deltas/acme-1/1.1.0_1.2.0.patch"
        );
    }

    #[test]
    fn custom_fields_round_trip_and_reject_foreign_ones() {
        let delta = TargetInfo::Delta(DeltaInfo {
            hardware_id: "acme-1".into(),
            from_version: "1.0.0".parse().unwrap(),
            from_sha256: [1; 32],
            to_target: "firmware/acme-1/1.1.0.img".into(),
            to_version: "1.1.0".parse().unwrap(),
            to_sha256: [2; 32],
            to_length: 4096,
            compression: DELTA_COMPRESSION.into(),
            window_log: DELTA_ZSTD_WINDOW_LOG,
        });
        let custom = delta.to_custom();
        assert_eq!(custom["kind"], "delta");
        assert_eq!(custom["from_sha256"], hex::encode([1; 32]));
        assert_eq!(TargetInfo::from_custom(&custom).unwrap(), delta);

        let mut bad = custom.clone();
        bad.insert("to_length".into(), Value::from("many"));
        assert!(TargetInfo::from_custom(&bad).is_err());
        assert!(TargetInfo::from_custom(&HashMap::new()).is_err());
    }
}
