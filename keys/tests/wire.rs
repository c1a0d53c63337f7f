//! The signed wire messages through the public API: what verifies after a trip through
//! JSON, and what is refused and why. (The exact signed bytes are pinned in
//! `src/wire/golden.rs`.)

use ed25519_dalek::{Signer as _, SigningKey};
use otter_boot::Slot;
use otter_boot::image::Version;
use otter_keys::signer::{KeyError, Signer};
use otter_keys::wire::{
    AssignedTarget, Assignment, BootOutcome, CheckIn, Event, Report, RolloutPolicy, Signed,
    SlotReport, TrialReport, WireError, WireMessage,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const NOW: u64 = 1_700_000_000;
const SKEW: u64 = 300;

/// A key in memory, for tests.
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

/// A signer whose backend is down.
struct BrokenSigner;

impl Signer for BrokenSigner {
    fn public_key(&self) -> [u8; 32] {
        [0; 32]
    }

    fn sign(&self, _: &[u8]) -> Result<[u8; 64], KeyError> {
        Err(KeyError::Sign("token removed".into()))
    }
}

fn device_key() -> TestKey {
    TestKey::from_seed(1)
}

fn director_key() -> TestKey {
    TestKey::from_seed(2)
}

fn rollout_key() -> TestKey {
    TestKey::from_seed(3)
}

/// The rollout policy the assignment carries, signed with the rollout key.
fn policy() -> Signed<RolloutPolicy> {
    let policy = RolloutPolicy {
        rollout_id: "rol_1".into(),
        hardware_id: "acme-thermo".into(),
        image_sha256: [0xCD; 32],
        ceiling: "25%".parse().unwrap(),
        window: None,
        expires: NOW + 86_400,
    };
    Signed::sign(policy, &rollout_key()).unwrap()
}

fn checkin() -> CheckIn {
    CheckIn {
        device_id: "dev-0042".into(),
        counter: 17,
        timestamp: NOW,
        current_version: Version::new(1, 4, 0),
        image_sha256: [0xAB; 32],
        slots: SlotReport {
            running: Slot::A,
            confirmed: Slot::A,
            trial: Some(TrialReport {
                slot: Slot::B,
                version: Version::new(1, 5, 0),
                attempts_left: 2,
            }),
        },
        last_outcome: BootOutcome::TrialRejected {
            version: Version::new(1, 3, 9),
            reason: "signature".into(),
        },
    }
}

fn report() -> Report {
    Report {
        device_id: "dev-0042".into(),
        counter: 18,
        timestamp: NOW + 5,
        event_seq: 4,
        event: Event::Downloading {
            target: "fw-1.5.0.bin".into(),
            bytes: 4096,
            total: 65536,
        },
    }
}

fn assignment() -> Assignment {
    Assignment {
        device_id: "dev-0042".into(),
        counter: 17,
        expires: NOW + 600,
        target: Some(AssignedTarget {
            name: "fw-1.5.0.bin".into(),
            version: Version::new(1, 5, 0),
            sha256: [0xCD; 32],
            length: 65536,
            policy: Some(policy()),
        }),
    }
}

fn verify_checkin(signed: &Signed<CheckIn>) -> Result<&CheckIn, WireError> {
    signed.verify(&device_key().public_key(), "dev-0042", Some(16), NOW, SKEW)
}

fn verify_report(signed: &Signed<Report>) -> Result<&Report, WireError> {
    signed.verify(&device_key().public_key(), "dev-0042", Some(17), NOW, SKEW)
}

fn verify_assignment(signed: &Signed<Assignment>) -> Result<&Assignment, WireError> {
    signed.verify(&director_key().public_key(), "dev-0042", 17, NOW)
}

/// Sends `signed` through JSON text and back, as the HTTP API does.
fn over_the_wire<T: Serialize + DeserializeOwned>(signed: &Signed<T>) -> Signed<T> {
    let text = serde_json::to_string(signed).unwrap();
    serde_json::from_str(&text).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Round trips

#[test]
fn a_checkin_survives_sign_json_parse_verify() {
    let signed = Signed::sign(checkin(), &device_key()).unwrap();
    let received = over_the_wire(&signed);
    assert_eq!(verify_checkin(&received).unwrap(), &checkin());
}

#[test]
fn a_report_of_every_event_survives_sign_json_parse_verify() {
    let v = Version::new(2, 0, 1);
    for event in [
        report().event,
        Event::Installed { version: v },
        Event::Booted {
            version: v,
            image_sha256: [0x01; 32],
        },
        Event::Healthy {
            version: v,
            image_sha256: [0x02; 32],
        },
        Event::Failed {
            stage: "apply".into(),
            reason: "patch does not match base".into(),
        },
        Event::RolledBack { from: v },
    ] {
        let message = Report { event, ..report() };
        let signed = Signed::sign(message.clone(), &device_key()).unwrap();
        assert_eq!(verify_report(&over_the_wire(&signed)).unwrap(), &message);
    }
}

#[test]
fn a_checkin_with_every_boot_outcome_survives_the_wire() {
    let v = Version::new(3, 1, 4);
    for outcome in [
        BootOutcome::None,
        BootOutcome::Confirmed { version: v },
        BootOutcome::RolledBack { from: v },
        BootOutcome::FellBack {
            reason: "payload-hash".into(),
        },
    ] {
        let mut message = checkin();
        message.last_outcome = outcome;
        message.slots.trial = None;
        let signed = Signed::sign(message.clone(), &device_key()).unwrap();
        assert_eq!(verify_checkin(&over_the_wire(&signed)).unwrap(), &message);
    }
}

#[test]
fn an_assignment_with_and_without_target_or_policy_survives_the_wire() {
    let without_policy = assignment()
        .target
        .map(|t| AssignedTarget { policy: None, ..t });
    for target in [assignment().target, without_policy, None] {
        let message = Assignment {
            target,
            ..assignment()
        };
        let signed = Signed::sign(message.clone(), &director_key()).unwrap();
        assert_eq!(
            verify_assignment(&over_the_wire(&signed)).unwrap(),
            &message
        );
    }
}

#[test]
fn json_shows_versions_slots_and_digests_as_readable_strings() {
    let signed = Signed::sign(checkin(), &device_key()).unwrap();
    let json = serde_json::to_value(&signed).unwrap();
    let m = &json["message"];
    assert_eq!(m["current_version"], "1.4.0");
    assert_eq!(m["image_sha256"], "ab".repeat(32));
    assert_eq!(m["slots"]["running"], "A");
    assert_eq!(m["slots"]["trial"]["slot"], "B");
    assert_eq!(m["slots"]["trial"]["version"], "1.5.0");
    assert_eq!(
        m["last_outcome"],
        serde_json::json!({"kind": "trial_rejected", "version": "1.3.9", "reason": "signature"})
    );
    let sig = json["signature"].as_str().unwrap();
    assert_eq!(sig.len(), 128);
    assert!(
        sig.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );

    let report = serde_json::to_value(Signed::sign(report(), &device_key()).unwrap()).unwrap();
    assert_eq!(
        report["message"]["event"],
        serde_json::json!({"kind": "downloading", "target": "fw-1.5.0.bin", "bytes": 4096, "total": 65536})
    );
    let assignment =
        serde_json::to_value(Signed::sign(assignment(), &director_key()).unwrap()).unwrap();
    let policy = serde_json::to_value(policy()).unwrap();
    assert_eq!(
        assignment["message"]["target"],
        serde_json::json!({"name": "fw-1.5.0.bin", "version": "1.5.0", "sha256": "cd".repeat(32), "length": 65536, "policy": policy})
    );
    assert_eq!(
        policy["message"]["rollout_id"], "rol_1",
        "the policy travels as its own signed envelope: {policy}"
    );
    assert_eq!(policy["signature"].as_str().unwrap().len(), 128);
    let mut bare = self::assignment();
    bare.target.as_mut().unwrap().policy = None;
    let bare = serde_json::to_value(Signed::sign(bare, &director_key()).unwrap()).unwrap();
    assert_eq!(bare["message"]["target"]["policy"], Value::Null);
    let healthy = Report {
        event: Event::Healthy {
            version: Version::new(1, 5, 0),
            image_sha256: [0xCD; 32],
        },
        ..self::report()
    };
    let healthy = serde_json::to_value(Signed::sign(healthy, &device_key()).unwrap()).unwrap();
    assert_eq!(
        healthy["message"]["event"],
        serde_json::json!({"kind": "healthy", "version": "1.5.0", "image_sha256": "cd".repeat(32)})
    );
    assert_eq!(
        serde_json::to_value(BootOutcome::None).unwrap(),
        serde_json::json!({"kind": "none"})
    );
}

// ---------------------------------------------------------------------------------------------
// JSON form does not matter, content does

/// Writes `value` as JSON with every object's keys in reverse order, odd whitespace and all
/// non-ASCII characters as `\u` escapes: a different text for the same message.
fn reshuffled(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .rev()
                .map(|(k, v)| format!("\n  {} :\t{}", escaped(k), reshuffled(v)))
                .collect();
            format!("{{ {} \n}}", fields.join(" ,"))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(reshuffled).collect();
            format!("[ {} ]", items.join(" , "))
        }
        Value::String(s) => escaped(s),
        other => other.to_string(),
    }
}

fn escaped(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

#[test]
fn key_order_whitespace_and_escapes_do_not_affect_verification() {
    let mut message = checkin();
    message.device_id = "gerät-ü-7".into();
    message.last_outcome = BootOutcome::FellBack {
        reason: "flash \"bank\" ✓".into(),
    };
    let signed = Signed::sign(message.clone(), &device_key()).unwrap();
    let normal = serde_json::to_string(&signed).unwrap();
    let odd = reshuffled(&serde_json::to_value(&signed).unwrap());
    assert_ne!(normal, odd);
    assert!(odd.contains("\\u00e4"), "{odd}");
    let parsed: Signed<CheckIn> = serde_json::from_str(&odd).unwrap();
    assert_eq!(
        parsed
            .verify(&device_key().public_key(), "gerät-ü-7", None, NOW, SKEW)
            .unwrap(),
        &message
    );

    let signed = Signed::sign(assignment(), &director_key()).unwrap();
    let odd = reshuffled(&serde_json::to_value(&signed).unwrap());
    let parsed: Signed<Assignment> = serde_json::from_str(&odd).unwrap();
    verify_assignment(&parsed).unwrap();

    let signed = Signed::sign(report(), &device_key()).unwrap();
    let odd = reshuffled(&serde_json::to_value(&signed).unwrap());
    let parsed: Signed<Report> = serde_json::from_str(&odd).unwrap();
    verify_report(&parsed).unwrap();
}

#[test]
fn uppercase_hex_in_signature_and_digest_still_verifies() {
    let signed = Signed::sign(checkin(), &device_key()).unwrap();
    let mut json = serde_json::to_value(&signed).unwrap();
    json["signature"] = Value::String(signed.signature.to_uppercase());
    json["message"]["image_sha256"] = Value::String("AB".repeat(32));
    let parsed: Signed<CheckIn> = serde_json::from_value(json).unwrap();
    verify_checkin(&parsed).unwrap();
}

#[test]
fn any_field_changed_after_signing_breaks_the_signature() {
    let signed = Signed::sign(checkin(), &device_key()).unwrap();
    let tamperings: Vec<fn(&mut CheckIn)> = vec![
        |m| m.counter += 1,
        |m| m.timestamp -= 1,
        |m| m.current_version = Version::new(1, 4, 1),
        |m| m.image_sha256[31] ^= 1,
        |m| m.slots.running = Slot::B,
        |m| m.slots.confirmed = Slot::B,
        |m| m.slots.trial = None,
        |m| {
            if let Some(t) = m.slots.trial.as_mut() {
                t.attempts_left = 3;
            }
        },
        |m| m.last_outcome = BootOutcome::None,
        |m| {
            m.last_outcome = BootOutcome::TrialRejected {
                version: Version::new(1, 3, 9),
                reason: "signaturE".into(),
            }
        },
    ];
    for (i, tamper) in tamperings.into_iter().enumerate() {
        let mut altered = signed.clone();
        tamper(&mut altered.message);
        assert_ne!(altered.message, checkin(), "tampering {i} changed nothing");
        assert!(
            matches!(verify_checkin(&altered), Err(WireError::BadSignature)),
            "tampering {i} verified"
        );
    }

    let mut altered = Signed::sign(report(), &device_key()).unwrap();
    altered.message.event = Event::Downloading {
        target: "fw-1.5.0.bin".into(),
        bytes: 65536,
        total: 65536,
    };
    assert!(matches!(
        verify_report(&altered),
        Err(WireError::BadSignature)
    ));

    let signed = Signed::sign(assignment(), &director_key()).unwrap();
    let tamperings: Vec<fn(&mut Assignment)> = vec![
        |m| m.expires += 3600,
        |m| m.target = None,
        |m| {
            if let Some(t) = m.target.as_mut() {
                t.sha256[0] ^= 0x80;
            }
        },
        |m| {
            if let Some(t) = m.target.as_mut() {
                t.length += 1;
            }
        },
        |m| {
            if let Some(t) = m.target.as_mut() {
                t.version = Version::new(9, 9, 9);
            }
        },
        |m| {
            if let Some(t) = m.target.as_mut() {
                t.name = "evil.bin".into();
            }
        },
        // The rollout policy: stripped, swapped for another one (itself genuine), or given
        // another signature.
        |m| {
            if let Some(t) = m.target.as_mut() {
                t.policy = None;
            }
        },
        |m| {
            if let Some(t) = m.target.as_mut() {
                let mut wider = policy().message;
                wider.ceiling = "100%".parse().unwrap();
                t.policy = Some(Signed::sign(wider, &rollout_key()).unwrap());
            }
        },
        |m| {
            if let Some(Some(p)) = m.target.as_mut().map(|t| t.policy.as_mut()) {
                p.signature = Signed::sign(p.message.clone(), &director_key())
                    .unwrap()
                    .signature;
            }
        },
    ];
    for (i, tamper) in tamperings.into_iter().enumerate() {
        let mut altered = signed.clone();
        tamper(&mut altered.message);
        assert!(
            matches!(verify_assignment(&altered), Err(WireError::BadSignature)),
            "assignment tampering {i} verified"
        );
    }
}

#[test]
fn a_field_changed_in_the_json_text_breaks_the_signature() {
    let signed = Signed::sign(assignment(), &director_key()).unwrap();
    let text = serde_json::to_string(&signed).unwrap();
    let altered = text.replace("\"length\":65536", "\"length\":65537");
    assert_ne!(text, altered);
    let parsed: Signed<Assignment> = serde_json::from_str(&altered).unwrap();
    assert!(matches!(
        verify_assignment(&parsed),
        Err(WireError::BadSignature)
    ));
}

// ---------------------------------------------------------------------------------------------
// Nothing unsigned rides along

fn assert_refused<T: DeserializeOwned + std::fmt::Debug>(json: &Value, what: &str) {
    let err = serde_json::from_value::<Signed<T>>(json.clone())
        .expect_err(&format!("an unknown field {what} was accepted"));
    assert!(err.to_string().contains("unknown field"), "{what}: {err}");
}

#[test]
fn unknown_json_fields_are_refused_at_every_level() {
    let signed = serde_json::to_value(Signed::sign(checkin(), &device_key()).unwrap()).unwrap();
    for path in [
        "",
        "/message",
        "/message/slots",
        "/message/slots/trial",
        "/message/last_outcome",
    ] {
        let mut json = signed.clone();
        json.pointer_mut(path)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert("force".into(), Value::Bool(true));
        assert_refused::<CheckIn>(&json, path);
    }

    let signed = serde_json::to_value(Signed::sign(report(), &device_key()).unwrap()).unwrap();
    let mut json = signed.clone();
    json["message"]["event"]["priority"] = Value::from(1);
    assert_refused::<Report>(&json, "in event");

    let signed =
        serde_json::to_value(Signed::sign(assignment(), &director_key()).unwrap()).unwrap();
    for path in [
        "/message",
        "/message/target",
        "/message/target/policy",
        "/message/target/policy/message",
    ] {
        let mut json = signed.clone();
        json.pointer_mut(path)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert("url".into(), Value::from("http://evil"));
        assert_refused::<Assignment>(&json, path);
    }

    let mut none = serde_json::to_value(
        Signed::sign(
            CheckIn {
                last_outcome: BootOutcome::None,
                ..checkin()
            },
            &device_key(),
        )
        .unwrap(),
    )
    .unwrap();
    none["message"]["last_outcome"]["reason"] = Value::from("extra");
    assert_refused::<CheckIn>(&none, "in a unit outcome");
}

#[test]
fn malformed_json_values_are_refused() {
    let signed = serde_json::to_value(Signed::sign(checkin(), &device_key()).unwrap()).unwrap();
    let cases: [(&str, Value); 5] = [
        ("/message/current_version", Value::from("01.4.0")),
        ("/message/current_version", Value::from("1.4")),
        ("/message/image_sha256", Value::from("ab".repeat(31))),
        ("/message/slots/running", Value::from("C")),
        ("/message/last_outcome/kind", Value::from("exploded")),
    ];
    for (path, bad) in cases {
        let mut json = signed.clone();
        *json.pointer_mut(path).unwrap() = bad.clone();
        assert!(
            serde_json::from_value::<Signed<CheckIn>>(json).is_err(),
            "{path} = {bad} accepted"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Who, when, and in which order

#[test]
fn a_message_for_another_device_is_refused() {
    let signed = Signed::sign(checkin(), &device_key()).unwrap();
    let err = signed
        .verify(&device_key().public_key(), "dev-0043", None, NOW, SKEW)
        .unwrap_err();
    assert!(
        matches!(&err, WireError::WrongDevice { expected, found } if expected == "dev-0043" && found == "dev-0042"),
        "{err:?}"
    );
    assert!(err.to_string().contains("dev-0043") && err.to_string().contains("dev-0042"));

    let signed = Signed::sign(report(), &device_key()).unwrap();
    assert!(matches!(
        signed.verify(&device_key().public_key(), "dev-0043", None, NOW, SKEW),
        Err(WireError::WrongDevice { .. })
    ));

    let signed = Signed::sign(assignment(), &director_key()).unwrap();
    assert!(matches!(
        signed.verify(&director_key().public_key(), "dev-0043", 17, NOW),
        Err(WireError::WrongDevice { .. })
    ));
}

#[test]
fn a_replayed_or_older_counter_is_refused() {
    let key = device_key().public_key();
    let signed = Signed::sign(checkin(), &device_key()).unwrap(); // counter 17
    signed.verify(&key, "dev-0042", None, NOW, SKEW).unwrap();
    signed
        .verify(&key, "dev-0042", Some(16), NOW, SKEW)
        .unwrap();
    for last in [17, 18, u64::MAX] {
        let err = signed.verify(&key, "dev-0042", Some(last), NOW, SKEW);
        assert!(
            matches!(err, Err(WireError::StaleCounter { last: l, found: 17 }) if l == last),
            "last {last}: {err:?}"
        );
    }

    let signed = Signed::sign(report(), &device_key()).unwrap(); // counter 18
    signed
        .verify(&key, "dev-0042", Some(17), NOW, SKEW)
        .unwrap();
    assert!(matches!(
        signed.verify(&key, "dev-0042", Some(18), NOW, SKEW),
        Err(WireError::StaleCounter {
            last: 18,
            found: 18
        })
    ));
    assert!(matches!(
        signed.verify(&key, "dev-0042", Some(40), NOW, SKEW),
        Err(WireError::StaleCounter {
            last: 40,
            found: 18
        })
    ));
}

#[test]
fn the_first_message_of_a_device_may_carry_counter_zero() {
    let message = CheckIn {
        counter: 0,
        ..checkin()
    };
    let signed = Signed::sign(message, &device_key()).unwrap();
    signed
        .verify(&device_key().public_key(), "dev-0042", None, NOW, SKEW)
        .unwrap();
}

#[test]
fn an_assignment_for_another_checkin_is_refused() {
    let signed = Signed::sign(assignment(), &director_key()).unwrap(); // echoes 17
    let key = director_key().public_key();
    for mine in [16, 18] {
        let err = signed.verify(&key, "dev-0042", mine, NOW);
        assert!(
            matches!(err, Err(WireError::CounterMismatch { expected: e, found: 17 }) if e == mine),
            "{err:?}"
        );
    }
}

#[test]
fn an_expired_assignment_is_refused() {
    let signed = Signed::sign(assignment(), &director_key()).unwrap(); // expires NOW + 600
    let key = director_key().public_key();
    signed.verify(&key, "dev-0042", 17, NOW + 599).unwrap();
    for now in [NOW + 600, NOW + 601, u64::MAX] {
        let err = signed.verify(&key, "dev-0042", 17, now);
        assert!(
            matches!(err, Err(WireError::Expired { expires, now: n }) if expires == NOW + 600 && n == now),
            "{err:?}"
        );
    }
}

#[test]
fn a_timestamp_outside_the_skew_window_is_refused() {
    let key = device_key().public_key();
    for (timestamp, ok) in [
        (NOW - SKEW, true),
        (NOW + SKEW, true),
        (NOW - SKEW - 1, false),
        (NOW + SKEW + 1, false),
        (0, false),
    ] {
        let message = CheckIn {
            timestamp,
            ..checkin()
        };
        let signed = Signed::sign(message, &device_key()).unwrap();
        let result = signed.verify(&key, "dev-0042", None, NOW, SKEW);
        if ok {
            result.unwrap();
        } else {
            assert!(
                matches!(result, Err(WireError::ClockSkew { timestamp: t, now: NOW, max_skew: SKEW }) if t == timestamp),
                "{timestamp}: {result:?}"
            );
        }

        let message = Report {
            timestamp,
            ..report()
        };
        let signed = Signed::sign(message, &device_key()).unwrap();
        let result = signed.verify(&key, "dev-0042", None, NOW, SKEW);
        assert_eq!(
            result.is_ok(),
            ok,
            "report at {timestamp}: {:?}",
            result.err()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Keys and signatures

#[test]
fn a_signature_by_another_key_is_refused() {
    let intruder = TestKey::from_seed(9);
    let signed = Signed::sign(checkin(), &intruder).unwrap();
    assert!(matches!(
        verify_checkin(&signed),
        Err(WireError::BadSignature)
    ));
    let signed = Signed::sign(report(), &intruder).unwrap();
    assert!(matches!(
        verify_report(&signed),
        Err(WireError::BadSignature)
    ));
    // A device key can not stand in for the director key.
    let signed = Signed::sign(assignment(), &device_key()).unwrap();
    assert!(matches!(
        verify_assignment(&signed),
        Err(WireError::BadSignature)
    ));
}

#[test]
fn a_malformed_signature_is_refused_as_such() {
    let good = Signed::sign(checkin(), &device_key()).unwrap();
    for bad in [
        String::new(),
        "00".into(),
        good.signature[..126].to_string(),
        format!("{}00", good.signature),
        format!("{}zz", &good.signature[..126]),
        good.signature[..127].to_string(),
    ] {
        let signed = Signed {
            signature: bad.clone(),
            ..good.clone()
        };
        let err = verify_checkin(&signed);
        assert!(
            matches!(err, Err(WireError::MalformedSignature(_))),
            "{bad:?}: {err:?}"
        );
    }
    // Well-formed but wrong: a bad signature, not a malformed one.
    let signed = Signed {
        signature: "00".repeat(64),
        ..good
    };
    assert!(matches!(
        verify_checkin(&signed),
        Err(WireError::BadSignature)
    ));
}

#[test]
fn a_public_key_that_is_no_usable_point_is_refused() {
    let signed = Signed::sign(checkin(), &device_key()).unwrap();
    // y = 2 is not the y coordinate of any point on the curve.
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    // y = 1 is the neutral element: a weak key that "verifies" forged signatures.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    for key in [not_a_point, identity] {
        let err = signed.verify(&key, "dev-0042", None, NOW, SKEW);
        assert!(matches!(err, Err(WireError::BadKey)), "{key:?}: {err:?}");
    }
}

#[test]
fn a_failing_signer_is_reported() {
    let err = Signed::sign(checkin(), &BrokenSigner).unwrap_err();
    assert!(matches!(err, WireError::Sign(KeyError::Sign(_))), "{err:?}");
    assert!(err.to_string().contains("token removed"));
}

// ---------------------------------------------------------------------------------------------
// Length limits

#[test]
fn over_long_strings_are_refused_when_signing() {
    let key = device_key();
    let at_limit = CheckIn {
        device_id: "d".repeat(128),
        ..checkin()
    };
    Signed::sign(at_limit, &key).unwrap();

    let long_id = CheckIn {
        device_id: "d".repeat(129),
        ..checkin()
    };
    let long_reason = CheckIn {
        last_outcome: BootOutcome::FellBack {
            reason: "r".repeat(1025),
        },
        ..checkin()
    };
    for (message, field, max) in [
        (long_id, "device_id", 128),
        (long_reason, "last_outcome.reason", 1024),
    ] {
        let result = Signed::sign(message, &key);
        assert!(
            matches!(&result, Err(WireError::TooLong { field: f, max: m, len }) if *f == field && *m == max && *len == max + 1),
            "{field}: {result:?}"
        );
    }

    let report_err = |event| {
        Signed::sign(Report { event, ..report() }, &key)
            .err()
            .map(|e| e.to_string())
    };
    let stage = report_err(Event::Failed {
        stage: "s".repeat(65),
        reason: String::new(),
    })
    .unwrap();
    assert!(
        stage.contains("event.stage") && stage.contains("64"),
        "{stage}"
    );
    let reason = report_err(Event::Failed {
        stage: String::new(),
        reason: "r".repeat(1025),
    })
    .unwrap();
    assert!(reason.contains("event.reason"), "{reason}");
    let target = report_err(Event::Downloading {
        target: "t".repeat(257),
        bytes: 0,
        total: 0,
    })
    .unwrap();
    assert!(target.contains("event.target"), "{target}");

    let mut long = assignment();
    if let Some(t) = long.target.as_mut() {
        t.name = "n".repeat(257);
    }
    assert!(matches!(
        Signed::sign(long, &director_key()),
        Err(WireError::TooLong {
            field: "target.name",
            max: 256,
            len: 257
        })
    ));
}

#[test]
fn over_long_strings_are_refused_when_verifying() {
    // A peer that does not check limits: its signature is valid, its message still refused.
    let mut message = checkin();
    message.device_id = "d".repeat(200);
    let bytes = {
        // Build the canonical bytes by hand, as a careless peer would.
        let mut short = message.clone();
        short.device_id = String::new();
        let tail = short.canonical_bytes().unwrap()[CheckIn::TAG.len() + 4..].to_vec();
        let mut b = CheckIn::TAG.to_vec();
        b.extend(200u32.to_le_bytes());
        b.extend(message.device_id.as_bytes());
        b.extend(tail);
        b
    };
    let signed = Signed {
        signature: hex::encode(device_key().sign(&bytes).unwrap()),
        message: message.clone(),
    };
    let err = signed.verify(
        &device_key().public_key(),
        &message.device_id,
        None,
        NOW,
        SKEW,
    );
    assert!(
        matches!(
            err,
            Err(WireError::TooLong {
                field: "device_id",
                max: 128,
                len: 200
            })
        ),
        "{err:?}"
    );
}
