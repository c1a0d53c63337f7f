//! Why a wire message could not be signed or was refused.

use crate::signer::KeyError;

/// Why a wire message could not be signed, or why a received one is refused.
///
/// Every refusal names what was expected and what was found, so a log line is enough to tell
/// a replay from a clock problem from a forgery.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The signature does not match the message and the key: forged, altered in transit,
    /// signed by another key, or signed over another message type.
    #[error("bad signature: the message was altered or signed by another key")]
    BadSignature,
    /// The signature field is not 64 bytes written as 128 hex digits.
    #[error("malformed signature: expected 128 hex digits (64 bytes), found {0}")]
    MalformedSignature(String),
    /// The public key given to verify with is not a usable ed25519 key (not a curve point,
    /// or a weak point of small order).
    #[error("bad public key: not a valid ed25519 point of full order")]
    BadKey,
    /// The message names another device.
    #[error("wrong device: expected {expected:?}, found {found:?}")]
    WrongDevice {
        /// The device the verifier speaks with.
        expected: String,
        /// The device the message names.
        found: String,
    },
    /// The counter is not above the last one accepted: a replay or a reordered message.
    #[error("stale counter: expected more than {last}, found {found} (replayed or reordered)")]
    StaleCounter {
        /// The highest counter accepted so far.
        last: u64,
        /// The counter in the message.
        found: u64,
    },
    /// The assignment echoes another check-in than the one it should answer.
    #[error("counter mismatch: expected the echo of check-in {expected}, found {found}")]
    CounterMismatch {
        /// The counter of the check-in this device sent.
        expected: u64,
        /// The counter the assignment echoes.
        found: u64,
    },
    /// The assignment is past its expiry.
    #[error("expired: valid until {expires}, now is {now}")]
    Expired {
        /// End of validity (unix seconds, exclusive).
        expires: u64,
        /// The verifier's clock (unix seconds).
        now: u64,
    },
    /// The message's timestamp is further from the verifier's clock than allowed.
    #[error("clock skew: timestamp {timestamp} is more than {max_skew}s from now ({now})")]
    ClockSkew {
        /// The timestamp in the message (unix seconds).
        timestamp: u64,
        /// The verifier's clock (unix seconds).
        now: u64,
        /// The largest difference allowed, in seconds.
        max_skew: u64,
    },
    /// A string field is longer than the encoding allows.
    #[error("{field} too long: expected at most {max} bytes, found {len}")]
    TooLong {
        /// The field, as a path into the message (`last_outcome.reason`).
        field: &'static str,
        /// The largest length allowed, in bytes.
        max: usize,
        /// The length found, in bytes.
        len: usize,
    },
    /// The signer failed.
    #[error(transparent)]
    Sign(#[from] KeyError),
}
