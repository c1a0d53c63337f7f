//! What a bearer token may do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A permission carried by a token. `admin` includes every other scope.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Everything, including creating tokens.
    Admin,
    /// Publish releases (vendor release engineers, CI).
    Publish,
    /// Read and manage the fleet (devices, rollouts).
    Fleet,
    /// Register new devices (factory provisioning).
    Provision,
}

impl Scope {
    /// Every scope, in a stable order.
    pub const ALL: [Scope; 4] = [Scope::Admin, Scope::Publish, Scope::Fleet, Scope::Provision];

    /// The scope's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Publish => "publish",
            Self::Fleet => "fleet",
            Self::Provision => "provision",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| format!("unknown scope {s:?} (admin, publish, fleet, provision)"))
    }
}

/// Stored form: names joined by commas.
pub fn join(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses the stored form, ignoring names this build does not know.
pub fn split(stored: &str) -> Vec<Scope> {
    stored.split(',').filter_map(|s| s.parse().ok()).collect()
}
