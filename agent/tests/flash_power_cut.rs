//! `FileFlash` with a `PowerCut`: the chosen operation is torn as a real chip tears it
//! (nothing, a prefix, or a prefix plus mixed bits), and a dead flash does nothing more.

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use otter_agent::flash::{FileFlash, FileFlashError, PowerCut, Tear};

const SECTOR: u32 = 4096;

fn flash_with(cut: &PowerCut) -> (tempfile::TempDir, FileFlash) {
    let dir = tempfile::tempdir().unwrap();
    let flash = FileFlash::create(dir.path().join("flash.bin"), 4 * SECTOR)
        .unwrap()
        .with_power_cut(Some(cut.clone()));
    (dir, flash)
}

fn reopen(dir: &tempfile::TempDir) -> FileFlash {
    FileFlash::open(dir.path().join("flash.bin")).unwrap()
}

fn read(f: &mut FileFlash, offset: u32, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    f.read(offset, &mut buf).unwrap();
    buf
}

#[test]
fn counting_counts_erases_and_programs_but_not_reads() {
    let cut = PowerCut::counting();
    let (_dir, mut f) = flash_with(&cut);
    f.write(0, &[0u8; 8]).unwrap();
    f.erase(0, 2 * SECTOR).unwrap();
    let _ = read(&mut f, 0, 16);
    assert_eq!(cut.operations(), 2);
    assert!(!cut.is_dead());
}

#[test]
fn a_cut_before_a_program_writes_nothing_and_the_flash_stays_dead() {
    let cut = PowerCut::at(1, Tear::Before);
    let (dir, mut f) = flash_with(&cut);
    f.write(0, &[0x11; 4]).unwrap();
    assert!(matches!(
        f.write(4, &[0x22; 4]),
        Err(FileFlashError::PowerLost)
    ));
    assert!(matches!(
        f.write(8, &[0x33; 4]),
        Err(FileFlashError::PowerLost)
    ));
    let mut buf = [0u8; 4];
    assert!(matches!(
        f.read(0, &mut buf),
        Err(FileFlashError::PowerLost)
    ));
    let mut on_again = reopen(&dir);
    assert_eq!(
        read(&mut on_again, 0, 12),
        [[0x11; 4], [0xFF; 4], [0xFF; 4]].concat()
    );
}

#[test]
fn a_cut_halfway_through_a_program_keeps_only_the_first_words() {
    let cut = PowerCut::at(0, Tear::Prefix);
    let (dir, mut f) = flash_with(&cut);
    assert!(matches!(
        f.write(0, &[0u8; 16]),
        Err(FileFlashError::PowerLost)
    ));
    let mut on_again = reopen(&dir);
    assert_eq!(read(&mut on_again, 0, 16), [[0u8; 8], [0xFF; 8]].concat());
}

#[test]
fn a_cut_inside_a_word_leaves_old_and_new_bits_mixed() {
    let cut = PowerCut::at(0, Tear::Inside);
    let (dir, mut f) = flash_with(&cut);
    assert!(matches!(
        f.write(0, &[0u8; 8]),
        Err(FileFlashError::PowerLost)
    ));
    let mut on_again = reopen(&dir);
    let bytes = read(&mut on_again, 0, 8);
    assert_eq!(bytes[..4], [0u8; 4], "the first word is done");
    assert_ne!(
        bytes[4..],
        [0u8; 4],
        "the torn word is not fully programmed"
    );
    assert_ne!(
        bytes[4..],
        [0xFF; 4],
        "the torn word is not untouched either"
    );
}

#[test]
fn a_torn_erase_leaves_later_sectors_and_part_of_the_cut_sector_unerased() {
    let cut = PowerCut::at(1, Tear::Inside);
    let (dir, mut f) = flash_with(&cut);
    f.write(0, &vec![0u8; 4 * SECTOR as usize]).unwrap();
    assert!(matches!(
        f.erase(0, 4 * SECTOR),
        Err(FileFlashError::PowerLost)
    ));
    let mut on_again = reopen(&dir);
    let all = read(&mut on_again, 0, 4 * SECTOR as usize);
    let sector = |i: usize| &all[i * SECTOR as usize..(i + 1) * SECTOR as usize];
    assert!(
        sector(0).iter().chain(sector(1)).all(|&b| b == 0xFF),
        "first half erased"
    );
    assert!(
        sector(2)[..16].iter().any(|&b| b != 0 && b != 0xFF),
        "torn bytes mixed"
    );
    assert!(sector(3).iter().all(|&b| b == 0), "the rest untouched");
}
