//! Firmware-like test data and the reference patcher, shared by the patch and flash tests.
#![allow(dead_code)]

use otter_agent::patch::Sink;

/// Deterministic PRNG (SplitMix64) so every generated image is reproducible from a seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Bytes that look like a Cortex-M firmware image: a vector table of similar addresses,
/// Thumb-like 16-bit instructions drawn from a small opcode set (so they repeat and compress
/// like real code), a string table, and 0xFF padding up to `len`.
pub fn firmware(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(len);
    // Vector table: 48 handler addresses near each other.
    for _ in 0..48 {
        let addr = 0x0800_0000u32 + (rng.below(0x4000) as u32 & !1) + 1;
        out.extend_from_slice(&addr.to_le_bytes());
    }
    let opcodes: [u16; 12] = [
        0xb580, 0xbd80, 0x4770, 0x2000, 0x6800, 0x6008, 0xf000, 0xe7fe, 0x4601, 0x3001, 0x2800,
        0xd1fc,
    ];
    let code_end = len.saturating_sub(len / 8);
    while out.len() < code_end {
        // A "function": prologue, body, epilogue.
        let body = 4 + rng.below(40);
        out.extend_from_slice(&0xb580u16.to_le_bytes());
        for _ in 0..body {
            let op = opcodes[rng.below(opcodes.len())] | (rng.below(8) as u16);
            out.extend_from_slice(&op.to_le_bytes());
        }
        out.extend_from_slice(&0xbd80u16.to_le_bytes());
        if rng.below(6) == 0 {
            out.extend_from_slice(b"otter: sensor reading out of range\0");
        }
    }
    out.truncate(code_end);
    out.resize(len, 0xff);
    out
}

/// An edit that turns one firmware version into the next.
#[derive(Clone, Debug)]
pub enum Edit {
    /// Overwrite a few bytes (a changed constant or branch offset) at a relative position.
    Poke { at: f64, bytes: Vec<u8> },
    /// Insert a block (a new function) at a relative position.
    Insert { at: f64, block: Vec<u8> },
    /// Remove `len` bytes at a relative position.
    Remove { at: f64, len: usize },
    /// Shift every 32-bit word that looks like an address by `delta` (relinking).
    Relocate { delta: u32 },
    /// Resize to a new length (0xFF padding when growing).
    Resize { len: usize },
}

fn pos(at: f64, len: usize) -> usize {
    ((at.clamp(0.0, 1.0) * len as f64) as usize).min(len)
}

/// Applies `edits` in order to a copy of `old`.
pub fn edit(old: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut new = old.to_vec();
    for e in edits {
        match e {
            Edit::Poke { at, bytes } => {
                let p = pos(*at, new.len());
                for (i, b) in bytes.iter().enumerate() {
                    if let Some(slot) = new.get_mut(p + i) {
                        *slot = *b;
                    }
                }
            }
            Edit::Insert { at, block } => {
                let p = pos(*at, new.len());
                new.splice(p..p, block.iter().copied());
            }
            Edit::Remove { at, len } => {
                let p = pos(*at, new.len());
                let end = (p + len).min(new.len());
                new.drain(p..end);
            }
            Edit::Relocate { delta } => {
                for w in new.chunks_exact_mut(4) {
                    let v = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                    if v & 0xff00_0000 == 0x0800_0000 {
                        w.copy_from_slice(&v.wrapping_add(*delta).to_le_bytes());
                    }
                }
            }
            Edit::Resize { len } => new.resize(*len, 0xff),
        }
    }
    new
}

/// A next version of `old` with scattered pokes and a few inserted blocks.
pub fn next_version(old: &[u8], seed: u64, pokes: usize, inserts: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut edits = Vec::new();
    for _ in 0..pokes {
        let n = 1 + rng.below(8);
        edits.push(Edit::Poke {
            at: rng.below(10_000) as f64 / 10_000.0,
            bytes: rng.bytes(n),
        });
    }
    for i in 0..inserts {
        let n = 64 + rng.below(2048);
        edits.push(Edit::Insert {
            at: rng.below(10_000) as f64 / 10_000.0,
            block: firmware(n, seed ^ (i as u64 + 1)),
        });
    }
    edit(old, &edits)
}

/// The patch `bsdiff::diff` makes (what the server publishes, before compression).
pub fn diff(old: &[u8], new: &[u8]) -> Vec<u8> {
    let mut patch = Vec::new();
    bsdiff::diff(old, new, &mut patch).unwrap();
    patch
}

/// What the reference `bsdiff::patch` makes of a patch, or `None` if it refuses it.
pub fn reference(old: &[u8], patch: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    bsdiff::patch(old, &mut &patch[..], &mut out).ok()?;
    Some(out)
}

/// A sink that records what it gets and fails the test if it ever gets more than `limit`.
pub struct Bounded {
    pub data: Vec<u8>,
    pub limit: usize,
}

impl Bounded {
    pub fn new(limit: usize) -> Self {
        Self {
            data: Vec::new(),
            limit,
        }
    }
}

impl Sink for Bounded {
    type Error = std::convert::Infallible;

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.data.extend_from_slice(bytes);
        assert!(
            self.data.len() <= self.limit,
            "applier wrote {} bytes past the declared {}",
            self.data.len(),
            self.limit
        );
        Ok(())
    }
}
