//! The rollout policy and its window as untrusted input (they come from the server with an
//! assignment): no text, byte flip or clock value makes them panic, and no change to a signed
//! policy's document is accepted as a different policy.

use ed25519_dalek::{Signer as _, SigningKey};
use otter_keys::rollout::MaintenanceWindow;
use otter_keys::signer::{KeyError, Signer};
use otter_keys::wire::{PolicyCheck, RolloutPolicy, Signed};
use proptest::prelude::*;

struct TestKey(SigningKey);

impl Signer for TestKey {
    fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], KeyError> {
        Ok(self.0.sign(message).to_bytes())
    }
}

fn key() -> TestKey {
    TestKey(SigningKey::from_bytes(&[7; 32]))
}

fn policy() -> RolloutPolicy {
    RolloutPolicy {
        rollout_id: "rol_1".into(),
        hardware_id: "acme-thermo".into(),
        image_sha256: [0xAB; 32],
        ceiling: "100%".parse().unwrap(),
        window: Some("mon-sun 00:00-23:59 Europe/Berlin".parse().unwrap()),
        expires: u64::MAX,
    }
}

fn document() -> Vec<u8> {
    serde_json::to_vec(&Signed::sign(policy(), &key()).unwrap()).unwrap()
}

/// The property below is only worth something if the unedited document passes.
#[test]
fn the_unedited_document_verifies() {
    let parsed: Signed<RolloutPolicy> = serde_json::from_slice(&document()).unwrap();
    let check = PolicyCheck {
        device_id: "dev_1",
        hardware_id: "acme-thermo",
        image_sha256: &[0xAB; 32],
        now: 1_796_126_400,
    };
    assert_eq!(
        parsed.verify(&[key().public_key()], &check).unwrap(),
        &policy()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any text parses to a window or a typed error; a window that parses prints back to
    /// itself and answers `contains` for any instant without panicking.
    #[test]
    fn any_window_text_parses_or_is_refused(
        text in prop_oneof![
            ".{0,40}",
            "(mon|tue|sun|fri|xyz)(-(fri|sun|mon))?(,sat)? [0-9]{1,2}:[0-9]{2}-[0-9]{1,2}:[0-9]{2} (UTC|Europe/Berlin|America/New_York|Nowhere/City|\\.\\./etc)",
        ],
        now in any::<i64>(),
    ) {
        if let Ok(window) = text.parse::<MaintenanceWindow>() {
            let again: MaintenanceWindow = window.to_string().parse().unwrap();
            prop_assert_eq!(&again, &window);
            if let Ok(at) = jiff::Timestamp::from_second(now) {
                let _ = window.contains(at);
            }
        }
    }

    /// Flipping, dropping or inserting bytes in a signed policy document never yields a
    /// policy that verifies and differs from the one that was signed.
    #[test]
    fn no_edit_of_a_signed_policy_is_accepted_as_another(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
        now in 1_700_000_000u64..2_000_000_000,
        device in "[a-z0-9_]{1,20}",
    ) {
        let mut bytes = document();
        for (at, byte, kind) in edits {
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
        }
        let Ok(parsed) = serde_json::from_slice::<Signed<RolloutPolicy>>(&bytes) else {
            return Ok(());
        };
        let check = PolicyCheck {
            device_id: &device,
            hardware_id: "acme-thermo",
            image_sha256: &[0xAB; 32],
            now,
        };
        if let Ok(accepted) = parsed.verify(&[key().public_key()], &check) {
            prop_assert_eq!(accepted, &policy());
        }
        if let Ok(authentic) = parsed.verify_authentic(&[key().public_key()]) {
            prop_assert_eq!(authentic, &policy());
        }
    }
}
