//! Memory and time of a streaming delta install, for 1 MiB and 16 MiB firmware-like images:
//! a zstd-compressed bsdiff patch applied from slot A into slot B of a `FileFlash`, next to
//! a plain copy of the image from slot A into slot B as the reference.
//!
//! Heap is counted by a `#[global_allocator]` (`peak_alloc`, whose `unsafe impl GlobalAlloc`
//! our `forbid(unsafe_code)` cannot host); it sees Rust allocations only. zstd's own
//! context and window are allocated by C `malloc`, so the RSS high-water mark (VmHWM after
//! resetting it through /proc/self/clear_refs) is reported too.
//!
//! Exits non-zero if the heap high-water mark above the value before the apply reaches
//! 1 MiB: the bound of design invariant 4 (patch RAM does not grow with the image).

#[path = "../tests/patch_fixtures/mod.rs"]
mod fixtures;

use std::cell::RefCell;
use std::fs::File;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use embedded_storage::nor_flash::ReadNorFlash;
use otter_agent::flash::{FileFlash, SlotWriter};
use otter_agent::patch::{FlashRegion, OldImage, apply, decompressor};
use otter_boot::flash::Shared;
use otter_boot::{Layout, Partition, Slot};
use otter_keys::targets::DELTA_ZSTD_WINDOW_LOG;
use peak_alloc::PeakAlloc;
use sha2::{Digest, Sha256};

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

const MIB: usize = 1024 * 1024;
const SECTOR: u32 = 4096;
/// The bound checked: heap high-water mark above the pre-apply value.
const HEAP_LIMIT: usize = MIB;

struct Row {
    image: usize,
    patch_raw: usize,
    patch_zstd: usize,
    apply: Duration,
    copy: Duration,
    heap_peak: usize,
    rss_peak: Option<u64>,
}

/// A value of /proc/self/status in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets VmHWM to the current RSS; returns the RSS then, if the kernel allows it.
fn reset_rss_peak() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    status_kib("VmRSS:")
}

fn layout(slot_size: u32) -> Layout {
    Layout::new(
        Partition::new(0, 0, slot_size),
        Partition::new(0, slot_size, slot_size),
        Partition::new(0, 2 * slot_size, 4 * SECTOR),
    )
    .unwrap()
}

fn run(size: usize, seed: u64, dir: &std::path::Path) -> Row {
    // Release N+1: scattered small edits (one per 16 KiB) and four inserted blocks.
    let old = fixtures::firmware(size, seed);
    let new = fixtures::next_version(&old, seed + 1, size / (16 * 1024), 4);
    let t = Instant::now();
    let patch = fixtures::diff(&old, &new);
    eprintln!(
        "  {} MiB: bsdiff::diff took {:.1?}",
        size / MIB,
        t.elapsed()
    );
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
    enc.window_log(DELTA_ZSTD_WINDOW_LOG).unwrap();
    enc.write_all(&patch).unwrap();
    let compressed = enc.finish().unwrap();
    // The download lives in a file, as on a device.
    let patch_path = dir.join(format!("{size}.patch.zst"));
    std::fs::write(&patch_path, &compressed).unwrap();

    let slot_size = (old.len().max(new.len()) as u32).next_multiple_of(SECTOR);
    let layout = layout(slot_size);
    let flash_path = dir.join(format!("{size}.flash"));
    let flash = RefCell::new(FileFlash::create(&flash_path, 2 * slot_size + 4 * SECTOR).unwrap());
    let mut w = SlotWriter::new(Shared::new(&flash), layout.slot(Slot::A)).unwrap();
    w.write(&old).unwrap();
    w.finish().unwrap();

    let new_len = new.len() as u64;
    let new_sha: [u8; 32] = Sha256::digest(&new).into();
    let (old_len, patch_raw, patch_zstd) = (old.len(), patch.len(), compressed.len());
    drop((old, new, patch, compressed));

    // Reference: copy the old image from slot A into slot B, 4 KiB at a time.
    let t = Instant::now();
    {
        let mut src = FlashRegion::new(
            Shared::new(&flash),
            layout.slot(Slot::A).offset,
            old_len as u32,
        )
        .unwrap();
        let mut dst = SlotWriter::new(Shared::new(&flash), layout.slot(Slot::B)).unwrap();
        let mut buf = [0u8; 4096];
        let mut at = 0u64;
        while at < src.len() {
            let n = (src.len() - at).min(4096) as usize;
            src.read_at(at, &mut buf[..n]).unwrap();
            dst.write(&buf[..n]).unwrap();
            at += n as u64;
        }
        dst.finish().unwrap();
    }
    let copy = t.elapsed();

    // The measured install.
    let patch_file = File::open(&patch_path).unwrap();
    let heap_before = HEAP.current_usage();
    HEAP.reset_peak_usage();
    let rss_before = reset_rss_peak();
    let t = Instant::now();
    {
        let source = FlashRegion::new(
            Shared::new(&flash),
            layout.slot(Slot::A).offset,
            old_len as u32,
        )
        .unwrap();
        let mut sink = SlotWriter::new(Shared::new(&flash), layout.slot(Slot::B)).unwrap();
        apply(
            decompressor(patch_file).unwrap(),
            source,
            &mut sink,
            new_len,
        )
        .unwrap();
        sink.finish().unwrap();
    }
    let apply_time = t.elapsed();
    let heap_peak = HEAP.peak_usage().saturating_sub(heap_before);
    let rss_peak =
        rss_before.and_then(|before| Some(status_kib("VmHWM:")?.saturating_sub(before) * 1024));

    // The slot holds exactly the new image.
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0u64;
    let base = layout.slot(Slot::B).offset;
    while at < new_len {
        let n = (new_len - at).min(buf.len() as u64) as usize;
        flash
            .borrow_mut()
            .read(base + at as u32, &mut buf[..n])
            .unwrap();
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    assert_eq!(
        <[u8; 32]>::from(hasher.finalize()),
        new_sha,
        "slot B differs"
    );

    Row {
        image: new_len as usize,
        patch_raw,
        patch_zstd,
        apply: apply_time,
        copy,
        heap_peak,
        rss_peak,
    }
}

fn kib(bytes: usize) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    for (size, seed) in [(MIB, 100), (16 * MIB, 200)] {
        rows.push(run(size, seed, dir.path()));
    }

    println!();
    println!(
        "| image | patch (bsdiff) | patch (zstd, window 2^{DELTA_ZSTD_WINDOW_LOG}) | apply A->B | copy A->B | apply/copy | heap peak | RSS peak |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut over = false;
    for r in &rows {
        over |= r.heap_peak >= HEAP_LIMIT;
        println!(
            "| {:.2} MiB | {} | {} | {:.1?} | {:.1?} | {:.1}x | {} | {} |",
            r.image as f64 / MIB as f64,
            kib(r.patch_raw),
            kib(r.patch_zstd),
            r.apply,
            r.copy,
            r.apply.as_secs_f64() / r.copy.as_secs_f64().max(1e-9),
            kib(r.heap_peak),
            r.rss_peak
                .map_or_else(|| "n/a".to_string(), |b| kib(b as usize)),
        );
    }
    println!();
    println!(
        "heap peak: Rust allocations above the value before the apply (bound: < {}).",
        kib(HEAP_LIMIT)
    );
    println!(
        "RSS peak: VmHWM above VmRSS after reset through /proc/self/clear_refs; includes zstd's C allocations."
    );
    if over {
        eprintln!(
            "FAIL: heap high-water mark of an apply reached {}",
            kib(HEAP_LIMIT)
        );
        return ExitCode::FAILURE;
    }
    println!(
        "OK: heap high-water mark stays under {} for every size.",
        kib(HEAP_LIMIT)
    );
    ExitCode::SUCCESS
}
