//! Verification throughput of [`otter_boot::verify`] for 1 MiB and 16 MiB images read
//! from a RAM-backed flash ([`otter_boot::flash::SliceFlash`]), beside plain SHA-256 over
//! the same bytes in the same run.
//!
//! The verifier hashes every payload byte exactly once and then checks one ed25519
//! signature (a fixed cost of tens of microseconds, independent of the image size), so
//! SHA-256 over the image is the upper limit of its throughput. What the gap between
//! `sha256` and `verify` shows is the streaming overhead: copying each chunk out of the
//! flash into the verifier's buffer, the per-chunk bookkeeping, and the signature check.
//! `verify` uses the default 512-byte stack buffer ([`VERIFY_BUFFER_LEN`]);
//! `verify_4k_buffer` passes a 4 KiB buffer to [`verify_with_buffer`] to show what the
//! small buffer costs.
//!
//! Every function reports `Throughput::Bytes` of the whole image (header, payload and
//! signature), so the MiB/s figures are directly comparable. Run with
//! `cargo bench -p otter-boot`.

// A benchmark harness may abort on a setup failure: there is nothing to recover, and a
// benchmark of a failing path would measure nothing useful.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::{Signer, SigningKey};
use otter_boot::flash::SliceFlash;
use otter_boot::image::{
    HEADER_LEN, HardwareId, Header, SIGNATURE_LEN, Version, encode_image, signed_message,
};
use otter_boot::trust::{Anchors, TrustedKey};
use otter_boot::verify::{VERIFY_BUFFER_LEN, verify, verify_with_buffer};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;
const BIG_BUFFER_LEN: usize = 4096;
const HARDWARE_ID: &str = "bench-board";
const SECURITY_COUNTER: u32 = 1;

/// Deterministic pseudo-random bytes (splitmix64), so the payload is not trivially
/// compressible and every run hashes the same data.
fn payload(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x0123_4567_89ab_cdef;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A signed image with a `payload_len`-byte payload, and the key that signed it.
fn signed_image(payload_len: usize) -> (Vec<u8>, TrustedKey) {
    let signing_key = SigningKey::from_bytes(&[7u8; 32]);
    let trusted = TrustedKey::new(signing_key.verifying_key().to_bytes());
    let payload = payload(payload_len);
    let header = Header {
        flags: 0,
        hardware_id: HardwareId::new(HARDWARE_ID).expect("valid hardware id"),
        version: Version::new(1, 0, 0),
        security_counter: SECURITY_COUNTER,
        payload_len: u32::try_from(payload_len).expect("payload fits in u32"),
        key_id: trusted.id,
        payload_sha256: Sha256::digest(&payload).into(),
    };
    let message = signed_message(&header.encode(), &header.payload_sha256);
    let signature = signing_key.sign(&message).to_bytes();
    let image_len = header.image_len().expect("image length fits in u32") as usize;
    assert_eq!(image_len, HEADER_LEN + payload_len + SIGNATURE_LEN);
    let mut image = vec![0u8; image_len];
    let written = encode_image(&header, &payload, &signature, &mut image).expect("encode image");
    assert_eq!(written, image_len);
    (image, trusted)
}

fn bench_image(
    c: &mut Criterion,
    name: &str,
    payload_len: usize,
    sample_size: usize,
    measurement_time: Duration,
) {
    let (image, trusted) = signed_image(payload_len);
    let keys = [trusted];
    let anchors = Anchors {
        hardware_id: HardwareId::new(HARDWARE_ID).expect("valid hardware id"),
        keys: &keys,
    };
    let capacity = u32::try_from(image.len()).expect("image fits in u32");
    let mut big_buffer = vec![0u8; BIG_BUFFER_LEN];

    // Once, outside the timed loops: both paths must accept the image, or the numbers
    // below would time an early rejection.
    let header = verify(&mut SliceFlash(&image), 0, capacity, &anchors, 0)
        .expect("verify accepts the benchmark image");
    assert_eq!(header.payload_len as usize, payload_len);
    assert!(
        verify_with_buffer(
            &mut SliceFlash(&image),
            0,
            capacity,
            &anchors,
            0,
            &mut big_buffer
        )
        .is_ok(),
        "verify_with_buffer accepts the benchmark image"
    );

    let mut group = c.benchmark_group(name);
    group
        .throughput(Throughput::Bytes(image.len() as u64))
        .sample_size(sample_size)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(measurement_time);

    group.bench_function("sha256", |b| {
        b.iter(|| Sha256::digest(black_box(image.as_slice())));
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            let mut flash = SliceFlash(black_box(image.as_slice()));
            verify(&mut flash, 0, capacity, &anchors, 0)
        });
    });
    group.bench_function("verify_4k_buffer", |b| {
        b.iter(|| {
            let mut flash = SliceFlash(black_box(image.as_slice()));
            verify_with_buffer(&mut flash, 0, capacity, &anchors, 0, &mut big_buffer)
        });
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    const _: () = assert!(VERIFY_BUFFER_LEN < BIG_BUFFER_LEN);
    bench_image(c, "verify_1MiB", MIB, 20, Duration::from_secs(2));
    bench_image(c, "verify_16MiB", 16 * MIB, 10, Duration::from_secs(3));
}

criterion_group!(verify_benches, benches);
criterion_main!(verify_benches);
