//! What can be flagged.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kinds of anomaly, each with its own rule in [`super::rules`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// A device checked in running an image whose hash is no release of its board: a
    /// tampered, side-loaded or unpublished image.
    UnknownImage,
    /// A device keeps refusing what it is sent (bad assignments, rollout policies) or failing
    /// to verify what it downloads: a hostile network, a compromised server, or a broken
    /// device.
    RepeatedFailures,
    /// A release rolls back far more often than the rest of the board's fleet.
    RollbackStorm,
    /// Check-ins under a known device id whose signature does not verify: someone is
    /// impersonating the device, or its key changed.
    BadSignature,
    /// A device has not been heard from for longer than the configured silence.
    Silent,
}

impl AnomalyKind {
    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::UnknownImage,
        Self::RepeatedFailures,
        Self::RollbackStorm,
        Self::BadSignature,
        Self::Silent,
    ];

    /// The name used in JSON, the database and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownImage => "unknown_image",
            Self::RepeatedFailures => "repeated_failures",
            Self::RollbackStorm => "rollback_storm",
            Self::BadSignature => "bad_signature",
            Self::Silent => "silent",
        }
    }

    /// The kind named `name`, as stored.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_the_json() {
        for kind in AnomalyKind::ALL {
            assert_eq!(AnomalyKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
        }
        assert_eq!(AnomalyKind::parse("nope"), None);
    }
}
