//! The signed rollout policy as the device checks it: a policy from the fleet manager's
//! rollout key passes, and each way a server could stretch it (another key, another board,
//! another image, too late, a device past the ceiling, outside the window) is refused with
//! its own error.

use ed25519_dalek::{Signer as _, SigningKey};
use otter_keys::rollout::{BasisPoints, bucket};
use otter_keys::signer::{KeyError, Signer};
use otter_keys::wire::{PolicyCheck, PolicyError, RolloutPolicy, Signed, WireError};
use serde_json::Value;

struct TestKey(SigningKey);

impl TestKey {
    fn from_seed(byte: u8) -> Self {
        Self(SigningKey::from_bytes(&[byte; 32]))
    }
}

impl Signer for TestKey {
    fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], KeyError> {
        Ok(self.0.sign(message).to_bytes())
    }
}

const IMAGE: [u8; 32] = [0xAB; 32];
/// 2026-12-01 (a Tuesday) 12:00 UTC.
const NOON: u64 = 1_796_126_400;

fn policy() -> RolloutPolicy {
    RolloutPolicy {
        rollout_id: "rol_1".into(),
        hardware_id: "acme-thermo".into(),
        image_sha256: IMAGE,
        ceiling: "25%".parse().unwrap(),
        window: Some("mon-fri 09:00-17:00 UTC".parse().unwrap()),
        expires: NOON + 3600,
    }
}

fn signed(policy: RolloutPolicy) -> Signed<RolloutPolicy> {
    Signed::sign(policy, &TestKey::from_seed(7)).unwrap()
}

fn keys() -> Vec<[u8; 32]> {
    vec![TestKey::from_seed(7).public_key()]
}

/// A device id whose bucket in `rol_1` is below (`under`) or not below the 25 % ceiling.
fn device(under: bool) -> String {
    let ceiling: BasisPoints = "25%".parse().unwrap();
    (0..)
        .map(|i| format!("dev_{i}"))
        .find(|d| ceiling.admits(bucket(d, "rol_1")) == under)
        .unwrap()
}

fn check<'a>(device_id: &'a str) -> PolicyCheck<'a> {
    PolicyCheck {
        device_id,
        hardware_id: "acme-thermo",
        image_sha256: &IMAGE,
        now: NOON,
    }
}

fn over_the_wire(signed: &Signed<RolloutPolicy>) -> Signed<RolloutPolicy> {
    serde_json::from_str(&serde_json::to_string(signed).unwrap()).unwrap()
}

#[test]
fn a_policy_survives_sign_json_parse_verify() {
    let signed = over_the_wire(&signed(policy()));
    let dev = device(true);
    assert_eq!(signed.verify(&keys(), &check(&dev)).unwrap(), &policy());
    let json: Value = serde_json::to_value(&signed).unwrap();
    assert_eq!(json["message"]["ceiling"], 2500);
    assert_eq!(json["message"]["image_sha256"], "ab".repeat(32));
    assert_eq!(json["message"]["window"]["days"][0], "mon");
}

#[test]
fn a_policy_signed_by_an_older_rollout_key_verifies_after_a_rotation() {
    let newer = TestKey::from_seed(8).public_key();
    let dev = device(true);
    let trusted = [newer, keys()[0]];
    signed(policy()).verify(&trusted, &check(&dev)).unwrap();
}

#[test]
fn a_device_with_no_rollout_key_trusts_no_policy() {
    let dev = device(true);
    let err = signed(policy()).verify(&[], &check(&dev)).unwrap_err();
    assert!(matches!(err, PolicyError::NoRolloutKey), "{err}");
}

#[test]
fn a_policy_signed_by_another_key_is_refused() {
    let forged = Signed::sign(policy(), &TestKey::from_seed(9)).unwrap();
    let dev = device(true);
    let err = forged.verify(&keys(), &check(&dev)).unwrap_err();
    assert!(
        matches!(err, PolicyError::UntrustedSignature { keys: 1 }),
        "{err}"
    );
    assert!(err.to_string().contains("not signed by any"), "{err}");
}

#[test]
fn a_widened_ceiling_breaks_the_signature_before_anything_else_is_looked_at() {
    // What a compromised server would do: raise the ceiling (and move board and image)
    // in the JSON it forwards. The signature check comes first, so that is the error.
    let mut json: Value = serde_json::to_value(signed(policy())).unwrap();
    json["message"]["ceiling"] = 10_000.into();
    json["message"]["hardware_id"] = "other-board".into();
    let widened: Signed<RolloutPolicy> = serde_json::from_value(json).unwrap();
    let dev = device(false);
    let err = widened.verify(&keys(), &check(&dev)).unwrap_err();
    assert!(
        matches!(err, PolicyError::UntrustedSignature { .. }),
        "{err}"
    );
}

#[test]
fn every_field_is_covered_by_the_signature() {
    let original = signed(policy());
    let changes: [fn(&mut RolloutPolicy); 6] = [
        |p| p.rollout_id.push('x'),
        |p| p.hardware_id.push('x'),
        |p| p.image_sha256[31] ^= 1,
        |p| p.ceiling = BasisPoints::new(2501).unwrap(),
        |p| p.window = Some("mon-fri 09:00-17:01 UTC".parse().unwrap()),
        |p| p.expires += 1,
    ];
    for (i, change) in changes.iter().enumerate() {
        let mut message = original.message.clone();
        change(&mut message);
        let altered = Signed {
            message,
            signature: original.signature.clone(),
        };
        assert!(
            matches!(
                altered.verify_authentic(&keys()),
                Err(PolicyError::UntrustedSignature { .. })
            ),
            "change {i} kept the signature valid"
        );
    }
    let anytime = Signed {
        message: RolloutPolicy {
            window: None,
            ..original.message.clone()
        },
        signature: original.signature.clone(),
    };
    assert!(
        anytime.verify_authentic(&keys()).is_err(),
        "dropping the window"
    );
}

#[test]
fn a_malformed_signature_is_refused_as_such() {
    let mut bad = signed(policy());
    bad.signature = "zz".into();
    let dev = device(true);
    let err = bad.verify(&keys(), &check(&dev)).unwrap_err();
    assert!(
        matches!(err, PolicyError::Wire(WireError::MalformedSignature(_))),
        "{err}"
    );
}

#[test]
fn a_policy_for_another_board_is_refused() {
    let dev = device(true);
    let err = signed(policy())
        .verify(
            &keys(),
            &PolicyCheck {
                hardware_id: "acme-fridge",
                ..check(&dev)
            },
        )
        .unwrap_err();
    assert!(matches!(err, PolicyError::WrongHardware { .. }), "{err}");
    assert!(err.to_string().contains("acme-fridge"), "{err}");
}

#[test]
fn a_policy_for_another_image_is_refused() {
    let dev = device(true);
    let other = [0xCD; 32];
    let err = signed(policy())
        .verify(
            &keys(),
            &PolicyCheck {
                image_sha256: &other,
                ..check(&dev)
            },
        )
        .unwrap_err();
    assert!(matches!(err, PolicyError::WrongImage { .. }), "{err}");
    assert!(err.to_string().contains(&"cd".repeat(32)), "{err}");
}

#[test]
fn an_expired_policy_is_refused() {
    let dev = device(true);
    let policy = signed(policy());
    let at = |now| {
        policy
            .verify(&keys(), &PolicyCheck { now, ..check(&dev) })
            .map(|_| ())
    };
    at(NOON + 3599).unwrap();
    let err = at(NOON + 3600).unwrap_err();
    assert!(
        matches!(err, PolicyError::Expired { expires, now } if expires == now),
        "{err}"
    );
}

#[test]
fn a_device_past_the_signed_ceiling_refuses() {
    let dev = device(false);
    let err = signed(policy()).verify(&keys(), &check(&dev)).unwrap_err();
    let PolicyError::AboveCeiling { bucket: b, ceiling } = err else {
        panic!("{err}");
    };
    assert_eq!(b, bucket(&dev, "rol_1"));
    assert_eq!(ceiling.get(), 2500);
    assert!(b.get() >= 2500);
}

#[test]
fn the_ceiling_is_the_whole_fleet_at_100_percent_and_nobody_at_0() {
    let everyone = RolloutPolicy {
        ceiling: BasisPoints::FULL,
        ..policy()
    };
    let nobody = RolloutPolicy {
        ceiling: BasisPoints::ZERO,
        ..policy()
    };
    for dev in (0..200).map(|i| format!("dev_{i}")) {
        signed(everyone.clone())
            .verify(&keys(), &check(&dev))
            .unwrap();
        assert!(matches!(
            signed(nobody.clone()).verify(&keys(), &check(&dev)),
            Err(PolicyError::AboveCeiling { .. })
        ));
    }
}

#[test]
fn outside_the_window_the_device_refuses_and_says_the_local_time() {
    let dev = device(true);
    let saturday = NOON + 4 * 86_400;
    let check = PolicyCheck {
        now: saturday,
        ..check(&dev)
    };
    let week = RolloutPolicy {
        expires: NOON + 7 * 86_400,
        ..policy()
    };
    let err = signed(week.clone()).verify(&keys(), &check).unwrap_err();
    assert!(matches!(err, PolicyError::OutsideWindow { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("mon,tue,wed,thu,fri 09:00-17:00 UTC"),
        "{text}"
    );
    assert!(text.contains("Sat 2026-12-05 12:00"), "{text}");
    let anytime = signed(RolloutPolicy {
        window: None,
        ..week
    });
    anytime.verify(&keys(), &check).unwrap();
}

#[test]
fn unknown_fields_and_bad_values_are_refused_when_parsing() {
    let good: Value = serde_json::to_value(signed(policy())).unwrap();
    let mut cases = Vec::new();
    let mut extra = good.clone();
    extra["message"]["priority"] = 1.into();
    cases.push((extra, "unknown field"));
    let mut extra = good.clone();
    extra["message"]["window"]["note"] = "x".into();
    cases.push((extra, "unknown field"));
    let mut over = good.clone();
    over["message"]["ceiling"] = 10_001.into();
    cases.push((over, "at most 10000"));
    let mut zone = good.clone();
    zone["message"]["window"]["time_zone"] = "Nowhere/Land".into();
    cases.push((zone, "unknown time zone"));
    let mut hash = good.clone();
    hash["message"]["image_sha256"] = "ab".into();
    cases.push((hash, "64 hex digits"));
    for (json, expect) in cases {
        let err = serde_json::from_value::<Signed<RolloutPolicy>>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "{expect}: {err}");
    }
}

#[test]
fn an_over_long_rollout_id_is_refused_when_signing() {
    let long = RolloutPolicy {
        rollout_id: "r".repeat(65),
        ..policy()
    };
    assert!(matches!(
        Signed::sign(long, &TestKey::from_seed(7)),
        Err(WireError::TooLong {
            field: "rollout_id",
            max: 64,
            len: 65
        })
    ));
}
