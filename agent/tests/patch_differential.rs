//! The streaming applier against the reference `bsdiff::patch`: identical output on every
//! patch `bsdiff::diff` makes from firmware-like images, and on malformed patches either a
//! typed error or exactly the reference's output. Never a panic, never a byte past the
//! declared length.

#[path = "patch_fixtures/mod.rs"]
mod fixtures;

use std::convert::Infallible;

use fixtures::{Bounded, Edit, Rng, diff, edit, firmware, next_version, reference};
use otter_agent::patch::{
    APPLY_BUFFER_LEN, CONTROL_LEN, Control, LengthField, PatchError, SliceOutOfBounds, apply,
};
use proptest::prelude::*;

type Error = PatchError<SliceOutOfBounds, Infallible>;

/// Our output for `patch` on `old`, declared to be `declared` bytes long.
fn ours(old: &[u8], patch: &[u8], declared: usize) -> Result<Vec<u8>, Error> {
    let mut sink = Bounded::new(declared);
    apply(patch, old, &mut sink, declared as u64)?;
    Ok(sink.data)
}

/// The property for a patch built by `bsdiff::diff`: both patchers give back `new`.
fn assert_round_trip(old: &[u8], new: &[u8]) {
    let patch = diff(old, new);
    assert_eq!(reference(old, &patch).as_deref(), Some(new), "reference");
    let got = ours(old, &patch, new.len()).unwrap();
    assert!(got == new, "streamed output differs from the new image");
}

/// The property for any patch: we agree with the reference, or refuse with a typed error
/// where the reference refuses or makes another length than declared.
fn assert_agrees(old: &[u8], patch: &[u8], declared: usize) -> Result<Vec<u8>, Error> {
    let want = reference(old, patch);
    let got = ours(old, patch, declared);
    match (&want, &got) {
        (Some(w), Ok(g)) => assert!(w == g, "accepted, but output differs from bsdiff::patch"),
        (Some(w), Err(e)) => assert_ne!(w.len(), declared, "bsdiff accepts, we refused: {e}"),
        (None, Ok(_)) => panic!("we accepted a patch bsdiff::patch refuses"),
        (None, Err(_)) => {}
    }
    got
}

/// Hand-encodes one patch entry.
fn entry(mix: &[u8], copy: &[u8], seek: i64) -> Vec<u8> {
    let mut out = raw_control(mix.len() as u64, copy.len() as u64, seek);
    out.extend_from_slice(mix);
    out.extend_from_slice(copy);
    out
}

fn raw_control(mix: u64, copy: u64, seek: i64) -> Vec<u8> {
    let seek = if seek < 0 {
        seek.unsigned_abs() | 1 << 63
    } else {
        seek as u64
    };
    [mix, copy, seek]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

#[test]
fn firmware_versions_match_the_reference() {
    let v1 = firmware(48 * 1024, 1);
    let small_edits = next_version(&v1, 2, 12, 0);
    let with_blocks = next_version(&v1, 3, 6, 3);
    let removed = edit(
        &v1,
        &[
            Edit::Remove { at: 0.3, len: 3000 },
            Edit::Remove { at: 0.7, len: 100 },
        ],
    );
    let relinked = edit(&with_blocks, &[Edit::Relocate { delta: 0x40 }]);
    let grown = edit(&v1, &[Edit::Resize { len: 80 * 1024 }]);
    let shrunk = edit(&small_edits, &[Edit::Resize { len: 20 * 1024 }]);
    let cases: [(&str, &[u8], &[u8]); 12] = [
        ("small edits", &v1, &small_edits),
        ("inserted blocks", &v1, &with_blocks),
        ("removed blocks", &v1, &removed),
        ("relinked", &v1, &relinked),
        ("grown with padding", &v1, &grown),
        ("shrunk", &v1, &shrunk),
        ("identical", &v1, &v1),
        ("empty old", &[], &v1),
        ("empty new", &v1, &[]),
        ("both empty", &[], &[]),
        ("unrelated", &v1, &Rng(9).bytes(30_000)),
        ("one byte", &[0x42], &[0x43]),
    ];
    for (name, old, new) in cases {
        let patch = diff(old, new);
        assert_eq!(
            reference(old, &patch).as_deref(),
            Some(new),
            "{name}: reference"
        );
        let got = ours(old, &patch, new.len()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(got == new, "{name}: output differs");
    }
}

#[test]
fn long_erased_padding_and_runs_longer_than_the_buffer() {
    // 256 KiB of mostly 0xFF: add and extra runs span many APPLY_BUFFER_LEN buffers.
    let mut old = firmware(64 * 1024, 5);
    old.resize(256 * 1024, 0xff);
    let mut new = next_version(&old[..64 * 1024], 6, 20, 2);
    new.resize(256 * 1024, 0xff);
    assert_round_trip(&old, &new);

    // One add run and one extra run, each many buffers long.
    let fresh = Rng(7).bytes(5 * APPLY_BUFFER_LEN + 17);
    assert_round_trip(&[], &fresh);
    let mut tweaked = fresh.clone();
    tweaked[3 * APPLY_BUFFER_LEN] ^= 1;
    assert_round_trip(&fresh, &tweaked);
}

#[test]
fn declared_length_is_enforced_both_ways() {
    let old = firmware(16 * 1024, 11);
    let new = next_version(&old, 12, 5, 1);
    let patch = diff(&old, &new);

    let err = ours(&old, &patch, new.len() + 1).unwrap_err();
    assert!(
        matches!(err, PatchError::OutputTooShort { written, expected }
            if written == new.len() as u64 && expected == new.len() as u64 + 1),
        "{err}"
    );

    // Declared shorter: refused, and the sink (Bounded) never got a byte past it.
    for declared in [0, 1, new.len() / 2, new.len() - 1] {
        let err = ours(&old, &patch, declared).unwrap_err();
        assert!(
            matches!(err, PatchError::OutputTooLong { expected, needed, .. }
                if expected == declared as u64 && needed > expected),
            "{err}"
        );
    }
}

#[test]
fn hand_made_malformed_patches_get_typed_errors() {
    let old = [10u8, 20, 30, 40];

    // A valid two-entry patch: add to old[0..2], seek +1, add to old[3..4], extra bytes.
    let mut good = entry(&[1, 1], &[], 1);
    good.extend(entry(&[5], &[7, 8], 0));
    assert_eq!(assert_agrees(&old, &good, 5).unwrap(), [11, 21, 45, 7, 8]);

    let err = |patch: &[u8], declared| assert_agrees(&old, patch, declared).unwrap_err();

    let mut neg = raw_control(1 << 63 | 1, 0, 0);
    neg.push(0);
    assert!(matches!(
        err(&neg, 1),
        PatchError::NegativeLength { entry: 0, field: LengthField::Mix, raw } if raw == 1 << 63 | 1
    ));
    assert!(matches!(
        err(&raw_control(0, u64::MAX, 0), 1),
        PatchError::NegativeLength {
            field: LengthField::Copy,
            ..
        }
    ));

    let mut back = entry(&[0, 0], &[], -3);
    back.extend(entry(&[], &[], 0));
    assert!(matches!(
        err(&back, 2),
        PatchError::BadSeek {
            entry: 0,
            from: 2,
            seek: -3
        }
    ));

    assert!(matches!(
        err(&entry(&[0; 5], &[], 0), 5),
        PatchError::OldOutOfBounds {
            entry: 0,
            start: 0,
            end: 5,
            old_len: 4
        }
    ));
    // A cursor past the end is refused at the next entry even if it reads nothing, as
    // bsdiff::patch does.
    let mut past = entry(&[], &[1], 9);
    past.extend(entry(&[], &[2], 0));
    assert!(matches!(
        err(&past, 2),
        PatchError::OldOutOfBounds {
            entry: 1,
            start: 9,
            ..
        }
    ));

    let truncated_control = &good[..CONTROL_LEN - 1];
    assert!(matches!(
        err(truncated_control, 5),
        PatchError::Truncated { at: 23, entry: 0 }
    ));
    let truncated_data = &good[..CONTROL_LEN + 1];
    assert!(matches!(
        err(truncated_data, 5),
        PatchError::Truncated { at: 25, entry: 0 }
    ));
    // Huge lengths are refused before any allocation or read of their data.
    assert!(matches!(
        err(&raw_control(i64::MAX as u64, i64::MAX as u64, 0), 5),
        PatchError::OutputTooLong { entry: 0, needed, expected: 5 } if needed == u64::MAX - 1
    ));
}

#[test]
fn every_truncation_of_a_real_patch_is_refused() {
    let old = firmware(8 * 1024, 21);
    let new = next_version(&old, 22, 6, 1);
    let patch = diff(&old, &new);
    // Entry boundaries, to tell a cut inside an entry from one between entries.
    let mut boundaries = vec![0];
    let mut at = 0;
    while at < patch.len() {
        let c = Control::decode(patch[at..at + CONTROL_LEN].try_into().unwrap()).unwrap();
        at += CONTROL_LEN + (c.mix_len + c.copy_len) as usize;
        boundaries.push(at);
    }
    assert_eq!(at, patch.len());
    for cut in 0..patch.len() {
        let got = assert_agrees(&old, &patch[..cut], new.len());
        match got {
            Err(PatchError::Truncated { at, .. }) => {
                assert_eq!(at, cut as u64);
                assert!(!boundaries.contains(&cut), "cut {cut} is on a boundary");
            }
            Err(PatchError::OutputTooShort { .. }) => assert!(boundaries.contains(&cut)),
            Err(e) => panic!("cut at {cut}: unexpected {e}"),
            // Only if the cut-off tail produced nothing.
            Ok(out) => assert!(out == new),
        }
    }
}

#[test]
fn every_bit_flip_of_a_real_patch_agrees_with_the_reference() {
    let old = firmware(4 * 1024, 31);
    let new = next_version(&old, 32, 4, 1);
    let patch = diff(&old, &new);
    let mut accepted = 0;
    for bit in 0..patch.len() * 8 {
        let mut bad = patch.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        if assert_agrees(&old, &bad, new.len()).is_ok() {
            accepted += 1;
        }
    }
    // Flips in add or extra data leave a well-formed patch (with other output): the
    // comparison above covered real successes, not only refusals.
    assert!(accepted > 0);
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0.0..1.0f64, prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Edit::Poke { at, bytes }),
        (0.0..1.0f64, 1..4096usize, any::<u64>()).prop_map(|(at, n, seed)| Edit::Insert {
            at,
            block: firmware(n, seed)
        }),
        (0.0..1.0f64, 1..4096usize).prop_map(|(at, len)| Edit::Remove { at, len }),
        (1..256u32).prop_map(|d| Edit::Relocate { delta: d * 4 }),
        (0..40_000usize).prop_map(|len| Edit::Resize { len }),
    ]
}

/// One entry of a patch made of plausible but random controls.
fn random_entry() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(any::<u8>(), 0..40),
        prop::collection::vec(any::<u8>(), 0..40),
        -64..64i64,
        prop::option::weighted(0.1, any::<[u8; 24]>()),
    )
        .prop_map(|(mix, copy, seek, garbage)| match garbage {
            Some(g) => g.to_vec(),
            None => entry(&mix, &copy, seek),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn firmware_like_edits_round_trip(
        len in 0..32_768usize,
        seed in any::<u64>(),
        edits in prop::collection::vec(edit_strategy(), 0..6),
    ) {
        let old = firmware(len, seed);
        let new = edit(&old, &edits);
        assert_round_trip(&old, &new);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic_or_overrun(
        old in prop::collection::vec(any::<u8>(), 0..256),
        patch in prop::collection::vec(any::<u8>(), 0..512),
        declared in 0..1024usize,
    ) {
        let _ = assert_agrees(&old, &patch, declared);
    }

    #[test]
    fn random_well_formed_controls_agree_with_the_reference(
        old in prop::collection::vec(any::<u8>(), 0..128),
        entries in prop::collection::vec(random_entry(), 0..8),
        declared_from_reference in any::<bool>(),
        declared in 0..512usize,
        cut in any::<prop::sample::Index>(),
        cut_it in prop::bool::weighted(0.2),
    ) {
        let mut patch: Vec<u8> = entries.concat();
        if cut_it && !patch.is_empty() {
            patch.truncate(cut.index(patch.len()));
        }
        // Declare what the reference makes, so accepted patches are compared byte for byte.
        let declared = match reference(&old, &patch) {
            Some(out) if declared_from_reference => out.len(),
            _ => declared,
        };
        let _ = assert_agrees(&old, &patch, declared);
    }

    #[test]
    fn mutated_real_patches_agree_with_the_reference(
        seed in any::<u64>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in prop::option::weighted(0.3, any::<prop::sample::Index>()),
    ) {
        let old = firmware(3000, seed);
        let new = next_version(&old, seed ^ 1, 3, 1);
        let mut patch = diff(&old, &new);
        for (at, mask) in &flips {
            let i = at.index(patch.len());
            patch[i] ^= mask;
        }
        if let Some(cut) = cut {
            patch.truncate(cut.index(patch.len()));
        }
        let _ = assert_agrees(&old, &patch, new.len());
    }
}

/// A control entry in the bsdiff format (sign-magnitude little-endian lengths and seek).
fn control(mix: u64, copy: u64, seek: u64) -> Vec<u8> {
    [mix, copy, seek]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

#[test]
fn a_patch_of_empty_entries_is_refused_instead_of_spinning() {
    // A million entries that write nothing: 24 MB raw, a few KiB compressed, and without a
    // bound hours of work on a device for a megabyte of it.
    let old = vec![7u8; 64];
    let patch = vec![0u8; CONTROL_LEN * 1_000_000];
    let err = ours(&old, &patch, 16).unwrap_err();
    assert!(
        matches!(err, PatchError::NoProgress { entry, .. } if entry == u64::from(otter_agent::patch::MAX_IDLE_ENTRIES)),
        "{err}"
    );
}

#[test]
fn a_few_seek_only_entries_between_real_ones_still_apply() {
    let old: Vec<u8> = (0..64u8).collect();
    let mut patch = Vec::new();
    for _ in 0..otter_agent::patch::MAX_IDLE_ENTRIES {
        patch.extend(control(0, 0, 0));
    }
    patch.extend(control(4, 0, 0));
    patch.extend([0u8; 4]);
    assert_eq!(reference(&old, &patch).as_deref(), Some(&old[..4]));
    assert_eq!(ours(&old, &patch, 4).unwrap(), old[..4]);
}
