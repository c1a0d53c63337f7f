//! What a rollout is: a release, a cohort, ordered stages, a failure threshold, an optional
//! rate limit, and the fleet manager's signed policy (ceiling and maintenance window).
//! [`Rollout::new`] checks all of it once, so the engine can rely on it.

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use jiff::{SignedDuration, Timestamp};
use otter_keys::rollout::MaintenanceWindow;
use otter_keys::wire::RolloutPolicy;

use super::bucket::BasisPoints;

/// The release a rollout installs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseRef {
    /// Release id (`rel_…`).
    pub id: String,
    /// Its board: the rollout reaches only devices of this hardware id.
    pub hardware_id: String,
    /// SHA-256 of the signed image file (the assigned target's hash).
    pub image_sha256: [u8; 32],
}

/// Which devices of the release's board the rollout is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cohort {
    /// Every device carrying all of these tags (all devices of the board when empty),
    /// including devices that register after the rollout started.
    Tagged(BTreeSet<String>),
    /// Exactly these devices (a canary group). Buckets and stages still apply, as the
    /// devices check their bucket against the signed ceiling: a canary group usually has
    /// one 100 % stage.
    Devices(BTreeSet<String>),
}

/// A device as the cohort sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceFacts {
    /// Device id.
    pub id: String,
    /// Board.
    pub hardware_id: String,
    /// Tags given by the fleet manager.
    pub tags: BTreeSet<String>,
}

impl Cohort {
    /// Whether `device` (of any board) belongs: the board is checked by the caller's
    /// [`Rollout`], which knows the release.
    pub fn contains(&self, device: &DeviceFacts) -> bool {
        match self {
            Self::Tagged(tags) => tags.is_subset(&device.tags),
            Self::Devices(ids) => ids.contains(&device.id),
        }
    }
}

/// One stage: the cumulative share of the cohort it admits and how long it must run
/// before the next one may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    /// Buckets below this are admitted (cumulative: it includes earlier stages).
    pub cutoff: BasisPoints,
    /// The least time between the stage's start and the next stage.
    pub min_soak: SignedDuration,
}

/// When a rollout stops itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureThreshold {
    /// The most failed or rolled-back devices tolerated, as a share of admitted ones.
    pub max_failures: BasisPoints,
    /// The threshold applies only once this many devices are admitted, so one early
    /// failure among three devices does not stop a rollout.
    pub min_devices: u32,
}

/// A rollout as the fleet manager asks for it, before it is checked against its policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutSpec {
    /// Rollout id (`rol_…`); with a device id it gives the device's bucket.
    pub id: String,
    /// What it installs.
    pub release: ReleaseRef,
    /// Whom it is for.
    pub cohort: Cohort,
    /// In order; cutoffs strictly rising.
    pub stages: Vec<Stage>,
    /// When it pauses itself.
    pub failure: FailureThreshold,
    /// At most this many devices admitted per minute.
    pub rate_limit: Option<NonZeroU32>,
    /// An admitted device that is neither healthy nor failed this long after admission
    /// counts as timed out: it no longer holds the stage back.
    pub device_timeout: SignedDuration,
}

/// Why a rollout can not be made.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// No stage at all.
    #[error("a rollout needs at least one stage")]
    NoStages,
    /// A stage admitting nobody.
    #[error("stage {stage} has cutoff 0%: every stage must admit someone")]
    EmptyStage {
        /// 1-based stage number.
        stage: usize,
    },
    /// Cutoffs must rise, so that no admitted device ever leaves its stage.
    #[error("stage {stage} cutoff {cutoff} must be above the previous stage's {previous}")]
    FallingCutoff {
        /// 1-based stage number.
        stage: usize,
        /// Its cutoff.
        cutoff: BasisPoints,
        /// The previous stage's cutoff.
        previous: BasisPoints,
    },
    /// A soak time below zero.
    #[error("stage {stage} has a negative soak time")]
    NegativeSoak {
        /// 1-based stage number.
        stage: usize,
    },
    /// A device timeout of zero or less.
    #[error("the device timeout must be positive")]
    NoDeviceTimeout,
    /// An explicit device list without devices.
    #[error("an explicit cohort needs at least one device")]
    EmptyDeviceList,
    /// The first stage already goes past what the policy allows.
    #[error(
        "stage 1 cutoff {cutoff} is above the signed ceiling {ceiling}: sign a policy with a \
         higher ceiling (otter-keys sign-rollout)"
    )]
    FirstStageAboveCeiling {
        /// Stage 1's cutoff.
        cutoff: BasisPoints,
        /// The policy's ceiling.
        ceiling: BasisPoints,
    },
    /// The policy is for something else than this rollout.
    #[error("the rollout policy is for {field} {found:?}, this rollout's is {expected:?}")]
    PolicyMismatch {
        /// The field that differs.
        field: &'static str,
        /// The rollout's value.
        expected: String,
        /// The policy's value.
        found: String,
    },
}

/// A checked rollout: its stages rise, and its policy names its id, release and board.
/// The ceiling and window come from the signed policy, so the server enforces what the
/// device will.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollout {
    spec: RolloutSpec,
    policy: RolloutPolicy,
}

impl Rollout {
    /// Checks `spec` and binds it to `policy`, whose signature the caller has verified
    /// (`Signed::<RolloutPolicy>::verify_authentic`).
    pub fn new(spec: RolloutSpec, policy: RolloutPolicy) -> Result<Self, ModelError> {
        check_stages(&spec.stages)?;
        if spec.device_timeout <= SignedDuration::ZERO {
            return Err(ModelError::NoDeviceTimeout);
        }
        if matches!(&spec.cohort, Cohort::Devices(ids) if ids.is_empty()) {
            return Err(ModelError::EmptyDeviceList);
        }
        let mismatch = |field, expected: &str, found: &str| {
            (expected != found).then(|| ModelError::PolicyMismatch {
                field,
                expected: expected.to_owned(),
                found: found.to_owned(),
            })
        };
        let release = &spec.release;
        let image = hex::encode(release.image_sha256);
        let mismatches = [
            mismatch("rollout id", &spec.id, &policy.rollout_id),
            mismatch("hardware id", &release.hardware_id, &policy.hardware_id),
            mismatch("image", &image, &hex::encode(policy.image_sha256)),
        ];
        if let Some(error) = mismatches.into_iter().flatten().next() {
            return Err(error);
        }
        let first = spec.stages[0].cutoff;
        if first > policy.ceiling {
            return Err(ModelError::FirstStageAboveCeiling {
                cutoff: first,
                ceiling: policy.ceiling,
            });
        }
        Ok(Self { spec, policy })
    }

    /// What was asked for.
    pub fn spec(&self) -> &RolloutSpec {
        &self.spec
    }

    /// The signed policy it runs under.
    pub fn policy(&self) -> &RolloutPolicy {
        &self.policy
    }

    /// Rollout id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// The stages, at least one.
    pub fn stages(&self) -> &[Stage] {
        &self.spec.stages
    }

    /// The highest cutoff the server may reach on its own (from the signed policy).
    pub fn ceiling(&self) -> BasisPoints {
        self.policy.ceiling
    }

    /// Whether the signed policy has expired at `now`, as a device judges it (`now` at or
    /// past `expires`).
    pub fn policy_expired(&self, now: Timestamp) -> bool {
        u64::try_from(now.as_second()).is_ok_and(|now| now >= self.policy.expires)
    }

    /// When devices may be admitted (from the signed policy); `None`: any time.
    pub fn window(&self) -> Option<&MaintenanceWindow> {
        self.policy.window.as_ref()
    }

    /// Whether `device` is of the release's board and in the cohort.
    pub fn includes(&self, device: &DeviceFacts) -> bool {
        device.hardware_id == self.spec.release.hardware_id && self.spec.cohort.contains(device)
    }
}

fn check_stages(stages: &[Stage]) -> Result<(), ModelError> {
    if stages.is_empty() {
        return Err(ModelError::NoStages);
    }
    let mut previous = BasisPoints::ZERO;
    for (i, stage) in stages.iter().enumerate() {
        let number = i + 1;
        if stage.cutoff == BasisPoints::ZERO {
            return Err(ModelError::EmptyStage { stage: number });
        }
        if stage.cutoff <= previous {
            return Err(ModelError::FallingCutoff {
                stage: number,
                cutoff: stage.cutoff,
                previous,
            });
        }
        if stage.min_soak < SignedDuration::ZERO {
            return Err(ModelError::NegativeSoak { stage: number });
        }
        previous = stage.cutoff;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn share(text: &str) -> BasisPoints {
        text.parse().unwrap()
    }

    pub(crate) const IMAGE: [u8; 32] = [0x5A; 32];

    pub(crate) fn stage(cutoff: &str, soak_minutes: i64) -> Stage {
        Stage {
            cutoff: share(cutoff),
            min_soak: SignedDuration::from_mins(soak_minutes),
        }
    }

    /// Stages 1 % / 10 % / 100 %, soak 60 min each, pause over 10 % once 10 devices are
    /// in, no rate limit, devices time out after a day.
    pub(crate) fn spec() -> RolloutSpec {
        RolloutSpec {
            id: "rol_1".into(),
            release: ReleaseRef {
                id: "rel_2".into(),
                hardware_id: "acme-thermo".into(),
                image_sha256: IMAGE,
            },
            cohort: Cohort::Tagged(BTreeSet::new()),
            stages: vec![stage("1%", 60), stage("10%", 60), stage("100%", 60)],
            failure: FailureThreshold {
                max_failures: share("10%"),
                min_devices: 10,
            },
            rate_limit: None,
            device_timeout: SignedDuration::from_hours(24),
        }
    }

    /// A policy for [`spec`] with ceiling `ceiling` and no window.
    pub(crate) fn policy(ceiling: &str) -> RolloutPolicy {
        RolloutPolicy {
            rollout_id: "rol_1".into(),
            hardware_id: "acme-thermo".into(),
            image_sha256: IMAGE,
            ceiling: share(ceiling),
            window: None,
            expires: u64::MAX,
        }
    }

    pub(crate) fn device(id: &str, tags: &[&str]) -> DeviceFacts {
        DeviceFacts {
            id: id.into(),
            hardware_id: "acme-thermo".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn a_good_spec_binds_to_its_policy() {
        let rollout = Rollout::new(spec(), policy("100%")).unwrap();
        assert_eq!(rollout.ceiling(), BasisPoints::FULL);
        assert_eq!(rollout.stages().len(), 3);
        assert!(rollout.window().is_none());
    }

    #[test]
    fn stages_must_rise_admit_someone_and_soak_forwards() {
        let with =
            |stages: Vec<Stage>| Rollout::new(RolloutSpec { stages, ..spec() }, policy("100%"));
        assert_eq!(with(vec![]), Err(ModelError::NoStages));
        assert_eq!(
            with(vec![stage("0%", 0)]),
            Err(ModelError::EmptyStage { stage: 1 })
        );
        assert_eq!(
            with(vec![stage("10%", 0), stage("10%", 0)]),
            Err(ModelError::FallingCutoff {
                stage: 2,
                cutoff: share("10%"),
                previous: share("10%")
            })
        );
        assert!(matches!(
            with(vec![stage("10%", 0), stage("5%", 0)]),
            Err(ModelError::FallingCutoff { stage: 2, .. })
        ));
        assert_eq!(
            with(vec![stage("10%", -1)]),
            Err(ModelError::NegativeSoak { stage: 1 })
        );
        with(vec![stage("10%", 0), stage("100%", 0)]).unwrap();
    }

    #[test]
    fn the_policy_must_name_this_rollout_release_and_board() {
        type Change = fn(&mut RolloutPolicy);
        let cases: [(Change, &str); 3] = [
            (|p| p.rollout_id = "rol_2".into(), "rollout id"),
            (|p| p.hardware_id = "acme-fridge".into(), "hardware id"),
            (|p| p.image_sha256[0] ^= 1, "image"),
        ];
        for (change, field) in cases {
            let mut p = policy("100%");
            change(&mut p);
            let err = Rollout::new(spec(), p).unwrap_err();
            assert!(
                matches!(err, ModelError::PolicyMismatch { field: f, .. } if f == field),
                "{err}"
            );
        }
    }

    #[test]
    fn the_first_stage_must_fit_under_the_ceiling() {
        let err = Rollout::new(spec(), policy("0.5%")).unwrap_err();
        assert_eq!(
            err,
            ModelError::FirstStageAboveCeiling {
                cutoff: share("1%"),
                ceiling: share("0.5%")
            }
        );
        assert!(err.to_string().contains("otter-keys sign-rollout"), "{err}");
        // Later stages may go past it: they wait for a wider policy.
        Rollout::new(spec(), policy("1%")).unwrap();
    }

    #[test]
    fn other_bad_specs_are_refused() {
        let timeout = RolloutSpec {
            device_timeout: SignedDuration::ZERO,
            ..spec()
        };
        assert_eq!(
            Rollout::new(timeout, policy("100%")),
            Err(ModelError::NoDeviceTimeout)
        );
        let nobody = RolloutSpec {
            cohort: Cohort::Devices(BTreeSet::new()),
            ..spec()
        };
        assert_eq!(
            Rollout::new(nobody, policy("100%")),
            Err(ModelError::EmptyDeviceList)
        );
    }

    #[test]
    fn a_cohort_matches_board_and_tags_or_the_device_list() {
        let tagged = Rollout::new(
            RolloutSpec {
                cohort: Cohort::Tagged(["eu".to_string(), "beta".to_string()].into()),
                ..spec()
            },
            policy("100%"),
        )
        .unwrap();
        assert!(tagged.includes(&device("d1", &["eu", "beta", "x"])));
        assert!(!tagged.includes(&device("d1", &["eu"])), "needs every tag");
        let other_board = DeviceFacts {
            hardware_id: "acme-fridge".into(),
            ..device("d1", &["eu", "beta"])
        };
        assert!(!tagged.includes(&other_board));

        let canary = Rollout::new(
            RolloutSpec {
                cohort: Cohort::Devices(["d2".to_string()].into()),
                ..spec()
            },
            policy("100%"),
        )
        .unwrap();
        assert!(canary.includes(&device("d2", &[])));
        assert!(!canary.includes(&device("d3", &[])));
    }
}
