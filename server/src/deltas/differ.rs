//! The bsdiff differ, writing exactly the patch format of the `bsdiff` 0.2 crate (which the
//! device's applier in `otter-agent` reads), but with the suffix array built by
//! `divsufsort` instead of the crate's recursive `qsufsort`.
//!
//! Why: `qsufsort` recurses once per split of a bucket, so an image with megabytes of one
//! fill byte (a UEFI volume is 58 % `0xFF`) recurses deep enough to overflow a thread's
//! stack, which aborts the whole process. `divsufsort` keeps fixed-size explicit stacks.
//! Suffix arrays are unique, so the match search below sees the same order as the crate's
//! and produces the same patch, byte for byte (a test checks that).
//!
//! The matching loop follows Colin Percival's bsdiff 4 (BSD-2-Clause, Copyright 2003-2005
//! Colin Percival, 2012 Matthew Endsley, 2017 Pieter-Jan Briers), restructured into small
//! functions; the binary search is a loop, not recursion.

use std::cmp::Ordering;

/// Why a diff could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// The suffix array indexes with `i32`.
    #[error("the old image has {len} bytes; the differ takes at most {max}")]
    TooLarge {
        /// Length of the old image.
        len: usize,
        /// The largest length accepted.
        max: usize,
    },
}

/// Appends to `out` the bsdiff patch that turns `old` into `new`.
pub fn diff(old: &[u8], new: &[u8], out: &mut Vec<u8>) -> Result<(), DiffError> {
    let index = suffix_index(old)?;
    let mut cursor = Cursor::default();
    let mut found = Found {
        scan: 0,
        pos: 0,
        len: 0,
        worth_a_control: false,
    };
    while found.scan < new.len() {
        let start = found.scan + found.len;
        found = scan_for_match(&index, old, new, start, cursor.offset, &found);
        if found.worth_a_control {
            emit(old, new, &mut cursor, found.scan, found.pos, out);
        }
    }
    Ok(())
}

/// The sorted suffixes of `old`, with the empty suffix first, as `qsufsort` leaves them.
fn suffix_index(old: &[u8]) -> Result<Vec<usize>, DiffError> {
    let max = usize::try_from(i32::MAX).unwrap_or(usize::MAX);
    if old.len() > max {
        return Err(DiffError::TooLarge {
            len: old.len(),
            max,
        });
    }
    let mut sa = vec![0i32; old.len()];
    divsufsort::sort_in_place(old, &mut sa);
    let mut index = Vec::with_capacity(old.len() + 1);
    index.push(old.len());
    // divsufsort fills `sa` with a permutation of 0..old.len(), all non-negative.
    index.extend(sa.iter().map(|&i| usize::try_from(i).unwrap_or(0)));
    Ok(index)
}

/// Where the previous control left the old and new cursors.
#[derive(Default)]
struct Cursor {
    last_scan: usize,
    last_pos: usize,
    offset: isize,
}

/// What the forward scan found.
struct Found {
    scan: usize,
    pos: usize,
    len: usize,
    /// The match is better than carrying on at the previous alignment.
    worth_a_control: bool,
}

/// From `start`, looks for the first position where the longest match in `old` is not
/// (almost) the continuation of the previous alignment `offset`. At the end of `new` the
/// match of the `previous` search stands (bsdiff 4 emits the last control with it).
fn scan_for_match(
    index: &[usize],
    old: &[u8],
    new: &[u8],
    start: usize,
    offset: isize,
    previous: &Found,
) -> Found {
    let aligned = |at: usize| {
        let o = at as isize + offset;
        o >= 0 && (o as usize) < old.len() && old[o as usize] == new[at]
    };
    let mut scan = start;
    let mut scored = start;
    // Signed, as in bsdiff 4: the decrement below may come before the matching increment.
    let mut old_score = 0isize;
    let (mut pos, mut len) = (previous.pos, previous.len);
    while scan < new.len() {
        (pos, len) = search(index, old, &new[scan..]);
        while scored < scan + len {
            old_score += isize::from(aligned(scored));
            scored += 1;
        }
        let matched = len as isize;
        if (matched == old_score && len != 0) || matched > old_score + 8 {
            break;
        }
        if aligned(scan) {
            old_score -= 1;
        }
        scan += 1;
    }
    Found {
        scan,
        pos,
        len,
        worth_a_control: len as isize != old_score || scan == new.len(),
    }
}

/// Writes one control triple with its add and extra data, and moves the cursor.
fn emit(old: &[u8], new: &[u8], cursor: &mut Cursor, scan: usize, pos: usize, out: &mut Vec<u8>) {
    let mut len_f = forward_extension(old, new, cursor, scan);
    let mut len_b = if scan < new.len() {
        backward_extension(old, new, cursor, scan, pos)
    } else {
        0
    };
    if cursor.last_scan + len_f > scan - len_b {
        let overlap = cursor.last_scan + len_f - (scan - len_b);
        let shift = overlap_split(old, new, cursor, scan, pos, len_f, len_b, overlap);
        len_f = len_f + shift - overlap;
        len_b -= shift;
    }
    let extra_start = cursor.last_scan + len_f;
    let extra_len = scan - len_b - extra_start;
    let seek = pos as isize - len_b as isize - (cursor.last_pos + len_f) as isize;
    out.extend_from_slice(&sign_magnitude(len_f as isize));
    out.extend_from_slice(&sign_magnitude(extra_len as isize));
    out.extend_from_slice(&sign_magnitude(seek));
    out.extend(
        new[cursor.last_scan..cursor.last_scan + len_f]
            .iter()
            .zip(&old[cursor.last_pos..cursor.last_pos + len_f])
            .map(|(n, o)| n.wrapping_sub(*o)),
    );
    out.extend_from_slice(&new[extra_start..extra_start + extra_len]);
    cursor.last_scan = scan - len_b;
    cursor.last_pos = pos - len_b;
    cursor.offset = pos as isize - scan as isize;
}

/// How far the previous match extends forward with at least half its bytes equal.
fn forward_extension(old: &[u8], new: &[u8], cursor: &Cursor, scan: usize) -> usize {
    let (mut s, mut best, mut len) = (0isize, 0isize, 0usize);
    let mut i = 0usize;
    while cursor.last_scan + i < scan && cursor.last_pos + i < old.len() {
        if old[cursor.last_pos + i] == new[cursor.last_scan + i] {
            s += 1;
        }
        i += 1;
        if s * 2 - i as isize > best * 2 - len as isize {
            best = s;
            len = i;
        }
    }
    len
}

/// How far the new match extends backward with at least half its bytes equal.
fn backward_extension(old: &[u8], new: &[u8], cursor: &Cursor, scan: usize, pos: usize) -> usize {
    let (mut s, mut best, mut len) = (0isize, 0isize, 0usize);
    let mut i = 1usize;
    while scan >= cursor.last_scan + i && pos >= i {
        if old[pos - i] == new[scan - i] {
            s += 1;
        }
        if s * 2 - i as isize > best * 2 - len as isize {
            best = s;
            len = i;
        }
        i += 1;
    }
    len
}

/// Where to split an overlap of the forward and backward extensions.
#[allow(clippy::too_many_arguments)]
fn overlap_split(
    old: &[u8],
    new: &[u8],
    cursor: &Cursor,
    scan: usize,
    pos: usize,
    len_f: usize,
    len_b: usize,
    overlap: usize,
) -> usize {
    let (mut s, mut best, mut split) = (0isize, 0isize, 0usize);
    for i in 0..overlap {
        let f = cursor.last_scan + len_f - overlap + i;
        if new[f] == old[cursor.last_pos + len_f - overlap + i] {
            s += 1;
        }
        if new[scan - len_b + i] == old[pos - len_b + i] {
            s -= 1;
        }
        if s > best {
            best = s;
            split = i + 1;
        }
    }
    split
}

/// The longest prefix of `new` found in `old`: its position there and its length. A binary
/// search over the sorted suffixes, ending on the better of the last two candidates.
fn search(index: &[usize], old: &[u8], new: &[u8]) -> (usize, usize) {
    let mut suffixes = index;
    while suffixes.len() >= 3 {
        let mid = (suffixes.len() - 1) / 2;
        let left = &old[suffixes[mid]..];
        let n = left.len().min(new.len());
        suffixes = if left[..n].cmp(&new[..n]) == Ordering::Less {
            &suffixes[mid..]
        } else {
            &suffixes[..=mid]
        };
    }
    let first = suffixes[0];
    let last = suffixes[suffixes.len() - 1];
    let x = match_len(&old[first..], new);
    let y = match_len(&old[last..], new);
    if x > y { (first, x) } else { (last, y) }
}

/// Length of the common prefix of `a` and `b`, compared a word at a time.
fn match_len(a: &[u8], b: &[u8]) -> usize {
    const WORD: usize = 16;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + WORD <= n && a[i..i + WORD] == b[i..i + WORD] {
        i += WORD;
    }
    i + a[i..n]
        .iter()
        .zip(&b[i..n])
        .take_while(|(x, y)| x == y)
        .count()
}

/// An integer as the patch stores it: 8 bytes little-endian, bit 63 the sign.
fn sign_magnitude(x: isize) -> [u8; 8] {
    let x = x as i64;
    if x >= 0 {
        x.to_le_bytes()
    } else {
        (x.unsigned_abs() | (1u64 << 63)).to_le_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 7) as u8
            })
            .collect()
    }

    fn ours(old: &[u8], new: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        diff(old, new, &mut out).unwrap();
        out
    }

    #[test]
    fn writes_the_same_patch_as_the_bsdiff_crate() {
        let mut cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (vec![], vec![]),
            (vec![], b"new".to_vec()),
            (b"old".to_vec(), vec![]),
            (vec![0xff; 5000], vec![0xff; 4000]),
        ];
        for seed in 1..40u64 {
            let old = noise(200 + (seed as usize * 977) % 20_000, seed);
            let mut new = old.clone();
            for k in 0..(seed as usize % 9) {
                let at = (k * 7919 + seed as usize * 31) % new.len();
                new[at] = new[at].wrapping_add(1 + k as u8);
            }
            let at = new.len() / 2;
            new.splice(at..at, noise(seed as usize * 13, seed + 99));
            new.extend(std::iter::repeat_n(0xff, seed as usize * 50));
            cases.push((old, new));
        }
        for (old, new) in &cases {
            let mut theirs = Vec::new();
            bsdiff::diff(old, new, &mut theirs).unwrap();
            assert_eq!(
                ours(old, new),
                theirs,
                "old {} new {}",
                old.len(),
                new.len()
            );
        }
    }

    #[test]
    fn megabytes_of_fill_diff_on_a_small_stack() {
        // No recursion that grows with the input: a quarter of a megabyte of stack suffices.
        let mut old = noise(200_000, 5);
        old.extend(std::iter::repeat_n(0xff, 3 << 20));
        let mut new = old.clone();
        new[1000] ^= 0x55;
        new.splice(150_000..150_000, noise(4000, 6));
        let (o, n) = (old.clone(), new.clone());
        let patch = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || ours(&o, &n))
            .unwrap()
            .join()
            .unwrap();
        let mut rebuilt = Vec::new();
        bsdiff::patch(&old, &mut patch.as_slice(), &mut rebuilt).unwrap();
        assert_eq!(rebuilt, new);
    }
}
