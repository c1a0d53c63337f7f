//! The signed envelope that travels as JSON, and the checks every message type shares.

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::{WireError, WireMessage};
use crate::signer::Signer;

/// A message and the hex ed25519 signature over its canonical bytes: the JSON body the HTTP
/// API carries, `{"message": {…}, "signature": "…"}`.
///
/// The fields are public so a server can read the claimed device id to look up its key, but
/// nothing in `message` is authenticated until a `verify` method (on `Signed<CheckIn>`,
/// `Signed<Report>`, `Signed<Assignment>`) returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed<T> {
    /// The message, as parsed (unauthenticated until verified).
    pub message: T,
    /// Lowercase hex of the 64-byte ed25519 signature over
    /// [`canonical_bytes`](WireMessage::canonical_bytes) of `message`.
    pub signature: String,
}

impl<T: WireMessage> Signed<T> {
    /// Signs `message` over its canonical bytes.
    ///
    /// Fails with [`WireError::TooLong`] when a string is over its limit (the receiver would
    /// refuse it) and with [`WireError::Sign`] when the signer fails.
    pub fn sign(message: T, signer: &dyn Signer) -> Result<Self, WireError> {
        let bytes = message.canonical_bytes()?;
        let signature = signer.sign(&bytes)?;
        Ok(Self {
            message,
            signature: hex::encode(signature),
        })
    }

    /// Checks the signature alone (no device, counter or time rules): `public_key` must be a
    /// full-order ed25519 point and the signature must pass `verify_strict` over the
    /// re-encoded message. The message-specific `verify` methods call this first, so no
    /// other field is looked at before it is authenticated.
    pub fn verify_signature(&self, public_key: &[u8; 32]) -> Result<(), WireError> {
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| WireError::BadKey)?;
        if key.is_weak() {
            return Err(WireError::BadKey);
        }
        let signature = parse_signature(&self.signature)?;
        let bytes = self.message.canonical_bytes()?;
        key.verify_strict(&bytes, &signature)
            .map_err(|_| WireError::BadSignature)
    }
}

/// The signature of an envelope as 64 bytes: exactly 128 hex digits, either case.
pub(crate) fn parse_signature(text: &str) -> Result<Signature, WireError> {
    let mut bytes = [0u8; 64];
    if text.len() != 128 {
        return Err(WireError::MalformedSignature(format!(
            "{} characters",
            text.len()
        )));
    }
    hex::decode_to_slice(text, &mut bytes)
        .map_err(|e| WireError::MalformedSignature(e.to_string()))?;
    Ok(Signature::from_bytes(&bytes))
}

/// A message a device signs: it names its device, carries the device's monotonic counter
/// and a timestamp. Check-ins and reports are verified by the same rules.
pub trait DeviceMessage: WireMessage {
    /// The sending device.
    fn device_id(&self) -> &str;
    /// The device's counter (shared by its check-ins and reports).
    fn counter(&self) -> u64;
    /// When it was sent, in unix seconds.
    fn timestamp(&self) -> u64;
}

impl<T: DeviceMessage> Signed<T> {
    /// Verifies a message received from a device and returns it.
    ///
    /// In order: the signature by `device_key` over the canonical bytes
    /// ([`WireError::BadKey`], [`WireError::MalformedSignature`], [`WireError::TooLong`],
    /// [`WireError::BadSignature`]); the device id equals `expected_device`
    /// ([`WireError::WrongDevice`]); the counter is above `last_counter`, the highest accepted
    /// from this device so far, if any ([`WireError::StaleCounter`]); the timestamp is within
    /// `max_skew` seconds of `now` ([`WireError::ClockSkew`]). The caller stores the counter
    /// as the new last one once it accepts the message.
    pub fn verify(
        &self,
        device_key: &[u8; 32],
        expected_device: &str,
        last_counter: Option<u64>,
        now: u64,
        max_skew: u64,
    ) -> Result<&T, WireError> {
        self.verify_signature(device_key)?;
        let message = &self.message;
        check_device(expected_device, message.device_id())?;
        check_counter(last_counter, message.counter())?;
        check_clock(message.timestamp(), now, max_skew)?;
        Ok(message)
    }
}

/// The message names the device the verifier expects.
pub(crate) fn check_device(expected: &str, found: &str) -> Result<(), WireError> {
    if expected == found {
        Ok(())
    } else {
        Err(WireError::WrongDevice {
            expected: expected.to_owned(),
            found: found.to_owned(),
        })
    }
}

/// The counter is strictly above the last one accepted (replay protection); any counter is
/// fresh when none was accepted yet.
pub(crate) fn check_counter(last: Option<u64>, found: u64) -> Result<(), WireError> {
    match last {
        Some(last) if found <= last => Err(WireError::StaleCounter { last, found }),
        _ => Ok(()),
    }
}

/// The timestamp is within `max_skew` seconds of `now`, either way.
pub(crate) fn check_clock(timestamp: u64, now: u64, max_skew: u64) -> Result<(), WireError> {
    if timestamp.abs_diff(now) <= max_skew {
        Ok(())
    } else {
        Err(WireError::ClockSkew {
            timestamp,
            now,
            max_skew,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_must_rise_strictly() {
        check_counter(None, 0).unwrap();
        check_counter(Some(4), 5).unwrap();
        assert!(matches!(
            check_counter(Some(5), 5),
            Err(WireError::StaleCounter { last: 5, found: 5 })
        ));
        assert!(matches!(
            check_counter(Some(5), 2),
            Err(WireError::StaleCounter { last: 5, found: 2 })
        ));
    }

    #[test]
    fn the_clock_window_is_inclusive_both_ways() {
        check_clock(100, 130, 30).unwrap();
        check_clock(160, 130, 30).unwrap();
        assert!(matches!(
            check_clock(99, 130, 30),
            Err(WireError::ClockSkew { timestamp: 99, .. })
        ));
        assert!(matches!(
            check_clock(161, 130, 30),
            Err(WireError::ClockSkew { timestamp: 161, .. })
        ));
        check_clock(u64::MAX, 0, u64::MAX).unwrap();
    }

    #[test]
    fn a_signature_must_be_128_hex_digits() {
        parse_signature(&"ab".repeat(64)).unwrap();
        parse_signature(&"AB".repeat(64)).unwrap();
        for bad in ["", "ab", &"ab".repeat(65), &"zz".repeat(64)] {
            assert!(
                matches!(parse_signature(bad), Err(WireError::MalformedSignature(_))),
                "{bad:?} accepted"
            );
        }
    }
}
