//! Step 2b: the fleet manager's signed rollout policy must allow an assignment before
//! anything is downloaded.
//!
//! The director's key is online, so a server whose keys are stolen can sign any assignment.
//! The rollout key is not: the policy it signs names the image, the board, the highest
//! bucket the server may reach on its own, the window and an expiry, and the device checks
//! all of them itself. A refusal fails the cycle at stage `policy` (and is reported); outside
//! the window the device simply waits for a later cycle.

use otter_keys::wire::{AssignedTarget, PolicyCheck, PolicyError};

use crate::agent::Agent;
use crate::messages::unix_now;

/// What this device knows and requires when it checks a policy.
#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    /// The rollout keys of the trust bundle (none in a bundle from before the role).
    pub rollout_keys: &'a [[u8; 32]],
    /// `[rollout] require_policy`: unset means required exactly when `rollout_keys` is not
    /// empty.
    pub require_policy: Option<bool>,
    /// This device's id (with the policy's rollout id, its bucket).
    pub device_id: &'a str,
    /// This device's board.
    pub hardware_id: &'a str,
}

/// What the policy check allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A trusted rollout key allows this image on this device now.
    Allowed {
        /// The rollout the policy is for.
        rollout_id: String,
    },
    /// Nothing was checked, and the update proceeds as before rollout policies.
    Unchecked(Unchecked),
    /// The policy allows the update, but not now: the device waits for its window.
    Wait {
        /// The window, as text.
        window: String,
        /// The time it is in the window's zone.
        local: String,
    },
}

/// Why an assignment was not checked against a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unchecked {
    /// The trust bundle lists no rollout key (made before the role existed), so no policy
    /// can be trusted or required.
    NoRolloutKeys,
    /// The configuration does not require a policy (`[rollout] require_policy = false`)
    /// and the assignment carries none.
    NotRequired,
}

/// Why the device refuses an assignment for its rollout policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyRefusal {
    /// The assignment carries no policy, and this device requires one.
    #[error(
        "the server sent an assignment without a signed rollout policy; this device installs \
         only what a rollout key allows"
    )]
    Missing,
    /// The policy does not allow this device this image (its text names what failed: the
    /// key, the board, the image, the expiry, or the bucket and the ceiling).
    #[error(transparent)]
    Refused(#[from] PolicyError),
}

/// Decides whether `target` may be installed at `now` (unix seconds) under `rules`.
///
/// A policy that is sent is always checked when the bundle has rollout keys; a missing one
/// is refused when a policy is required. Being outside the window is not a refusal but
/// [`Verdict::Wait`]: every other check passed, so only the time is wrong.
pub fn check(
    target: &AssignedTarget,
    rules: &Rules<'_>,
    now: u64,
) -> Result<Verdict, PolicyRefusal> {
    let required = rules
        .require_policy
        .unwrap_or(!rules.rollout_keys.is_empty());
    let Some(policy) = &target.policy else {
        return if required {
            Err(PolicyRefusal::Missing)
        } else if rules.rollout_keys.is_empty() {
            Ok(Verdict::Unchecked(Unchecked::NoRolloutKeys))
        } else {
            Ok(Verdict::Unchecked(Unchecked::NotRequired))
        };
    };
    if rules.rollout_keys.is_empty() && !required {
        return Ok(Verdict::Unchecked(Unchecked::NoRolloutKeys));
    }
    let check = PolicyCheck {
        device_id: rules.device_id,
        hardware_id: rules.hardware_id,
        image_sha256: &target.sha256,
        now,
    };
    match policy.verify(rules.rollout_keys, &check) {
        Ok(policy) => Ok(Verdict::Allowed {
            rollout_id: policy.rollout_id.clone(),
        }),
        Err(PolicyError::OutsideWindow { window, local }) => Ok(Verdict::Wait { window, local }),
        Err(e) => Err(e.into()),
    }
}

impl Agent {
    /// [`check`] with this device's bundle, configuration and clock, silently: for the
    /// second look just before the trial request, so a slow download can not carry an
    /// install past the policy's expiry or out of its window.
    pub(crate) fn recheck_rollout_policy(
        &self,
        target: &AssignedTarget,
    ) -> Result<Verdict, PolicyRefusal> {
        let bundle = self.device.bundle();
        let rules = Rules {
            rollout_keys: &bundle.rollout_keys,
            require_policy: self.config.rollout.require_policy,
            device_id: &self.identity.device_id,
            hardware_id: bundle.hardware_id.as_str(),
        };
        check(target, &rules, unix_now())
    }

    /// [`check`] with this device's bundle, configuration and clock; warns when nothing was
    /// checked (once per cycle: the second look is [`Agent::recheck_rollout_policy`]).
    pub(crate) fn check_rollout_policy(
        &self,
        target: &AssignedTarget,
    ) -> Result<Verdict, PolicyRefusal> {
        let verdict = self.recheck_rollout_policy(target)?;
        match &verdict {
            Verdict::Allowed { rollout_id } => {
                tracing::info!(%rollout_id, "the signed rollout policy allows this update");
            }
            Verdict::Unchecked(Unchecked::NoRolloutKeys) => tracing::warn!(
                "the trust bundle lists no rollout key: installing without a rollout policy \
                 check (a compromised server could widen a rollout to this device); provision \
                 a bundle with rollout keys"
            ),
            Verdict::Unchecked(Unchecked::NotRequired) => tracing::warn!(
                "the assignment carries no rollout policy and [rollout] require_policy is \
                 false: installing without a rollout policy check"
            ),
            Verdict::Wait { window, local } => {
                tracing::info!(%window, %local, "outside the maintenance window: waiting");
            }
        }
        Ok(verdict)
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer as _, SigningKey};
    use otter_keys::rollout::{BasisPoints, bucket};
    use otter_keys::signer::{KeyError, Signer};
    use otter_keys::wire::{RolloutPolicy, Signed};

    use super::*;

    struct TestKey(SigningKey);

    impl Signer for TestKey {
        fn public_key(&self) -> [u8; 32] {
            self.0.verifying_key().to_bytes()
        }

        fn sign(&self, message: &[u8]) -> Result<[u8; 64], KeyError> {
            Ok(self.0.sign(message).to_bytes())
        }
    }

    fn rollout_key() -> TestKey {
        TestKey(SigningKey::from_bytes(&[7; 32]))
    }

    const IMAGE: [u8; 32] = [0xAB; 32];
    const BOARD: &str = "acme-thermo";
    /// 2026-12-01 (a Tuesday) 12:00 UTC.
    const NOON: u64 = 1_796_126_400;

    fn policy() -> RolloutPolicy {
        RolloutPolicy {
            rollout_id: "rol_1".into(),
            hardware_id: BOARD.into(),
            image_sha256: IMAGE,
            ceiling: "25%".parse().unwrap(),
            window: Some("mon-fri 09:00-17:00 UTC".parse().unwrap()),
            expires: NOON + 3600,
        }
    }

    fn target(policy: Option<RolloutPolicy>) -> AssignedTarget {
        AssignedTarget {
            name: "firmware/acme-thermo/1.1.0.img".into(),
            version: "1.1.0".parse().unwrap(),
            sha256: IMAGE,
            length: 4096,
            policy: policy.map(|p| Signed::sign(p, &rollout_key()).unwrap()),
        }
    }

    /// A device whose bucket in `rol_1` is under (`true`) or not under the 25 % ceiling.
    fn device(under: bool) -> String {
        let ceiling: BasisPoints = "25%".parse().unwrap();
        (0..)
            .map(|i| format!("dev_{i}"))
            .find(|d| ceiling.admits(bucket(d, "rol_1")) == under)
            .unwrap()
    }

    fn rules<'a>(keys: &'a [[u8; 32]], device_id: &'a str) -> Rules<'a> {
        Rules {
            rollout_keys: keys,
            require_policy: None,
            device_id,
            hardware_id: BOARD,
        }
    }

    fn refusal(target: &AssignedTarget, rules: &Rules<'_>, now: u64) -> PolicyRefusal {
        check(target, rules, now).expect_err("allowed")
    }

    #[test]
    fn a_genuine_policy_covering_the_device_allows_the_update() {
        let keys = [rollout_key().public_key()];
        let dev = device(true);
        assert_eq!(
            check(&target(Some(policy())), &rules(&keys, &dev), NOON).unwrap(),
            Verdict::Allowed {
                rollout_id: "rol_1".into()
            }
        );
    }

    #[test]
    fn a_device_above_the_signed_ceiling_is_refused_naming_bucket_and_ceiling() {
        let keys = [rollout_key().public_key()];
        let dev = device(false);
        let err = refusal(&target(Some(policy())), &rules(&keys, &dev), NOON);
        let bucket = bucket(&dev, "rol_1");
        assert!(
            matches!(&err, PolicyRefusal::Refused(PolicyError::AboveCeiling { bucket: b, .. }) if *b == bucket),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("bucket {bucket}"))
                && text.contains("not under the signed ceiling"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_policy_is_refused_when_the_bundle_has_rollout_keys() {
        let keys = [rollout_key().public_key()];
        let dev = device(true);
        let err = refusal(&target(None), &rules(&keys, &dev), NOON);
        assert!(matches!(err, PolicyRefusal::Missing), "{err:?}");
        assert!(
            err.to_string()
                .contains("the server sent an assignment without a signed rollout policy"),
            "{err}"
        );
        // Required explicitly, it is refused the same way.
        let strict = Rules {
            require_policy: Some(true),
            ..rules(&keys, &dev)
        };
        assert!(matches!(
            refusal(&target(None), &strict, NOON),
            PolicyRefusal::Missing
        ));
    }

    #[test]
    fn a_policy_of_another_key_board_image_or_time_is_refused() {
        let keys = [rollout_key().public_key()];
        let dev = device(true);
        let r = rules(&keys, &dev);

        let mut forged = target(Some(policy()));
        let director = TestKey(SigningKey::from_bytes(&[2; 32]));
        forged.policy = Some(Signed::sign(policy(), &director).unwrap());
        assert!(matches!(
            refusal(&forged, &r, NOON),
            PolicyRefusal::Refused(PolicyError::UntrustedSignature { keys: 1 })
        ));

        let mut altered = target(Some(policy()));
        if let Some(p) = altered.policy.as_mut() {
            p.message.ceiling = "100%".parse().unwrap();
        }
        assert!(matches!(
            refusal(&altered, &r, NOON),
            PolicyRefusal::Refused(PolicyError::UntrustedSignature { .. })
        ));

        let mut malformed = target(Some(policy()));
        if let Some(p) = malformed.policy.as_mut() {
            p.signature.truncate(10);
        }
        assert!(matches!(
            refusal(&malformed, &r, NOON),
            PolicyRefusal::Refused(PolicyError::Wire(_))
        ));

        let other_board = target(Some(RolloutPolicy {
            hardware_id: "other-board".into(),
            ..policy()
        }));
        assert!(matches!(
            refusal(&other_board, &r, NOON),
            PolicyRefusal::Refused(PolicyError::WrongHardware { .. })
        ));

        let other_image = target(Some(RolloutPolicy {
            image_sha256: [0xCD; 32],
            ..policy()
        }));
        assert!(matches!(
            refusal(&other_image, &r, NOON),
            PolicyRefusal::Refused(PolicyError::WrongImage { .. })
        ));

        let err = refusal(&target(Some(policy())), &r, NOON + 3600);
        assert!(
            matches!(
                err,
                PolicyRefusal::Refused(PolicyError::Expired {
                    expires,
                    now
                }) if expires == NOON + 3600 && now == NOON + 3600
            ),
            "{err:?}"
        );
    }

    #[test]
    fn outside_the_window_the_device_waits_instead_of_refusing() {
        let keys = [rollout_key().public_key()];
        let dev = device(true);
        // 2026-12-01 20:00 UTC: a weekday, after the 09:00-17:00 window.
        let evening = NOON + 8 * 3600;
        let genuine = target(Some(RolloutPolicy {
            expires: NOON + 86_400,
            ..policy()
        }));
        let verdict = check(&genuine, &rules(&keys, &dev), evening).unwrap();
        let Verdict::Wait { window, local } = &verdict else {
            panic!("{verdict:?}");
        };
        assert_eq!(
            Some(window),
            policy().window.map(|w| w.to_string()).as_ref()
        );
        assert!(local.contains("Tue 2026-12-01 20:00"), "{local}");
        // Inside the window the same policy allows it.
        assert!(matches!(
            check(&genuine, &rules(&keys, &dev), NOON),
            Ok(Verdict::Allowed { .. })
        ));
        // A device above the ceiling is refused, whatever the time.
        let above = device(false);
        assert!(matches!(
            refusal(&genuine, &rules(&keys, &above), evening),
            PolicyRefusal::Refused(PolicyError::AboveCeiling { .. })
        ));
    }

    #[test]
    fn a_bundle_without_rollout_keys_installs_as_before() {
        let dev = device(false);
        let legacy = rules(&[], &dev);
        assert_eq!(
            check(&target(None), &legacy, NOON).unwrap(),
            Verdict::Unchecked(Unchecked::NoRolloutKeys)
        );
        // A policy it can not check changes nothing.
        assert_eq!(
            check(&target(Some(policy())), &legacy, NOON).unwrap(),
            Verdict::Unchecked(Unchecked::NoRolloutKeys)
        );
        // Unless a policy is required explicitly: then nothing can be installed.
        let strict = Rules {
            require_policy: Some(true),
            ..legacy
        };
        assert!(matches!(
            refusal(&target(Some(policy())), &strict, NOON),
            PolicyRefusal::Refused(PolicyError::NoRolloutKey)
        ));
        assert!(matches!(
            refusal(&target(None), &strict, NOON),
            PolicyRefusal::Missing
        ));
    }

    #[test]
    fn not_requiring_a_policy_lets_a_missing_one_pass_but_still_checks_a_sent_one() {
        let keys = [rollout_key().public_key()];
        let dev = device(false);
        let lenient = Rules {
            require_policy: Some(false),
            ..rules(&keys, &dev)
        };
        assert_eq!(
            check(&target(None), &lenient, NOON).unwrap(),
            Verdict::Unchecked(Unchecked::NotRequired)
        );
        assert!(matches!(
            refusal(&target(Some(policy())), &lenient, NOON),
            PolicyRefusal::Refused(PolicyError::AboveCeiling { .. })
        ));
    }
}
