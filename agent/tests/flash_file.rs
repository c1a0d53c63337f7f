//! `FileFlash` keeps NOR rules (the same as otter-boot's `SimFlash`) and its contents
//! across reopening.

use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};
use otter_agent::flash::{FileFlash, FileFlashError};
use otter_boot::sim::SimFlash;
use proptest::prelude::*;

const SECTOR: u32 = 4096;

fn new_flash(sectors: u32) -> (tempfile::TempDir, FileFlash) {
    let dir = tempfile::tempdir().unwrap();
    let flash = FileFlash::create(dir.path().join("flash.bin"), sectors * SECTOR).unwrap();
    (dir, flash)
}

fn read(f: &mut FileFlash, offset: u32, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    f.read(offset, &mut buf).unwrap();
    buf
}

#[test]
fn geometry_is_the_simulated_devices() {
    assert_eq!(FileFlash::WRITE_SIZE, 4);
    assert_eq!(FileFlash::ERASE_SIZE, 4096);
    assert_eq!(FileFlash::READ_SIZE, 1);
    let (_dir, f) = new_flash(3);
    assert_eq!(f.capacity(), 3 * 4096);
}

#[test]
fn created_flash_is_erased() {
    let (_dir, mut f) = new_flash(2);
    assert!(read(&mut f, 0, 8192).iter().all(|&b| b == 0xff));
}

#[test]
fn program_only_clears_bits_and_refuses_to_set_them() {
    let (_dir, mut f) = new_flash(2);
    f.write(8, &[0xf0, 0x0f, 0xaa, 0x55]).unwrap();
    assert_eq!(read(&mut f, 8, 4), [0xf0, 0x0f, 0xaa, 0x55]);
    // Clearing more bits of programmed bytes is allowed.
    f.write(8, &[0x30, 0x0f, 0x00, 0x55]).unwrap();
    assert_eq!(read(&mut f, 8, 4), [0x30, 0x0f, 0x00, 0x55]);
    // Setting a bit back is refused, naming the first offending byte, and writes nothing.
    let err = f
        .write(4, &[0x00, 0x00, 0x00, 0x00, 0x30, 0x0f, 0x01, 0x55])
        .unwrap_err();
    assert!(
        matches!(err, FileFlashError::ProgramOverZero { offset: 10 }),
        "{err}"
    );
    assert_eq!(err.kind(), NorFlashErrorKind::Other);
    assert_eq!(
        read(&mut f, 4, 8),
        [0xff, 0xff, 0xff, 0xff, 0x30, 0x0f, 0x00, 0x55]
    );
    // After an erase the bits can be set again.
    f.erase(0, SECTOR).unwrap();
    assert!(read(&mut f, 0, 4096).iter().all(|&b| b == 0xff));
    f.write(8, &[1, 2, 3, 4]).unwrap();
    assert_eq!(read(&mut f, 8, 4), [1, 2, 3, 4]);
}

#[test]
fn erase_covers_exactly_the_sectors_asked() {
    let (_dir, mut f) = new_flash(3);
    f.write(0, &[0; 4096 * 3]).unwrap();
    f.erase(SECTOR, 2 * SECTOR).unwrap();
    let all = read(&mut f, 0, 3 * 4096);
    assert!(all[..4096].iter().all(|&b| b == 0));
    assert!(all[4096..8192].iter().all(|&b| b == 0xff));
    assert!(all[8192..].iter().all(|&b| b == 0));
    // An empty erase is fine and does nothing.
    f.erase(SECTOR, SECTOR).unwrap();
}

#[test]
fn misaligned_and_out_of_bounds_accesses_are_refused() {
    let (_dir, mut f) = new_flash(2);
    let kind = |r: Result<(), FileFlashError>| r.unwrap_err().kind();
    assert_eq!(kind(f.write(2, &[0; 4])), NorFlashErrorKind::NotAligned);
    assert_eq!(kind(f.write(4, &[0; 3])), NorFlashErrorKind::NotAligned);
    assert_eq!(kind(f.erase(100, SECTOR)), NorFlashErrorKind::NotAligned);
    assert_eq!(kind(f.erase(0, 100)), NorFlashErrorKind::NotAligned);
    assert_eq!(kind(f.erase(SECTOR, 0)), NorFlashErrorKind::OutOfBounds);
    assert_eq!(kind(f.erase(0, 3 * SECTOR)), NorFlashErrorKind::OutOfBounds);
    assert_eq!(
        kind(f.write(2 * SECTOR - 4, &[0; 8])),
        NorFlashErrorKind::OutOfBounds
    );
    assert_eq!(
        kind(f.write(u32::MAX - 3, &[0; 4])),
        NorFlashErrorKind::OutOfBounds
    );
    assert_eq!(
        kind(f.read(2 * SECTOR - 1, &mut [0; 2])),
        NorFlashErrorKind::OutOfBounds
    );
    assert_eq!(
        kind(f.read(u32::MAX, &mut [0; 2])),
        NorFlashErrorKind::OutOfBounds
    );
    // Nothing of the refused operations landed.
    assert!(read(&mut f, 0, 8192).iter().all(|&b| b == 0xff));
}

#[test]
fn contents_persist_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flash.bin");
    {
        let mut f = FileFlash::create(&path, 4 * SECTOR).unwrap();
        f.write(SECTOR + 16, b"otter-slot-data!").unwrap();
        f.sync().unwrap();
    }
    let mut f = FileFlash::open(&path).unwrap();
    assert_eq!(f.capacity(), 4 * 4096);
    assert_eq!(read(&mut f, SECTOR + 16, 16), b"otter-slot-data!");
    // NOR rules still hold for the reopened contents.
    assert!(matches!(
        f.write(SECTOR + 16, &[0xff; 4]),
        Err(FileFlashError::ProgramOverZero { offset: 4112 })
    ));
}

#[test]
fn create_and_open_refuse_unusable_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flash.bin");
    for size in [0, 100, SECTOR + 4] {
        assert!(matches!(
            FileFlash::create(&path, size),
            Err(FileFlashError::BadSize(s)) if s == u64::from(size)
        ));
    }
    FileFlash::create(&path, SECTOR).unwrap();
    // An existing flash file is never clobbered by create.
    assert!(matches!(
        FileFlash::create(&path, SECTOR),
        Err(FileFlashError::Io(_))
    ));

    let odd = dir.path().join("odd.bin");
    std::fs::write(&odd, [0xffu8; 5000]).unwrap();
    assert!(matches!(
        FileFlash::open(&odd),
        Err(FileFlashError::BadSize(5000))
    ));
    assert!(matches!(
        FileFlash::open(dir.path().join("missing.bin")),
        Err(FileFlashError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound
    ));
}

/// One flash operation, for comparing `FileFlash` with `SimFlash`.
#[derive(Clone, Debug)]
enum Op {
    Read { offset: u32, len: usize },
    Write { offset: u32, data: Vec<u8> },
    Erase { from: u32, to: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    // Offsets mostly aligned, sometimes not, sometimes past the end of a 3-sector flash.
    let offset = prop_oneof![
        4 => (0..3 * 1024u32).prop_map(|w| w * 4),
        1 => 0..3 * SECTOR + 64,
    ];
    prop_oneof![
        1 => (offset.clone(), 0..64usize).prop_map(|(offset, len)| Op::Read { offset, len }),
        4 => (offset, prop::collection::vec(
            prop_oneof![Just(0u8), Just(0xffu8), any::<u8>()], 0..40
        ))
        .prop_map(|(offset, data)| Op::Write { offset, data }),
        1 => (0..4u32, 0..4u32, any::<bool>()).prop_map(|(a, b, skew)| Op::Erase {
            from: a * SECTOR + u32::from(skew) * 4,
            to: b * SECTOR,
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Same results (kind of error or data) and same contents as otter-boot's simulator,
    /// for any sequence of operations.
    #[test]
    fn behaves_like_otter_boot_sim_flash(ops in prop::collection::vec(op(), 1..40)) {
        let (_dir, mut file) = new_flash(3);
        let mut sim = SimFlash::<4, 4096>::new(3);
        for op in &ops {
            match op {
                Op::Read { offset, len } => {
                    let (mut a, mut b) = (vec![0u8; *len], vec![0u8; *len]);
                    let ra = file.read(*offset, &mut a).map_err(|e| e.kind());
                    let rb = sim.read(*offset, &mut b).map_err(|e| e.kind());
                    prop_assert_eq!(ra, rb);
                    prop_assert_eq!(a, b);
                }
                Op::Write { offset, data } => {
                    let ra = file.write(*offset, data).map_err(|e| e.kind());
                    let rb = sim.write(*offset, data).map_err(|e| e.kind());
                    prop_assert_eq!(ra, rb, "{:?}", op);
                }
                Op::Erase { from, to } => {
                    let ra = file.erase(*from, *to).map_err(|e| e.kind());
                    let rb = NorFlash::erase(&mut sim, *from, *to).map_err(|e| e.kind());
                    prop_assert_eq!(ra, rb, "{:?}", op);
                }
            }
        }
        prop_assert!(read(&mut file, 0, 3 * 4096) == sim.bytes());
    }
}
