//! How long the server's differ takes and how small its patches are, on firmware-like images.
//!
//! `cargo bench -p otter-server --bench delta` prints one row per case: bsdiff time, raw and
//! zstd patch sizes (window 2^17, as published), the zstd-compressed full image it competes
//! with, and two references measured in the same run: compressing the full image with the
//! same settings, and applying the patch (zstd decode + bspatch). The last case adds 3 MiB of
//! 0xFF padding to a 1 MiB image, the layout of a firmware padded to its slot, which is
//! where bsdiff's suffix sort degrades.
//!
//! The images are synthetic Thumb-like code: 16- and 32-bit instructions, relative branches
//! and absolute pointers into the image (which all move when code is inserted, as in a real
//! rebuild), literal constants and strings. The new version edits ~0.3 % of the items and
//! inserts code in three places.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use otter_server::deltas::build::{self, MAX_PATCH_PERCENT, ZSTD_LEVEL};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone)]
enum Item {
    Thumb16(u16),
    Thumb32(u32),
    /// `BL`-like relative branch to another item.
    Branch(usize),
    /// Absolute address of another item (literal pool).
    Pointer(usize),
    Constant(u32),
    Text(&'static [u8]),
}

const WORDS: [&[u8]; 8] = [
    b"sensor timeout\0",
    b"flash write failed\0",
    b"i2c nack\0",
    b"ok\0",
    b"config v2\0",
    b"watchdog\0",
    b"ble adv start\0",
    b"low battery\0",
];
const OPCODES: [u16; 12] = [
    0x2000, 0x4600, 0x6800, 0x6000, 0xb500, 0xbd00, 0x3000, 0x1c00, 0x4280, 0xd000, 0xe000, 0x4770,
];

fn random_item(rng: &mut Rng, items: usize) -> Item {
    match rng.below(100) {
        0..55 => {
            let op = OPCODES[rng.below(OPCODES.len() as u64) as usize];
            Item::Thumb16(op | (rng.below(64) as u16))
        }
        55..70 => {
            Item::Thumb32(0xf000_8000 | ((rng.below(1 << 14) as u32) << 16) | rng.below(256) as u32)
        }
        70..82 => Item::Branch(rng.below(items as u64) as usize),
        82..90 => Item::Pointer(rng.below(items as u64) as usize),
        90..97 => Item::Constant(rng.below(1024) as u32),
        _ => Item::Text(WORDS[rng.below(WORDS.len() as u64) as usize]),
    }
}

fn item_len(item: &Item) -> usize {
    match item {
        Item::Thumb16(_) => 2,
        Item::Thumb32(_) | Item::Branch(_) | Item::Pointer(_) | Item::Constant(_) => 4,
        Item::Text(t) => t.len(),
    }
}

fn program(rng: &mut Rng, len: usize) -> Vec<Item> {
    let count = len / 3;
    (0..count).map(|_| random_item(rng, count)).collect()
}

fn serialize(items: &[Item], len: usize) -> Vec<u8> {
    let mut offsets = Vec::with_capacity(items.len());
    let mut at = 0usize;
    for item in items {
        offsets.push(at);
        at += item_len(item);
    }
    let mut out = Vec::with_capacity(at);
    for (i, item) in items.iter().enumerate() {
        match item {
            Item::Thumb16(x) => out.extend_from_slice(&x.to_le_bytes()),
            Item::Thumb32(x) | Item::Constant(x) => out.extend_from_slice(&x.to_le_bytes()),
            Item::Branch(t) => {
                let rel = (offsets[*t] as i64 - offsets[i] as i64) / 2;
                let word =
                    0xf000_d000u32 | (((rel as u32 >> 11) & 0x7ff) << 16) | (rel as u32 & 0x7ff);
                out.extend_from_slice(&word.to_le_bytes());
            }
            Item::Pointer(t) => {
                out.extend_from_slice(&((0x0800_0000u32 + offsets[*t] as u32) | 1).to_le_bytes())
            }
            Item::Text(t) => out.extend_from_slice(t),
        }
    }
    out.resize(len, 0);
    out
}

/// The next release: scattered edits and three insertions; references follow their targets.
fn next_release(rng: &mut Rng, items: &[Item]) -> Vec<Item> {
    let mut new = items.to_vec();
    let count = new.len();
    for _ in 0..count * 3 / 1000 {
        let at = rng.below(count as u64) as usize;
        new[at] = random_item(rng, count);
    }
    for k in 0..3 {
        let at = rng.below(new.len() as u64) as usize;
        let inserted: Vec<Item> = (0..200 + k * 150)
            .map(|_| random_item(rng, count))
            .collect();
        let shift = inserted.len();
        for item in &mut new {
            if let Item::Branch(t) | Item::Pointer(t) = item
                && *t >= at
            {
                *t += shift;
            }
        }
        new.splice(at..at, inserted);
    }
    new
}

struct Case {
    name: String,
    old: Vec<u8>,
    new: Vec<u8>,
}

fn case(name: &str, code: usize, padding: usize, seed: u64) -> Case {
    let mut rng = Rng(seed);
    let v1 = program(&mut rng, code);
    let v2 = next_release(&mut rng, &v1);
    let pad = |mut image: Vec<u8>| {
        image.resize(code + padding, 0xff);
        image
    };
    Case {
        name: name.to_owned(),
        old: pad(serialize(&v1, code)),
        new: pad(serialize(&v2, code)),
    }
}

fn timed<T>(reps: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..reps {
        let start = Instant::now();
        let value = f();
        best = best.min(start.elapsed());
        out = Some(value);
    }
    (best, out.expect("at least one repetition"))
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn kib(n: usize) -> String {
    format!("{:.1}", n as f64 / 1024.0)
}

fn main() {
    let cases = [
        case("code 256 KiB", 256 << 10, 0, 1),
        case("code 1 MiB", 1 << 20, 0, 2),
        case("code 4 MiB", 4 << 20, 0, 3),
        case("code 1 MiB + 3 MiB 0xFF", 1 << 20, 3 << 20, 2),
    ];
    println!(
        "bsdiff + zstd (level {ZSTD_LEVEL}, window 2^{}), best of N runs; 'kept' = patch <= {MAX_PATCH_PERCENT}% of zstd full\n",
        otter_keys::targets::DELTA_ZSTD_WINDOW_LOG
    );
    println!(
        "| case | image KiB | diff ms | patch KiB | zstd patch KiB | zstd full KiB | patch/full | kept | zstd full ms | apply ms | differ RAM est. MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|");
    let started = Instant::now();
    for case in &cases {
        let reps = if case.old.len() <= 1 << 20 { 3 } else { 1 };
        let (diff_time, raw) = timed(reps, || {
            let mut raw = Vec::new();
            bsdiff::diff(&case.old, &case.new, &mut raw).unwrap();
            raw
        });
        let packed = build::compress(&raw).unwrap();
        let (full_time, full) = timed(reps, || {
            build::compressed_len(black_box(&case.new)).unwrap()
        });
        let (apply_time, rebuilt) =
            timed(reps.max(3), || build::apply(&case.old, &packed).unwrap());
        assert!(
            rebuilt == case.new,
            "{}: patch does not reproduce",
            case.name
        );
        let kept = build::worth_publishing(packed.len() as u64, full);
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.1}% | {} | {} | {} | {} |",
            case.name,
            kib(case.new.len()),
            ms(diff_time),
            kib(raw.len()),
            kib(packed.len()),
            kib(full as usize),
            packed.len() as f64 * 100.0 / full as f64,
            if kept { "yes" } else { "no" },
            ms(full_time),
            ms(apply_time),
            (case.old.len() as u64 * build::DIFF_BYTES_PER_OLD_BYTE) >> 20,
        );
    }
    println!("\ntotal {:.1} s", started.elapsed().as_secs_f64());
}
