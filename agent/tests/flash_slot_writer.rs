//! `SlotWriter`: a byte stream lands in its partition, each sector erased just before the
//! first write reaches it, the tail padded with 0xFF, and nothing past the partition.

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use otter_agent::flash::{FileFlash, SlotWriteError, SlotWriter};
use otter_boot::Partition;
use otter_boot::sim::{OpKind, SimFlash};
use proptest::prelude::*;

type Sim = SimFlash<4, 4096>;
const SECTOR: u32 = 4096;

fn stream(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// Writes `data` in pieces of the given sizes (cycled) and finishes.
fn write_in_pieces<F: NorFlash>(w: &mut SlotWriter<F>, data: &[u8], pieces: &[usize])
where
    F::Error: std::fmt::Debug,
{
    let mut rest = data;
    for &n in pieces.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let n = n.clamp(1, rest.len());
        w.write(&rest[..n]).unwrap();
        rest = &rest[n..];
    }
}

#[test]
fn stream_lands_in_the_partition_with_padding_and_lazy_erases() {
    let mut sim = Sim::new(6);
    // Old contents everywhere: slot B (sectors 2..5) holds a previous image.
    sim.bytes_mut().fill(0x00);
    let slot = Partition::new(0, 2 * SECTOR, 3 * SECTOR);
    let data = stream(2 * 4096 + 10, 7);

    let mut w = SlotWriter::new(&mut sim, slot).unwrap();
    write_in_pieces(&mut w, &data, &[1, 3, 700, 4096, 5]);
    assert_eq!(w.written(), data.len() as u64);
    let (_, written) = w.finish().unwrap();
    assert_eq!(written, data.len() as u64);

    let bytes = sim.bytes();
    let start = 2 * 4096;
    assert!(bytes[start..start + data.len()] == data[..]);
    // The last word is padded with the erased value, the rest of that sector stays erased.
    assert_eq!(
        &bytes[start + data.len()..start + data.len() + 2],
        [0xff, 0xff]
    );
    assert!(
        bytes[start + data.len()..start + 3 * 4096]
            .iter()
            .all(|&b| b == 0xff)
    );
    // Outside the partition nothing changed.
    assert!(bytes[..start].iter().all(|&b| b == 0));
    assert!(bytes[start + 3 * 4096..].iter().all(|&b| b == 0));

    // Each sector is erased once, right before the first program into it.
    let log: Vec<_> = sim.op_log().iter().map(|op| (op.kind, op.offset)).collect();
    let s = |n: u32| 2 * SECTOR + n * SECTOR;
    assert_eq!(
        log,
        [
            (OpKind::Erase, s(0)),
            (OpKind::Program, s(0)),
            (OpKind::Erase, s(1)),
            (OpKind::Program, s(1)),
            (OpKind::Erase, s(2)),
            (OpKind::Program, s(2)),
        ]
    );
    assert_eq!(sim.sector_erases(), [0, 0, 1, 1, 1, 0]);
}

#[test]
fn a_stream_that_ends_early_erases_only_what_it_used() {
    let mut sim = Sim::new(4);
    sim.bytes_mut().fill(0x11);
    let mut w = SlotWriter::new(&mut sim, Partition::new(0, 0, 4 * SECTOR)).unwrap();
    w.write(&[1, 2, 3, 4, 5]).unwrap();
    w.finish().unwrap();
    assert_eq!(&sim.bytes()[..8], [1, 2, 3, 4, 5, 0xff, 0xff, 0xff]);
    assert_eq!(sim.sector_erases(), [1, 0, 0, 0]);
    assert!(sim.bytes()[4096..].iter().all(|&b| b == 0x11));
}

#[test]
fn refuses_to_pass_the_partition_end() {
    let mut sim = Sim::new(4);
    let slot = Partition::new(0, SECTOR, SECTOR);
    let mut w = SlotWriter::new(&mut sim, slot).unwrap();
    w.write(&[0xaa; 4000]).unwrap();
    let err = w.write(&[0xbb; 97]).unwrap_err();
    assert_eq!(
        err,
        SlotWriteError::PartitionFull {
            capacity: 4096,
            needed: 4097
        }
    );
    // The refused write is not taken in part; exactly filling the slot works.
    assert_eq!(w.written(), 4000);
    w.write(&[0xbb; 96]).unwrap();
    w.finish().unwrap();
    assert!(sim.bytes()[4096..8096].iter().all(|&b| b == 0xaa));
    assert!(sim.bytes()[8096..8192].iter().all(|&b| b == 0xbb));
    assert!(
        sim.bytes()[8192..].iter().all(|&b| b == 0xff),
        "next partition untouched"
    );
}

#[test]
fn refuses_a_partition_that_is_not_whole_sectors_on_the_device() {
    let mut sim = Sim::new(4);
    for p in [
        Partition::new(0, 100, SECTOR),
        Partition::new(0, 0, SECTOR + 4),
        Partition::new(0, 3 * SECTOR, 2 * SECTOR),
    ] {
        assert!(matches!(
            SlotWriter::new(&mut sim, p),
            Err(SlotWriteError::Geometry)
        ));
    }
}

#[test]
fn flash_errors_are_reported_not_panicked() {
    let mut sim = Sim::new(2);
    sim.set_power_cut(Some(otter_boot::sim::PowerCut::Before { op: 1 }));
    let mut w = SlotWriter::new(&mut sim, Partition::new(0, 0, 2 * SECTOR)).unwrap();
    let err = w.write(&[0u8; 8192]).unwrap_err();
    assert!(matches!(
        err,
        SlotWriteError::Flash(otter_boot::sim::SimError::PowerLost)
    ));
    assert!(err.to_string().contains("flash"), "{err}");
}

#[test]
fn overwrites_a_previous_image_on_a_file_flash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flash.bin");
    let mut flash = FileFlash::create(&path, 8 * SECTOR).unwrap();
    let slot = Partition::new(0, 4 * SECTOR, 4 * SECTOR);
    for (seed, len) in [(1u8, 3 * 4096 + 123), (2, 5000), (3, 4 * 4096)] {
        let data = stream(len, seed);
        let mut w = SlotWriter::new(&mut flash, slot).unwrap();
        write_in_pieces(&mut w, &data, &[333, 4096, 1]);
        w.finish().unwrap();
        let mut back = vec![0u8; len];
        flash.read(4 * SECTOR, &mut back).unwrap();
        assert!(back == data, "image {seed}");
    }
    drop(flash);
    let mut reopened = FileFlash::open(&path).unwrap();
    let mut back = vec![0u8; 4 * 4096];
    reopened.read(4 * SECTOR, &mut back).unwrap();
    assert!(back == stream(4 * 4096, 3));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_split_of_any_stream_gives_the_same_slot(
        len in 0..4 * 4096usize,
        pieces in prop::collection::vec(1..5000usize, 1..8),
    ) {
        let data = stream(len, 9);
        let mut sim = Sim::new(4);
        let mut w = SlotWriter::new(&mut sim, Partition::new(0, 0, 4 * SECTOR)).unwrap();
        write_in_pieces(&mut w, &data, &pieces);
        w.finish().unwrap();
        prop_assert!(sim.bytes()[..len] == data[..]);
        prop_assert!(sim.bytes()[len..].iter().all(|&b| b == 0xff));
        let sectors_used = len.div_ceil(4096);
        let expected: Vec<u32> = (0..4).map(|s| u32::from(s < sectors_used)).collect();
        prop_assert_eq!(sim.sector_erases(), &expected[..]);
    }
}
