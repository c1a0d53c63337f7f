//! Arbitrary bytes never panic the header decoder, the verifier or the boot-state decoder,
//! and never verify unless they are the signed image.

mod common;

use common::*;
use otter_boot::Slot;
use otter_boot::image::{HEADER_LEN, Header};
use otter_boot::state::BootState;
use otter_boot::trust::Anchors;
use otter_boot::verify::verify_bytes;
use proptest::prelude::*;

fn anchors(keys: &[otter_boot::trust::TrustedKey]) -> Anchors<'_> {
    Anchors {
        hardware_id: otter_boot::image::HardwareId::new(HW).unwrap(),
        keys,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn header_decoder_never_panics_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(h) = Header::decode(&bytes) {
            prop_assert_eq!(&h.encode()[..], &bytes[..HEADER_LEN]);
        }
    }

    #[test]
    fn verifier_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let keys = [trusted(&vendor_key())];
        prop_assert!(verify_bytes(&bytes, &anchors(&keys), 0).is_err());
    }

    #[test]
    fn verifier_never_panics_on_a_header_with_arbitrary_fields(
        fields in proptest::collection::vec(any::<u8>(), HEADER_LEN - 8),
        tail in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        // Keep magic, format and header length valid so decoding goes deep.
        let mut bytes = b"OTTR\x01\x00\x80\x00".to_vec();
        bytes.extend(fields);
        bytes.extend(tail);
        let keys = [trusted(&vendor_key())];
        prop_assert!(verify_bytes(&bytes, &anchors(&keys), 0).is_err());
    }

    #[test]
    fn any_mutation_of_a_signed_image_is_refused(
        at in 0usize..1000,
        xor in 1u8..=255,
    ) {
        let mut img = image((1, 2, 3), 4, 700);
        let at = at % img.len();
        img[at] ^= xor;
        let keys = [trusted(&vendor_key())];
        prop_assert!(verify_bytes(&img, &anchors(&keys), 0).is_err());
    }

    #[test]
    fn slot_with_arbitrary_contents_never_panics_the_bootloader(
        a in proptest::collection::vec(any::<u8>(), 0..1500),
        b_prefix in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let dev = Device::new();
        {
            let mut f = dev.flash.borrow_mut();
            let bytes = f.bytes_mut();
            bytes[..a.len()].copy_from_slice(&a);
            let b = layout().slot(Slot::B).offset as usize;
            bytes[b..b + b_prefix.len()].copy_from_slice(&b_prefix);
        }
        // Garbage in both slots: a typed refusal, never a boot.
        prop_assert!(dev.control().decide().is_err());
    }

    #[test]
    fn boot_state_decoder_never_panics_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(s) = BootState::decode(&bytes) {
            prop_assert_eq!(&s.encode()[..], &bytes[..]);
        }
    }
}

#[test]
fn the_unmutated_image_verifies() {
    // The mutation property above is only meaningful if the original verifies.
    let img = image((1, 2, 3), 4, 700);
    let keys = [trusted(&vendor_key())];
    assert!(verify_bytes(&img, &anchors(&keys), 0).is_ok());
}
