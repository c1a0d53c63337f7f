//! Pins the exact bytes that are signed, so an accidental change of the canonical encoding
//! (field order, widths, tags) fails here instead of splitting server and agent in the
//! field. A deliberate change is a new format version with a new tag.

use ed25519_dalek::{Signer as _, SigningKey};
use otter_boot::Slot;
use otter_boot::image::Version;

use super::*;
use crate::rollout::BasisPoints;
use crate::signer::{KeyError, Signer};

struct TestKey(SigningKey);

impl Signer for TestKey {
    fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], KeyError> {
        Ok(self.0.sign(message).to_bytes())
    }
}

fn small_checkin() -> CheckIn {
    CheckIn {
        device_id: "d1".into(),
        counter: 1,
        timestamp: 2,
        current_version: Version::new(1, 2, 3),
        image_sha256: [0x11; 32],
        slots: SlotReport {
            running: Slot::A,
            confirmed: Slot::B,
            trial: Some(TrialReport {
                slot: Slot::B,
                version: Version::new(1, 3, 0),
                attempts_left: 3,
            }),
        },
        last_outcome: BootOutcome::FellBack { reason: "x".into() },
    }
}

#[test]
fn canonical_bytes_of_a_checkin_are_pinned() {
    let message = small_checkin();
    let expected = [
        "6f747465722f636865636b696e2f763100", // "otter/checkin/v1\0"
        "02000000",
        "6431",                     // device_id "d1"
        "0100000000000000",         // counter 1
        "0200000000000000",         // timestamp 2
        "010000000200000003000000", // version 1.2.3
        &"11".repeat(32),           // image_sha256
        "00",                       // running A
        "01",                       // confirmed B
        "01",                       // trial present
        "01",                       // trial slot B
        "010000000300000000000000", // trial version 1.3.0
        "03",                       // attempts_left
        "04",                       // FellBack
        "01000000",
        "78", // reason "x"
    ]
    .concat();
    assert_eq!(hex::encode(message.canonical_bytes().unwrap()), expected);
}

fn small_report() -> Report {
    Report {
        device_id: "d1".into(),
        counter: 3,
        timestamp: 0x0102_0304_0506_0708,
        event_seq: 0x11,
        event: Event::Failed {
            stage: "s".into(),
            reason: "é".into(),
        },
    }
}

#[test]
fn canonical_bytes_of_a_report_are_pinned() {
    let message = small_report();
    let expected = [
        "6f747465722f7265706f72742f763300", // "otter/report/v3\0"
        "02000000",
        "6431",             // device_id "d1"
        "0300000000000000", // counter 3
        "0807060504030201", // timestamp, little-endian
        "1100000000000000", // event_seq 17
        "04",               // Failed
        "01000000",
        "73", // stage "s"
        "02000000",
        "c3a9", // reason "é": length in bytes, UTF-8
    ]
    .concat();
    assert_eq!(hex::encode(message.canonical_bytes().unwrap()), expected);

    let tail_of = |event: Event| {
        let bytes = Report {
            event,
            ..message.clone()
        }
        .canonical_bytes()
        .unwrap();
        // Everything after device id, counter, timestamp and event_seq.
        hex::encode(&bytes[Report::TAG.len() + 4 + 2 + 3 * 8..])
    };
    let downloading = Event::Downloading {
        target: "t".into(),
        bytes: 5,
        total: 6,
    };
    // Tag 0, "t", 5, 6.
    assert_eq!(
        tail_of(downloading),
        "00010000007405000000000000000600000000000000"
    );
    let v = Version::new(1, 3, 0);
    let version = "010000000300000000000000";
    let booted = Event::Booted {
        version: v,
        image_sha256: [0x44; 32],
    };
    // Tag 2, version 1.3.0, the image's hash.
    assert_eq!(tail_of(booted), ["02", version, &"44".repeat(32)].concat());
    let healthy = Event::Healthy {
        version: v,
        image_sha256: [0x55; 32],
    };
    assert_eq!(tail_of(healthy), ["03", version, &"55".repeat(32)].concat());
}

fn small_assignment() -> Assignment {
    Assignment {
        device_id: "d1".into(),
        counter: 1,
        expires: 9,
        target: Some(AssignedTarget {
            name: "fw".into(),
            version: Version::new(1, 3, 0),
            sha256: [0x22; 32],
            length: 7,
            policy: None,
        }),
    }
}

#[test]
fn canonical_bytes_of_an_assignment_are_pinned() {
    let message = small_assignment();
    let expected = [
        "6f747465722f61737369676e6d656e742f763200", // "otter/assignment/v2\0"
        "02000000",
        "6431",             // device_id "d1"
        "0100000000000000", // counter 1
        "0900000000000000", // expires 9
        "01",               // target present
        "02000000",
        "6677",                     // name "fw"
        "010000000300000000000000", // version 1.3.0
        &"22".repeat(32),           // sha256
        "0700000000000000",         // length 7
        "00",                       // no policy
    ]
    .concat();
    assert_eq!(hex::encode(message.canonical_bytes().unwrap()), expected);

    // With a policy: present, its own canonical bytes (from its tag on, as pinned below),
    // then its signature as 64 raw bytes (the hex is decoded, so its case does not matter).
    let mut with_policy = message.clone();
    if let Some(target) = with_policy.target.as_mut() {
        target.policy = Some(Signed {
            message: small_policy(),
            signature: "5A".repeat(64),
        });
    }
    let expected_with = [
        &expected[..expected.len() - 2],
        "01", // policy present
        &pinned_policy_hex(),
        &"5a".repeat(64), // signature
    ]
    .concat();
    assert_eq!(
        hex::encode(with_policy.canonical_bytes().unwrap()),
        expected_with
    );
    // A policy signature that is not 64 bytes can not be encoded, so it can not be signed
    // over or verified.
    if let Some(Some(policy)) = with_policy.target.as_mut().map(|t| t.policy.as_mut()) {
        policy.signature = "5a".repeat(63);
    }
    assert!(matches!(
        with_policy.canonical_bytes(),
        Err(WireError::MalformedSignature(_))
    ));

    let none = Assignment {
        target: None,
        ..message
    };
    assert!(hex::encode(none.canonical_bytes().unwrap()).ends_with("090000000000000000"));
}

fn small_policy() -> RolloutPolicy {
    RolloutPolicy {
        rollout_id: "r1".into(),
        hardware_id: "hw".into(),
        image_sha256: [0x33; 32],
        ceiling: BasisPoints::new(1000).unwrap(),
        window: Some("mon,fri 22:00-02:00 UTC".parse().unwrap()),
        expires: 9,
    }
}

/// The canonical bytes of [`small_policy`], hex.
fn pinned_policy_hex() -> String {
    [
        "6f747465722f726f6c6c6f75742f763100", // "otter/rollout/v1\0"
        "02000000",
        "7231", // rollout_id "r1"
        "02000000",
        "6877",           // hardware_id "hw"
        &"33".repeat(32), // image_sha256
        "e803",           // ceiling 1000 basis points
        "01",             // window present
        "11",             // days: Monday (bit 0) and Friday (bit 4)
        "2805",           // start 22:00 = 1320 minutes
        "7800",           // end 02:00 = 120 minutes
        "03000000",
        "555443",           // time_zone "UTC"
        "0900000000000000", // expires 9
    ]
    .concat()
}

#[test]
fn canonical_bytes_of_a_rollout_policy_are_pinned() {
    let message = small_policy();
    assert_eq!(
        hex::encode(message.canonical_bytes().unwrap()),
        pinned_policy_hex()
    );

    let anytime = RolloutPolicy {
        window: None,
        ..message
    };
    assert!(hex::encode(anytime.canonical_bytes().unwrap()).ends_with("e803000900000000000000"));
}

#[test]
fn each_message_type_has_its_own_domain_tag() {
    let tags = [
        CheckIn::TAG,
        Report::TAG,
        Assignment::TAG,
        RolloutPolicy::TAG,
    ];
    assert_eq!(tags[0], b"otter/checkin/v1\0");
    assert_eq!(tags[1], b"otter/report/v3\0");
    assert_eq!(tags[2], b"otter/assignment/v2\0");
    assert_eq!(tags[3], b"otter/rollout/v1\0");
    for (i, a) in tags.iter().enumerate() {
        for (j, b) in tags.iter().enumerate() {
            if i != j {
                assert!(!a.starts_with(b), "tag {i} starts with tag {j}");
            }
        }
    }
    assert!(
        small_checkin()
            .canonical_bytes()
            .unwrap()
            .starts_with(CheckIn::TAG)
    );
    assert!(
        small_report()
            .canonical_bytes()
            .unwrap()
            .starts_with(Report::TAG)
    );
    assert!(
        small_assignment()
            .canonical_bytes()
            .unwrap()
            .starts_with(Assignment::TAG)
    );
    assert!(
        small_policy()
            .canonical_bytes()
            .unwrap()
            .starts_with(RolloutPolicy::TAG)
    );
}

/// A report built so that its fields encode to exactly the bytes of a check-in's fields:
/// only the domain tag tells them apart, and it is enough.
#[test]
fn a_checkin_signature_does_not_verify_as_a_report_with_the_same_field_bytes() {
    // After device id, counter and timestamp (shared), the check-in continues with the
    // version: major and minor form the report's event_seq; patch's low byte is the
    // report's `Failed` tag (4) and its upper three bytes plus the digest's first byte the
    // stage length (0, so stage = ""); digest bytes 1..5 form the reason length (31), and
    // the reason is the rest of the digest (27 bytes) plus slots and outcome (4 bytes).
    let mut digest = [b'a'; 32];
    digest[..5].copy_from_slice(&[0, 31, 0, 0, 0]);
    let sneaky = CheckIn {
        current_version: Version::new(7, 9, 4),
        image_sha256: digest,
        slots: SlotReport {
            running: Slot::A,
            confirmed: Slot::A,
            trial: None,
        },
        last_outcome: BootOutcome::None,
        ..small_checkin()
    };
    let reason = format!("{}\0\0\0\0", "a".repeat(27));
    assert_eq!(reason.len(), 31);
    let forged = Report {
        device_id: sneaky.device_id.clone(),
        counter: sneaky.counter,
        timestamp: sneaky.timestamp,
        event_seq: 7 | (9 << 32),
        event: Event::Failed {
            stage: String::new(),
            reason,
        },
    };
    let checkin_bytes = sneaky.canonical_bytes().unwrap();
    let report_bytes = forged.canonical_bytes().unwrap();
    assert_eq!(
        checkin_bytes[CheckIn::TAG.len()..],
        report_bytes[Report::TAG.len()..],
        "the construction must make the field bytes equal"
    );

    let key = TestKey(SigningKey::from_bytes(&[1; 32]));
    let signed_checkin = Signed::sign(sneaky, &key).unwrap();
    let replayed_as_report = Signed {
        message: forged,
        signature: signed_checkin.signature.clone(),
    };
    signed_checkin
        .verify(&key.public_key(), "d1", None, 2, 0)
        .unwrap();
    assert!(matches!(
        replayed_as_report.verify(&key.public_key(), "d1", None, 2, 0),
        Err(WireError::BadSignature)
    ));
}
