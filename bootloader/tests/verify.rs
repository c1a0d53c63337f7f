//! The streaming verifier: each check, in order, with the error it gives.

mod common;

use common::*;
use otter_boot::image::{HEADER_LEN, HardwareId, ImageError, Version};
use otter_boot::trust::{Anchors, KeyId, TrustedKey};
use otter_boot::verify::{VerifyError, verify_bytes, verify_with_buffer};
use otter_boot::{Slot, verify};

fn anchors(keys: &[TrustedKey]) -> Anchors<'_> {
    Anchors {
        hardware_id: HardwareId::new(HW).unwrap(),
        keys,
    }
}

fn vendor() -> [TrustedKey; 1] {
    [trusted(&vendor_key())]
}

#[test]
fn accepts_a_signed_image_and_returns_its_header() {
    let img = image((1, 4, 0), 3, 5000);
    let h = verify_bytes(&img, &anchors(&vendor()), 3).unwrap();
    assert_eq!(h.version, Version::new(1, 4, 0));
    assert_eq!(h.security_counter, 3);
    assert_eq!(h.payload_len, 5000);
}

#[test]
fn verifies_in_place_in_a_slot_with_any_buffer_size() {
    let dev = Device::new();
    let img = image((1, 0, 0), 1, 6000);
    dev.write_slot(Slot::B, &img).unwrap();
    let p = layout().slot(Slot::B);
    let mut f = dev.flash.borrow_mut();
    let keys = vendor();
    for len in [128, 132, 500, 512, 4096, 20_000] {
        let mut buf = vec![0u8; len];
        let h = verify_with_buffer(&mut *f, p.offset, p.size, &anchors(&keys), 0, &mut buf);
        assert_eq!(h.map(|h| h.payload_len), Ok(6000), "buffer of {len}");
    }
    let mut small = [0u8; 127];
    let r = verify_with_buffer(&mut *f, p.offset, p.size, &anchors(&keys), 0, &mut small);
    assert_eq!(r, Err(VerifyError::BadBuffer));
}

#[test]
fn refuses_an_erased_slot_as_malformed() {
    let dev = Device::new();
    let p = layout().slot(Slot::A);
    let r = verify(
        &mut *dev.flash.borrow_mut(),
        p.offset,
        p.size,
        &anchors(&vendor()),
        0,
    );
    assert_eq!(r, Err(VerifyError::Image(ImageError::BadMagic([0xff; 4]))));
}

#[test]
fn refuses_an_image_for_another_board() {
    let key = vendor_key();
    let p = payload(100, 0);
    let mut h = header_for(&key, Version::new(1, 0, 0), 0, &p);
    h.hardware_id = HardwareId::new("other-board").unwrap();
    let img = sign(&key, &h, &p);
    assert_eq!(
        verify_bytes(&img, &anchors(&vendor()), 0),
        Err(VerifyError::WrongHardware {
            found: HardwareId::new("other-board").unwrap()
        })
    );
}

#[test]
fn refuses_an_image_signed_by_an_unknown_key() {
    let rogue = rogue_key();
    let p = payload(100, 0);
    let img = sign(
        &rogue,
        &header_for(&rogue, Version::new(1, 0, 0), 0, &p),
        &p,
    );
    assert_eq!(
        verify_bytes(&img, &anchors(&vendor()), 0),
        Err(VerifyError::UnknownKey(trusted(&rogue).id))
    );
}

#[test]
fn refuses_a_forged_key_id() {
    // Signed by the rogue key but claiming the vendor's key id: the signature check catches it.
    let rogue = rogue_key();
    let p = payload(100, 0);
    let mut h = header_for(&rogue, Version::new(1, 0, 0), 0, &p);
    h.key_id = trusted(&vendor_key()).id;
    let img = sign(&rogue, &h, &p);
    assert_eq!(
        verify_bytes(&img, &anchors(&vendor()), 0),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn refuses_a_trust_anchor_that_is_not_a_curve_point() {
    let bad = (0u8..=255)
        .map(|b| [b; 32])
        .find(|pk| ed25519_dalek::VerifyingKey::from_bytes(pk).is_err())
        .expect("some constant byte string is not a valid point");
    let key = TrustedKey {
        id: KeyId::from_bytes([9; 8]),
        public_key: bad,
    };
    let signer = vendor_key();
    let p = payload(10, 0);
    let mut h = header_for(&signer, Version::new(1, 0, 0), 0, &p);
    h.key_id = key.id;
    let img = sign(&signer, &h, &p);
    assert_eq!(
        verify_bytes(&img, &anchors(&[key]), 0),
        Err(VerifyError::BadTrustAnchor(key.id))
    );
}

#[test]
fn a_flipped_payload_bit_is_a_payload_hash_mismatch() {
    let mut img = image((1, 0, 0), 0, 3000);
    img[HEADER_LEN + 1234] ^= 0x40;
    assert_eq!(
        verify_bytes(&img, &anchors(&vendor()), 0),
        Err(VerifyError::PayloadHashMismatch)
    );
}

#[test]
fn a_flipped_signature_bit_is_a_bad_signature() {
    let mut img = image((1, 0, 0), 0, 3000);
    let n = img.len();
    img[n - 10] ^= 0x01;
    assert_eq!(
        verify_bytes(&img, &anchors(&vendor()), 0),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn a_flipped_signed_header_field_is_a_bad_signature() {
    let mut img = image((1, 0, 0), 0, 3000);
    img[56] ^= 0x01; // security counter
    assert_eq!(
        verify_bytes(&img, &anchors(&vendor()), 0),
        Err(VerifyError::BadSignature)
    );
    let mut img = image((1, 0, 0), 0, 3000);
    img[45] ^= 0x01; // version
    assert_eq!(
        verify_bytes(&img, &anchors(&vendor()), 0),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn refuses_a_security_counter_below_the_floor() {
    let img = image((2, 0, 0), 4, 100);
    assert_eq!(
        verify_bytes(&img, &anchors(&vendor()), 5),
        Err(VerifyError::Downgrade {
            security_counter: 4,
            minimum: 5
        })
    );
    assert!(verify_bytes(&img, &anchors(&vendor()), 4).is_ok());
}

#[test]
fn refuses_an_image_larger_than_its_slot() {
    let dev = Device::new();
    let img = image((1, 0, 0), 0, 3000);
    dev.write_slot(Slot::A, &img).unwrap();
    let p = layout().slot(Slot::A);
    let cap = img.len() as u32 - 1;
    let r = verify(
        &mut *dev.flash.borrow_mut(),
        p.offset,
        cap,
        &anchors(&vendor()),
        0,
    );
    assert_eq!(
        r,
        Err(VerifyError::Image(ImageError::TooLarge {
            image_len: img.len() as u64,
            capacity: cap
        }))
    );
}

#[test]
fn a_half_written_slot_does_not_verify() {
    let dev = Device::new();
    let img = image((1, 0, 0), 0, 6000);
    dev.write_slot(Slot::B, &img[..3000]).unwrap();
    let p = layout().slot(Slot::B);
    let r = verify(
        &mut *dev.flash.borrow_mut(),
        p.offset,
        p.size,
        &anchors(&vendor()),
        0,
    );
    assert_eq!(r, Err(VerifyError::PayloadHashMismatch));
}

#[test]
fn in_memory_images_must_be_exact() {
    let img = image((1, 0, 0), 0, 100);
    let keys = vendor();
    assert_eq!(
        verify_bytes(&img[..img.len() - 1], &anchors(&keys), 0),
        Err(VerifyError::Image(ImageError::Truncated {
            needed: img.len() as u64,
            found: img.len() as u64 - 1
        }))
    );
    let mut long = img.clone();
    long.push(0);
    assert_eq!(
        verify_bytes(&long, &anchors(&keys), 0),
        Err(VerifyError::Image(ImageError::TrailingData {
            image_len: img.len() as u64,
            found: long.len() as u64
        }))
    );
}

#[test]
fn trusts_every_listed_key_for_rotation() {
    let old = vendor_key();
    let new = rogue_key();
    let keys = [trusted(&old), trusted(&new)];
    for key in [&old, &new] {
        let p = payload(64, 1);
        let img = sign(key, &header_for(key, Version::new(1, 0, 0), 0, &p), &p);
        assert!(verify_bytes(&img, &anchors(&keys), 0).is_ok());
    }
}

#[test]
fn an_empty_payload_is_a_valid_image() {
    let img = image((0, 0, 1), 0, 0);
    assert_eq!(
        verify_bytes(&img, &anchors(&vendor()), 0).map(|h| h.payload_len),
        Ok(0)
    );
}
