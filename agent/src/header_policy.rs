//! What the vendor-signed header of a written image must say before it may boot on trial.
//!
//! The version and counter in TUF's custom fields are signed by the server's online targets
//! key, so a compromised server can list any old vendor-signed image as `9.9.9`. Only the
//! vendor's signature is trusted for version, board and security counter: the header that
//! signature covers must match the plan, be newer than the running image, be for this board,
//! and not lower the anti-rollback counter.

use otter_boot::image::{HardwareId, Header, Version};

/// What the plan and the device allow.
#[derive(Clone, Copy, Debug)]
pub struct Expected {
    /// The version the assignment and TUF name.
    pub planned: Version,
    /// The running image's (verified) version.
    pub running: Version,
    /// The running image's security counter.
    pub running_counter: u32,
    /// The bootloader's stored anti-rollback floor.
    pub min_security_counter: u32,
    /// This board.
    pub hardware_id: HardwareId,
}

/// Why the signed header is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Built for another board.
    #[error("the signed header is for hardware {found:?}, this device is {expected:?}")]
    WrongHardware {
        /// The header's board.
        found: String,
        /// Ours.
        expected: String,
    },
    /// Not the version the plan named (TUF or the director lied about it).
    #[error("the signed header says version {found}, but {planned} was planned")]
    NotPlanned {
        /// The header's version.
        found: Version,
        /// The planned version.
        planned: Version,
    },
    /// Not newer than what runs.
    #[error(
        "refusing downgrade: the signed header says {found}, not newer than the running {running}"
    )]
    NotNewer {
        /// The header's version.
        found: Version,
        /// The running version.
        running: Version,
    },
    /// It would lower the anti-rollback counter.
    #[error(
        "refusing rollback: security counter {found} is below {floor} (bootloader minimum \
         {minimum}, running image {running})"
    )]
    CounterTooLow {
        /// The header's counter.
        found: u32,
        /// The higher of the two below.
        floor: u32,
        /// The bootloader's floor.
        minimum: u32,
        /// The running image's counter.
        running: u32,
    },
}

/// Checks a verified header against the plan and the device.
pub fn check(header: &Header, expected: &Expected) -> Result<(), HeaderError> {
    if header.hardware_id != expected.hardware_id {
        return Err(HeaderError::WrongHardware {
            found: header.hardware_id.as_str().to_owned(),
            expected: expected.hardware_id.as_str().to_owned(),
        });
    }
    if header.version != expected.planned {
        return Err(HeaderError::NotPlanned {
            found: header.version,
            planned: expected.planned,
        });
    }
    if header.version <= expected.running {
        return Err(HeaderError::NotNewer {
            found: header.version,
            running: expected.running,
        });
    }
    let floor = expected.min_security_counter.max(expected.running_counter);
    if header.security_counter < floor {
        return Err(HeaderError::CounterTooLow {
            found: header.security_counter,
            floor,
            minimum: expected.min_security_counter,
            running: expected.running_counter,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(board: &str, version: &str, counter: u32) -> Header {
        Header {
            flags: 0,
            hardware_id: HardwareId::new(board).unwrap(),
            version: version.parse().unwrap(),
            security_counter: counter,
            payload_len: 0,
            key_id: otter_boot::trust::KeyId::from_bytes([0; 8]),
            payload_sha256: [0; 32],
        }
    }

    fn expected(planned: &str) -> Expected {
        Expected {
            planned: planned.parse().unwrap(),
            running: "1.0.0".parse().unwrap(),
            running_counter: 2,
            min_security_counter: 1,
            hardware_id: HardwareId::new("board").unwrap(),
        }
    }

    #[test]
    fn the_signed_header_must_match_the_plan_and_move_forward() {
        assert_eq!(
            check(&header("board", "1.1.0", 2), &expected("1.1.0")),
            Ok(())
        );
        assert!(matches!(
            check(&header("other", "1.1.0", 2), &expected("1.1.0")),
            Err(HeaderError::WrongHardware { .. })
        ));
        assert!(matches!(
            check(&header("board", "0.9.0", 2), &expected("9.9.9")),
            Err(HeaderError::NotPlanned { .. })
        ));
        // A plan that itself names an old version (select refuses it first; this is the
        // second line, on the vendor's word alone).
        assert!(matches!(
            check(&header("board", "1.0.0", 2), &expected("1.0.0")),
            Err(HeaderError::NotNewer { .. })
        ));
        let low = check(&header("board", "1.1.0", 1), &expected("1.1.0")).unwrap_err();
        assert_eq!(
            low,
            HeaderError::CounterTooLow {
                found: 1,
                floor: 2,
                minimum: 1,
                running: 2
            }
        );
        let mut high_floor = expected("1.1.0");
        high_floor.min_security_counter = 5;
        assert!(matches!(
            check(&header("board", "1.1.0", 4), &high_floor),
            Err(HeaderError::CounterTooLow { floor: 5, .. })
        ));
    }
}
