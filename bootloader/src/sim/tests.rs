//! Tests of the NOR flash simulator.

use super::*;

/// 4-byte words, 64-byte sectors: small enough to inspect by hand.
type Flash = SimFlash<4, 64>;

fn read_all(f: &mut Flash) -> Vec<u8> {
    let mut buf = vec![0; f.capacity()];
    f.read(0, &mut buf).unwrap();
    buf
}

#[test]
fn new_is_erased_powered_and_sized() {
    let f = Flash::new(3);
    assert_eq!(f.capacity(), 192);
    assert!(f.bytes().iter().all(|&b| b == 0xFF));
    assert!(f.is_powered());
    assert_eq!(f.sector_erases(), &[0, 0, 0]);
    assert_eq!(f.stats(), Stats::default());
    assert_eq!(f.ops(), 0);
    assert!(f.op_log().is_empty());
}

#[test]
fn erase_sets_ff_and_counts_wear() {
    let mut f = Flash::new(4);
    f.bytes_mut().fill(0x00);
    f.erase(64, 192).unwrap();
    assert!(f.bytes()[..64].iter().all(|&b| b == 0x00));
    assert!(f.bytes()[64..192].iter().all(|&b| b == 0xFF));
    assert!(f.bytes()[192..].iter().all(|&b| b == 0x00));
    assert_eq!(f.sector_erases(), &[0, 1, 1, 0]);
    f.erase(64, 128).unwrap();
    assert_eq!(f.sector_erases(), &[0, 2, 1, 0]);
    assert_eq!(f.stats().erases, 2);
    assert_eq!(f.ops(), 2);
}

#[test]
fn program_clears_bits_and_refuses_one_over_zero() {
    let mut f = Flash::new(2);
    f.write(8, &[0xF0, 0x0F, 0xAA, 0x55]).unwrap();
    assert_eq!(&f.bytes()[8..12], &[0xF0, 0x0F, 0xAA, 0x55]);
    // Clearing more bits (and re-writing zeros as zeros) is fine: multiwrite.
    f.write(8, &[0x00, 0x0F, 0x0A, 0x55]).unwrap();
    assert_eq!(&f.bytes()[8..12], &[0x00, 0x0F, 0x0A, 0x55]);
    // Turning a 0 back into 1 is refused; first offending byte is reported.
    let before = f.bytes().to_vec();
    assert_eq!(
        f.write(8, &[0x00, 0x0F, 0x0B, 0xFF]),
        Err(SimError::ProgramOverZero { offset: 10 })
    );
    assert_eq!(f.bytes(), &before[..]);
    assert_eq!(f.ops(), 2);
    assert_eq!(f.stats().writes, 2);
    assert_eq!(f.stats().bytes_written, 8);
    assert!(f.is_powered());
}

#[test]
fn read_returns_contents_and_counts() {
    let mut f = Flash::new(1);
    f.write(4, &[1, 2, 3, 4]).unwrap();
    let mut buf = [0u8; 3];
    f.read(5, &mut buf).unwrap();
    assert_eq!(buf, [2, 3, 4]);
    assert_eq!(f.stats().reads, 1);
    assert_eq!(f.ops(), 1, "reads are not mutating ops");
}

#[test]
fn alignment_and_bounds_errors() {
    let mut f = Flash::new(2);
    let mut buf = [0u8; 4];
    assert_eq!(f.read(126, &mut buf), Err(SimError::OutOfBounds));
    assert_eq!(f.read(u32::MAX, &mut buf), Err(SimError::OutOfBounds));
    f.read(127, &mut buf[..1]).unwrap();

    assert_eq!(f.write(2, &[0; 4]), Err(SimError::NotAligned));
    assert_eq!(f.write(4, &[0; 3]), Err(SimError::NotAligned));
    assert_eq!(f.write(128, &[0; 4]), Err(SimError::OutOfBounds));
    assert_eq!(f.write(124, &[0; 8]), Err(SimError::OutOfBounds));
    assert_eq!(f.write(u32::MAX - 3, &[0; 4]), Err(SimError::OutOfBounds));

    assert_eq!(f.erase(1, 64), Err(SimError::NotAligned));
    assert_eq!(f.erase(0, 65), Err(SimError::NotAligned));
    assert_eq!(f.erase(64, 0), Err(SimError::OutOfBounds));
    assert_eq!(f.erase(0, 192), Err(SimError::OutOfBounds));

    assert!(f.bytes().iter().all(|&b| b == 0xFF));
    assert_eq!(f.ops(), 0);
    assert!(f.op_log().is_empty());
    assert_eq!(f.sector_erases(), &[0, 0]);
    assert_eq!(SimError::NotAligned.kind(), NorFlashErrorKind::NotAligned);
    assert_eq!(SimError::OutOfBounds.kind(), NorFlashErrorKind::OutOfBounds);
    assert_eq!(SimError::PowerLost.kind(), NorFlashErrorKind::Other);
    assert_eq!(
        SimError::ProgramOverZero { offset: 0 }.kind(),
        NorFlashErrorKind::Other
    );
}

#[test]
fn before_cut_changes_nothing_and_power_stays_off_until_restore() {
    let mut f = Flash::new(2);
    f.write(0, &[0x11; 4]).unwrap(); // op 0
    f.set_power_cut(Some(PowerCut::Before { op: 2 }));
    f.write(4, &[0x22; 4]).unwrap(); // op 1
    let snapshot = f.bytes().to_vec();

    assert_eq!(f.erase(0, 64), Err(SimError::PowerLost)); // op 2: cut
    assert!(!f.is_powered());
    assert_eq!(f.bytes(), &snapshot[..]);
    assert_eq!(f.ops(), 3);
    assert_eq!(f.sector_erases(), &[0, 0]);

    // Everything fails while off, changes nothing and is not counted.
    let mut buf = [0u8; 4];
    assert_eq!(f.read(0, &mut buf), Err(SimError::PowerLost));
    assert_eq!(f.write(8, &[0; 4]), Err(SimError::PowerLost));
    assert_eq!(f.write(8, &[]), Err(SimError::PowerLost));
    assert_eq!(f.erase(64, 128), Err(SimError::PowerLost));
    assert_eq!(f.bytes(), &snapshot[..]);
    assert_eq!(f.ops(), 3);
    assert_eq!(f.op_log().len(), 3);
    assert_eq!(f.stats().reads, 0);

    f.restore_power();
    assert!(f.is_powered());
    assert_eq!(&read_all(&mut f)[..], &snapshot[..]);
    // The cut is disarmed: the same op index cannot fire again, later ops work.
    f.erase(0, 64).unwrap(); // op 3
    f.write(0, &[0x33; 4]).unwrap(); // op 4
    assert_eq!(
        &f.bytes()[..8],
        &[0x33, 0x33, 0x33, 0x33, 0xFF, 0xFF, 0xFF, 0xFF]
    );
    assert_eq!(f.ops(), 5);
}

#[test]
fn cut_at_an_op_that_never_comes_does_nothing() {
    let mut f = Flash::new(1);
    f.set_power_cut(Some(PowerCut::Before { op: 10 }));
    for i in 0..4u8 {
        f.write(u32::from(i) * 4, &[i; 4]).unwrap();
    }
    assert!(f.is_powered());
    f.set_power_cut(None);
    f.write(16, &[0; 4]).unwrap();
    assert!(f.is_powered());
}

#[test]
fn prefix_cut_on_program_completes_exactly_the_first_words() {
    let mut f = Flash::new(1);
    f.set_power_cut(Some(PowerCut::Prefix { op: 0, words: 3 }));
    assert_eq!(f.write(0, &[0u8; 16]), Err(SimError::PowerLost));
    assert!(
        f.bytes()[..12].iter().all(|&b| b == 0),
        "three words programmed"
    );
    assert!(
        f.bytes()[12..].iter().all(|&b| b == 0xFF),
        "fourth word untouched"
    );
    assert!(!f.is_powered());
}

#[test]
fn prefix_cut_on_erase_erases_exactly_the_first_words() {
    let mut f = Flash::new(2);
    f.bytes_mut().fill(0);
    f.set_power_cut(Some(PowerCut::Prefix { op: 0, words: 5 }));
    assert_eq!(f.erase(0, 128), Err(SimError::PowerLost));
    assert!(f.bytes()[..20].iter().all(|&b| b == 0xFF));
    assert!(f.bytes()[20..].iter().all(|&b| b == 0));
    assert_eq!(f.sector_erases(), &[1, 0]);
}

/// `lo ⊆ torn ⊆ hi` as bit sets: the torn byte lies between the two endpoints.
fn between(lo: u8, torn: u8, hi: u8) -> bool {
    torn & hi == torn && torn | lo == torn
}

#[test]
fn inside_cut_on_program_tears_exactly_one_word() {
    let mut f = Flash::new(1);
    // Old contents: a pattern with some zeros so "already 0" bits are exercised.
    f.bytes_mut()[..16].copy_from_slice(&[0xFF, 0xFE, 0xF7, 0x7F].repeat(4));
    let old = f.bytes().to_vec();
    let new: Vec<u8> = [0x00, 0x12, 0x34, 0x56].repeat(4);
    f.set_power_cut(Some(PowerCut::Inside {
        op: 0,
        at: 2,
        seed: 7,
    }));
    assert_eq!(f.write(0, &new), Err(SimError::PowerLost));
    assert!(!f.is_powered());
    let b = f.bytes();
    let new_and_old: Vec<u8> = new.iter().zip(&old).map(|(n, o)| n & o).collect();
    assert_eq!(&b[..8], &new_and_old[..8], "prefix words fully programmed");
    for i in 8..12 {
        assert!(
            between(new_and_old[i], b[i], old[i]),
            "byte {i}: {:#x}",
            b[i]
        );
    }
    assert_ne!(&b[8..12], &old[8..12], "seed 7 clears at least one bit");
    assert_ne!(
        &b[8..12],
        &new_and_old[8..12],
        "seed 7 leaves at least one bit"
    );
    assert_eq!(&b[12..], &old[12..], "suffix untouched");
    assert_eq!(
        f.stats().writes,
        0,
        "a cut program is not a completed write"
    );
    assert_eq!(f.ops(), 1);
}

#[test]
fn inside_cut_on_erase_leaves_partly_erased_range() {
    let mut f = Flash::new(3);
    for (i, b) in f.bytes_mut().iter_mut().enumerate() {
        *b = u8::try_from(i % 251).unwrap() & 0x5A;
    }
    let old = f.bytes().to_vec();
    // Erase sectors 1..3 (128 bytes = 32 words), tear at word 20: inside sector 2.
    f.set_power_cut(Some(PowerCut::Inside {
        op: 0,
        at: 20,
        seed: 3,
    }));
    assert_eq!(f.erase(64, 192), Err(SimError::PowerLost));
    let b = f.bytes();
    assert_eq!(&b[..64], &old[..64], "outside the erase untouched");
    assert!(b[64..144].iter().all(|&x| x == 0xFF), "erased prefix");
    for i in 144..148 {
        assert!(between(old[i], b[i], 0xFF), "byte {i}: {:#x}", b[i]);
    }
    assert_ne!(&b[144..148], &old[144..148]);
    assert_eq!(&b[148..], &old[148..], "old suffix");
    assert_eq!(f.sector_erases(), &[0, 1, 1], "both sectors got the pulse");
    assert_eq!(f.stats().erases, 0);

    // Tear in the first sector of a two-sector erase: only that one wears.
    let mut f = Flash::new(2);
    f.bytes_mut().fill(0);
    f.set_power_cut(Some(PowerCut::Inside {
        op: 0,
        at: 0,
        seed: 1,
    }));
    assert_eq!(f.erase(0, 128), Err(SimError::PowerLost));
    assert!(f.bytes()[4..].iter().all(|&x| x == 0));
    assert_eq!(f.sector_erases(), &[1, 0]);
}

#[test]
fn inside_cut_past_last_word_tears_the_last_word() {
    let mut f = Flash::new(1);
    f.set_power_cut(Some(PowerCut::Inside {
        op: 0,
        at: 99,
        seed: 5,
    }));
    assert_eq!(f.write(0, &[0u8; 8]), Err(SimError::PowerLost));
    assert_eq!(&f.bytes()[..4], &[0; 4]);
    assert!(f.bytes()[8..].iter().all(|&x| x == 0xFF));
}

fn torn_program(seed: u64) -> Vec<u8> {
    let mut f = Flash::new(1);
    f.set_power_cut(Some(PowerCut::Inside { op: 0, at: 0, seed }));
    assert_eq!(f.write(0, &[0u8; 4]), Err(SimError::PowerLost));
    f.bytes()[..4].to_vec()
}

fn torn_erase(seed: u64) -> Vec<u8> {
    let mut f = Flash::new(1);
    f.bytes_mut().fill(0);
    f.set_power_cut(Some(PowerCut::Inside { op: 0, at: 1, seed }));
    assert_eq!(f.erase(0, 64), Err(SimError::PowerLost));
    f.bytes()[4..8].to_vec()
}

#[test]
fn torn_bits_are_deterministic_per_seed() {
    for seed in 0..20 {
        assert_eq!(torn_program(seed), torn_program(seed));
        assert_eq!(torn_erase(seed), torn_erase(seed));
    }
    let programs: std::collections::HashSet<Vec<u8>> = (0..20).map(torn_program).collect();
    let erases: std::collections::HashSet<Vec<u8>> = (0..20).map(torn_erase).collect();
    assert!(programs.len() > 1, "different seeds give different tears");
    assert!(erases.len() > 1, "different seeds give different tears");
}

#[test]
fn op_counting_ignores_noops_and_invalid_calls() {
    let mut f = Flash::new(2);
    f.write(0, &[]).unwrap();
    f.erase(64, 64).unwrap();
    let _ = f.write(1, &[0; 4]);
    let _ = f.write(0, &[0; 3]);
    let _ = f.erase(0, 1);
    let _ = f.erase(0, 1024);
    f.write(0, &[0; 4]).unwrap();
    let _ = f.write(0, &[0xFF; 4]); // ProgramOverZero
    let mut buf = [0u8; 8];
    f.read(0, &mut buf).unwrap();
    assert_eq!(f.ops(), 1);
    assert_eq!(f.op_log().len(), 1);
    assert_eq!(f.stats().writes, 1);
    assert_eq!(f.sector_erases(), &[0, 0]);

    // A cut aimed at op 1 skips the no-ops and lands on the next real op.
    f.set_power_cut(Some(PowerCut::Before { op: 1 }));
    f.write(4, &[]).unwrap();
    f.erase(0, 0).unwrap();
    assert!(f.is_powered());
    assert_eq!(f.erase(0, 64), Err(SimError::PowerLost));
    assert_eq!(f.ops(), 2);
}

#[test]
fn op_log_records_kind_offset_len_including_the_cut_op() {
    let mut f = Flash::new(4);
    f.erase(64, 256).unwrap();
    f.write(68, &[0; 8]).unwrap();
    f.set_power_cut(Some(PowerCut::Before { op: 2 }));
    assert_eq!(f.write(128, &[0; 12]), Err(SimError::PowerLost));
    let log = f.op_log();
    assert_eq!(
        log,
        &[
            Op {
                kind: OpKind::Erase,
                offset: 64,
                len: 192
            },
            Op {
                kind: OpKind::Program,
                offset: 68,
                len: 8
            },
            Op {
                kind: OpKind::Program,
                offset: 128,
                len: 12
            },
        ]
    );
    assert_eq!(f.ops(), 3);
}

#[test]
fn tear_points_count_words() {
    let program = Op {
        kind: OpKind::Program,
        offset: 0,
        len: 12,
    };
    let erase = Op {
        kind: OpKind::Erase,
        offset: 64,
        len: 128,
    };
    assert_eq!(program.tear_points(4), 3);
    assert_eq!(erase.tear_points(4), 32);
    assert_eq!(erase.tear_points(0), 0);

    // Every tear point of a logged op is a distinct, valid cut.
    let mut f = Flash::new(1);
    f.write(0, &[0; 12]).unwrap();
    let op = f.op_log()[0];
    let mut results = Vec::new();
    for at in 0..op.tear_points(4) {
        let mut g = Flash::new(1);
        g.set_power_cut(Some(PowerCut::Inside { op: 0, at, seed: 0 }));
        assert_eq!(g.write(0, &[0; 12]), Err(SimError::PowerLost));
        let programmed = g.bytes().iter().take_while(|&&b| b == 0).count();
        assert!(programmed >= usize::try_from(at).unwrap() * 4);
        results.push(g.bytes()[..12].to_vec());
    }
    results.dedup();
    assert_eq!(results.len(), 3);
}

/// A scripted update: erase two sectors, program a header and a body.
fn script(f: &mut Flash) -> Result<(), SimError> {
    f.erase(0, 128)?;
    f.write(0, &[0xA5; 8])?;
    f.write(64, &[0x00; 16])?;
    f.write(4, &[0x05; 4])?; // multiwrite over the header's second word
    Ok(())
}

#[test]
fn sweep_over_every_tear_point_hits_the_aimed_op() {
    let mut reference = Flash::new(2);
    reference.bytes_mut().fill(0x3C);
    let pristine = reference.clone();
    script(&mut reference).unwrap();
    let log = reference.op_log().to_vec();
    assert_eq!(log.len(), 4);
    let mut cuts = 0;
    for (index, op) in (0u64..).zip(&log) {
        let before = {
            let mut f = pristine.clone();
            f.set_power_cut(Some(PowerCut::Before { op: index }));
            assert_eq!(script(&mut f), Err(SimError::PowerLost));
            f.bytes().to_vec()
        };
        for at in 0..op.tear_points(4) {
            let mut f = pristine.clone();
            f.set_power_cut(Some(PowerCut::Inside {
                op: index,
                at,
                seed: index ^ u64::from(at),
            }));
            assert_eq!(script(&mut f), Err(SimError::PowerLost));
            assert_eq!(f.ops(), index + 1, "the cut landed on op {index}");
            assert_eq!(f.op_log().last(), Some(op));
            // Only bytes inside the torn op may differ from the state before it.
            let start = usize::try_from(op.offset).unwrap();
            let end = start + usize::try_from(op.len).unwrap();
            for (i, (a, b)) in f.bytes().iter().zip(&before).enumerate() {
                assert!(a == b || (start..end).contains(&i), "byte {i} outside op");
            }
            f.restore_power();
            assert_eq!(script(&mut f), Ok(()), "a rerun after reboot completes");
            assert_eq!(f.bytes(), reference.bytes());
            cuts += 1;
        }
    }
    assert_eq!(cuts, 32 + 2 + 4 + 1);
}

#[test]
fn clone_is_independent() {
    let mut f = Flash::new(1);
    let g = f.clone();
    f.write(0, &[0; 4]).unwrap();
    assert_eq!(g.bytes()[0], 0xFF);
    assert_eq!(g.ops(), 0);
}

#[test]
fn display_messages() {
    assert_eq!(
        std::format!("{}", SimError::ProgramOverZero { offset: 16 }),
        "program would turn a 0 bit into 1 at offset 0x10"
    );
    assert_eq!(std::format!("{}", SimError::PowerLost), "flash power lost");
}

/// Polls a future that never waits (all `SimFlash` futures are ready at once).
fn block_on<F: core::future::Future>(fut: F) -> F::Output {
    let mut fut = core::pin::pin!(fut);
    let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        core::task::Poll::Ready(v) => v,
        core::task::Poll::Pending => panic!("SimFlash futures are always ready"),
    }
}

#[test]
fn async_traits_share_the_same_semantics() {
    let mut f = Flash::new(2);
    let a = &mut f;
    block_on(embedded_storage_async::nor_flash::NorFlash::write(
        a, 0, &[0x0F; 4],
    ))
    .unwrap();
    assert_eq!(
        block_on(embedded_storage_async::nor_flash::NorFlash::write(
            a, 0, &[0xF0; 4]
        )),
        Err(SimError::ProgramOverZero { offset: 0 })
    );
    let mut buf = [0u8; 4];
    block_on(embedded_storage_async::nor_flash::ReadNorFlash::read(
        a, 0, &mut buf,
    ))
    .unwrap();
    assert_eq!(buf, [0x0F; 4]);
    block_on(embedded_storage_async::nor_flash::NorFlash::erase(a, 0, 64)).unwrap();
    assert_eq!(f.bytes()[0], 0xFF);
    assert_eq!(f.ops(), 2);
}

#[test]
fn bad_regions_fail_only_the_chosen_accesses_that_touch_them() {
    let mut f = Flash::new(4);
    f.write(0, &[0x12; 8]).unwrap();
    f.add_bad_region(64..96, Failing::READS);
    f.add_bad_region(128..192, Failing::WRITES);
    let ops = f.ops();
    // Reads touching 64..96 fail at the first bad byte; reads around it work.
    assert_eq!(
        f.read(60, &mut [0; 8]),
        Err(SimError::BadRegion { offset: 64 })
    );
    assert!(f.read(96, &mut [0; 32]).is_ok());
    assert!(f.read(0, &mut [0; 64]).is_ok());
    // Writes there still work: only reads were made to fail.
    f.write(64, &[0; 4]).unwrap();
    // Programs and erases touching 128..192 fail and change nothing; reads work.
    let before = f.bytes().to_vec();
    assert_eq!(
        f.write(188, &[0; 4]),
        Err(SimError::BadRegion { offset: 188 })
    );
    assert_eq!(f.erase(64, 192), Err(SimError::BadRegion { offset: 128 }));
    assert_eq!(f.bytes(), &before[..]);
    assert!(f.read(128, &mut [0; 64]).is_ok());
    assert_eq!(f.ops(), ops + 1, "only the good write counts as an op");
    assert!(f.is_powered(), "a bad region is not a power cut");
    // Healing removes every bad region.
    f.heal();
    f.erase(64, 192).unwrap();
    assert!(f.read(64, &mut [0; 32]).is_ok());
}
