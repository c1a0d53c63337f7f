//! Test fixtures: signed images and a simulated device (one NOR flash holding slot A,
//! slot B and the state partition).
#![allow(dead_code)]
use std::cell::RefCell;

use ed25519_dalek::{Signer, SigningKey};
use embedded_storage::nor_flash::NorFlash;
use otter_boot::flash::Shared;
use otter_boot::image::{HardwareId, Header, Version, encode_image, signed_message};
use otter_boot::sim::{SimError, SimFlash};
use otter_boot::trust::{Anchors, TrustedKey};
use otter_boot::{BootConfig, BootControl, Layout, Partition, Slot};
use sha2::{Digest, Sha256};

pub const WRITE: usize = 4;
pub const ERASE: usize = 1024;
pub type Flash = SimFlash<WRITE, ERASE>;
pub const HW: &str = "test-board";
pub const SLOT_SECTORS: u32 = 8;
pub const STATE_SECTORS: u32 = 4;
/// Bytes programmed per write call when installing an image (like an agent's buffer).
pub const WRITE_CHUNK: usize = 256;

pub fn vendor_key() -> SigningKey {
    SigningKey::from_bytes(&[1u8; 32])
}

pub fn rogue_key() -> SigningKey {
    SigningKey::from_bytes(&[2u8; 32])
}

pub fn trusted(key: &SigningKey) -> TrustedKey {
    TrustedKey::new(key.verifying_key().to_bytes())
}

/// Deterministic payload bytes that differ per `seed`.
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// The header of an image for `HW` signed by `key`.
pub fn header_for(key: &SigningKey, version: Version, counter: u32, payload: &[u8]) -> Header {
    Header {
        flags: 0,
        hardware_id: HardwareId::new(HW).unwrap(),
        version,
        security_counter: counter,
        payload_len: payload.len() as u32,
        key_id: trusted(key).id,
        payload_sha256: Sha256::digest(payload).into(),
    }
}

/// Signs `header` and `payload` with `key` into a complete image.
pub fn sign(key: &SigningKey, header: &Header, payload: &[u8]) -> Vec<u8> {
    let digest: [u8; 32] = Sha256::digest(payload).into();
    let sig = key
        .sign(&signed_message(&header.encode(), &digest))
        .to_bytes();
    let mut out = vec![0u8; header.image_len().unwrap() as usize];
    encode_image(header, payload, &sig, &mut out).unwrap();
    out
}

/// A valid image of `len` payload bytes for the test board, signed by the vendor key.
pub fn image(version: (u32, u32, u32), counter: u32, len: usize) -> Vec<u8> {
    let p = payload(len, version.1 as u8 ^ version.2 as u8);
    let key = vendor_key();
    sign(
        &key,
        &header_for(
            &key,
            Version::new(version.0, version.1, version.2),
            counter,
            &p,
        ),
        &p,
    )
}

pub fn layout() -> Layout {
    let e = ERASE as u32;
    Layout::new(
        Partition::new(0, 0, SLOT_SECTORS * e),
        Partition::new(0, SLOT_SECTORS * e, SLOT_SECTORS * e),
        Partition::new(0, 2 * SLOT_SECTORS * e, STATE_SECTORS * e),
    )
    .unwrap()
}

pub type Control<'a> = BootControl<'a, Shared<'a, Flash>, Shared<'a, Flash>, Shared<'a, Flash>>;

/// A simulated board: one flash device, the vendor key trusted.
#[derive(Clone)]
pub struct Device {
    pub flash: RefCell<Flash>,
    pub keys: Vec<TrustedKey>,
    pub hardware_id: HardwareId,
}

impl Device {
    pub fn new() -> Self {
        Self {
            flash: RefCell::new(Flash::new((2 * SLOT_SECTORS + STATE_SECTORS) as usize)),
            keys: vec![trusted(&vendor_key())],
            hardware_id: HardwareId::new(HW).unwrap(),
        }
    }

    pub fn anchors(&self) -> Anchors<'_> {
        Anchors {
            hardware_id: self.hardware_id,
            keys: &self.keys,
        }
    }

    pub fn control(&self) -> Control<'_> {
        BootControl::new(
            layout(),
            Shared::new(&self.flash),
            Shared::new(&self.flash),
            Shared::new(&self.flash),
            self.anchors(),
            BootConfig::default(),
        )
        .unwrap()
    }

    /// Installs `image` into `slot` the way an agent does: erase each sector as the write
    /// reaches it, program in `WRITE_CHUNK` pieces (the tail padded with 0xFF).
    pub fn write_slot(&self, slot: Slot, image: &[u8]) -> Result<(), SimError> {
        let base = layout().slot(slot).offset;
        let mut f = self.flash.borrow_mut();
        let mut erased_to = base;
        for (i, chunk) in image.chunks(WRITE_CHUNK).enumerate() {
            let at = base + (i * WRITE_CHUNK) as u32;
            let mut buf = chunk.to_vec();
            buf.resize(chunk.len().next_multiple_of(WRITE), 0xff);
            let end = at + buf.len() as u32;
            while erased_to < end {
                f.erase(erased_to, erased_to + ERASE as u32)?;
                erased_to += ERASE as u32;
            }
            f.write(at, &buf)?;
        }
        Ok(())
    }

    /// A device with `a` in slot A, booted once: its first boot stores the first record
    /// (slot A confirmed, its counter the floor) before any second image is installed.
    pub fn factory(a: &[u8]) -> Self {
        let dev = Self::new();
        dev.write_slot(Slot::A, a).unwrap();
        dev.control().decide().unwrap();
        dev
    }

    /// The first `len` bytes of `slot`.
    pub fn slot_bytes(&self, slot: Slot, len: usize) -> Vec<u8> {
        let off = layout().slot(slot).offset as usize;
        self.flash.borrow().bytes()[off..off + len].to_vec()
    }

    /// Flips one bit of `slot` at byte `at`, bypassing NOR rules (simulates corruption).
    pub fn flip_bit(&self, slot: Slot, at: usize) {
        let off = layout().slot(slot).offset as usize;
        self.flash.borrow_mut().bytes_mut()[off + at] ^= 0x01;
    }
}
