//! otter-boot over a `FileFlash`: an image signed by `otter-keys` and written with
//! `SlotWriter` verifies and boots on trial, and a delta applied streaming from slot A
//! into slot B of the same flash gives the bytes `bsdiff::patch` gives.

#[path = "patch_fixtures/mod.rs"]
mod fixtures;

use std::cell::RefCell;
use std::io::Write;

use ed25519_dalek::{Signer as _, SigningKey};
use embedded_storage::nor_flash::ReadNorFlash;
use otter_agent::flash::{FileFlash, SlotWriter};
use otter_agent::patch::{FlashRegion, apply, decompressor};
use otter_boot::flash::Shared;
use otter_boot::image::{HardwareId, Version};
use otter_boot::trust::{Anchors, TrustedKey};
use otter_boot::{BootConfig, BootControl, Layout, Partition, Slot, verify};
use otter_keys::image::{ImageSpec, sign_image};
use otter_keys::signer::{KeyError, Signer};
use otter_keys::targets::DELTA_ZSTD_WINDOW_LOG;

const SECTOR: u32 = 4096;
const SLOT_SECTORS: u32 = 48;
const HW: &str = "acme-thermo";

/// The vendor's firmware key, in memory.
struct VendorKey(SigningKey);

impl Signer for VendorKey {
    fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], KeyError> {
        Ok(self.0.sign(message).to_bytes())
    }
}

fn vendor() -> VendorKey {
    VendorKey(SigningKey::from_bytes(&[7u8; 32]))
}

fn signed(payload: &[u8], version: Version, counter: u32) -> Vec<u8> {
    let spec = ImageSpec {
        hardware_id: HardwareId::new(HW).unwrap(),
        version,
        security_counter: counter,
    };
    sign_image(payload, &spec, &vendor()).unwrap()
}

fn layout() -> Layout {
    Layout::new(
        Partition::new(0, 0, SLOT_SECTORS * SECTOR),
        Partition::new(0, SLOT_SECTORS * SECTOR, SLOT_SECTORS * SECTOR),
        Partition::new(0, 2 * SLOT_SECTORS * SECTOR, 4 * SECTOR),
    )
    .unwrap()
}

/// A device: one flash file holding both slots and the state partition.
struct Device {
    dir: tempfile::TempDir,
    flash: RefCell<FileFlash>,
    keys: Vec<TrustedKey>,
}

impl Device {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let size = (2 * SLOT_SECTORS + 4) * SECTOR;
        let flash = FileFlash::create(dir.path().join("flash.bin"), size).unwrap();
        Self {
            dir,
            flash: RefCell::new(flash),
            keys: vec![TrustedKey::new(vendor().public_key())],
        }
    }

    fn anchors(&self) -> Anchors<'_> {
        Anchors {
            hardware_id: HardwareId::new(HW).unwrap(),
            keys: &self.keys,
        }
    }

    fn control(
        &self,
    ) -> BootControl<'_, Shared<'_, FileFlash>, Shared<'_, FileFlash>, Shared<'_, FileFlash>> {
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

    /// Power cycle: the flash file is closed (after a sync) and opened again.
    fn reboot(self) -> Self {
        self.flash.borrow().sync().unwrap();
        let path = self.dir.path().join("flash.bin");
        drop(self.flash);
        Self {
            flash: RefCell::new(FileFlash::open(&path).unwrap()),
            dir: self.dir,
            keys: self.keys,
        }
    }

    fn install(&self, slot: Slot, image: &[u8]) {
        let mut w = SlotWriter::new(Shared::new(&self.flash), layout().slot(slot)).unwrap();
        for piece in image.chunks(1000) {
            w.write(piece).unwrap();
        }
        w.finish().unwrap();
    }

    fn slot_bytes(&self, slot: Slot, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        self.flash
            .borrow_mut()
            .read(layout().slot(slot).offset, &mut out)
            .unwrap();
        out
    }
}

#[test]
fn image_written_with_slot_writer_verifies_and_boots_on_trial() {
    let dev = Device::new();
    let v1 = signed(&fixtures::firmware(60_000, 1), Version::new(1, 0, 0), 1);
    let v2 = signed(&fixtures::firmware(70_001, 2), Version::new(1, 1, 0), 1);
    dev.install(Slot::A, &v1);
    // The first boot stores the first record (before a second image is installed).
    let first = dev.control().decide().unwrap();
    assert_eq!((first.slot, first.trial), (Slot::A, false));
    dev.install(Slot::B, &v2);

    let p = layout().slot(Slot::B);
    let header = verify(
        &mut *dev.flash.borrow_mut(),
        p.offset,
        p.size,
        &dev.anchors(),
        0,
    )
    .unwrap();
    assert_eq!(header.version, Version::new(1, 1, 0));

    {
        let mut control = dev.control();
        control.request_trial(Slot::B).unwrap();
        let trial = control.decide().unwrap();
        assert_eq!((trial.slot, trial.trial), (Slot::B, true));
        control.confirm().unwrap();
        assert_eq!(control.status().unwrap().confirmed, Slot::B);
    }

    // The boot state and both images survive a power cycle.
    let dev = dev.reboot();
    let d = dev.control().decide().unwrap();
    assert_eq!(
        (d.slot, d.trial, d.header.version),
        (Slot::B, false, Version::new(1, 1, 0))
    );
    assert!(dev.slot_bytes(Slot::A, v1.len()) == v1);
}

#[test]
fn a_corrupted_slot_is_refused() {
    let dev = Device::new();
    let mut image = signed(&fixtures::firmware(20_000, 3), Version::new(2, 0, 0), 1);
    image[5000] ^= 0x40;
    dev.install(Slot::B, &image);
    let err = dev.control().verify_slot(Slot::B, 0).unwrap_err();
    assert_eq!(err, otter_boot::VerifyError::PayloadHashMismatch);
}

#[test]
fn delta_applied_from_slot_a_into_slot_b_matches_bsdiff_and_verifies() {
    let dev = Device::new();
    let old_payload = fixtures::firmware(150_000, 10);
    let new_payload = fixtures::next_version(&old_payload, 11, 25, 3);
    let old = signed(&old_payload, Version::new(1, 0, 0), 1);
    let new = signed(&new_payload, Version::new(1, 1, 0), 2);
    dev.install(Slot::A, &old);
    dev.control().decide().unwrap();

    // What the server publishes: the bsdiff patch, zstd-compressed with the device window.
    let patch = fixtures::diff(&old, &new);
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
    enc.window_log(DELTA_ZSTD_WINDOW_LOG).unwrap();
    enc.write_all(&patch).unwrap();
    let compressed = enc.finish().unwrap();

    // The agent: old image read from slot A, new image written into slot B, same flash.
    let a = layout().slot(Slot::A);
    let source = FlashRegion::new(Shared::new(&dev.flash), a.offset, old.len() as u32).unwrap();
    let sink = SlotWriter::new(Shared::new(&dev.flash), layout().slot(Slot::B)).unwrap();
    let mut sink = sink;
    let stats = apply(
        decompressor(&compressed[..]).unwrap(),
        source,
        &mut sink,
        new.len() as u64,
    )
    .unwrap();
    sink.finish().unwrap();
    assert_eq!(stats.written, new.len() as u64);

    let expected = fixtures::reference(&old, &patch).unwrap();
    assert!(expected == new);
    assert!(dev.slot_bytes(Slot::B, new.len()) == expected);
    assert!(
        dev.slot_bytes(Slot::A, old.len()) == old,
        "slot A untouched"
    );

    let mut control = dev.control();
    let header = control.request_trial(Slot::B).unwrap();
    assert_eq!(header.version, Version::new(1, 1, 0));
}
