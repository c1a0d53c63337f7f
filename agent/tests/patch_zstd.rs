//! The zstd layer: patches compressed as the server does (window log 17) apply streaming;
//! a larger window, a truncated or corrupt stream get typed errors; errors of the download
//! itself pass through untouched.

#[path = "patch_fixtures/mod.rs"]
mod fixtures;

use std::io::{self, Read, Write};

use fixtures::{Rng, diff, firmware, next_version, reference};
use otter_agent::patch::{
    DecompressError, PatchError, apply, decompressor, decompressor_with_window_log,
};
use otter_keys::targets::DELTA_ZSTD_WINDOW_LOG;

fn compress(data: &[u8], window_log: u32) -> Vec<u8> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
    enc.window_log(window_log).unwrap();
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn window_17_patch_round_trips_through_the_streaming_applier() {
    let old = firmware(1024 * 1024, 41);
    let new = next_version(&old, 42, 40, 4);
    let patch = diff(&old, &new);
    let compressed = compress(&patch, DELTA_ZSTD_WINDOW_LOG);
    assert!(
        compressed.len() < patch.len() / 4,
        "patch should compress well"
    );

    let mut out = Vec::new();
    let stats = apply(
        decompressor(&compressed[..]).unwrap(),
        &old[..],
        &mut out,
        new.len() as u64,
    )
    .unwrap();
    assert_eq!(stats.written, new.len() as u64);
    assert_eq!(stats.patch_bytes, patch.len() as u64);
    assert!(out == new);
    assert!(reference(&old, &patch).unwrap() == out);
}

#[test]
fn patch_compressed_with_a_larger_window_is_refused() {
    // A whole 1 MiB image as extra data: the encoder really uses a 4 MiB window.
    let new = firmware(1024 * 1024, 43);
    let patch = diff(&[], &new);
    let compressed = compress(&patch, 22);

    let mut out = Vec::new();
    let err = apply(
        decompressor(&compressed[..]).unwrap(),
        &[][..],
        &mut out,
        new.len() as u64,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            PatchError::Decompress(DecompressError::WindowTooLarge { max_log: 17 })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("window"), "{err}");
    assert!(out.is_empty(), "nothing decoded, nothing written");

    // The stream itself is fine: a decoder allowed the larger window reads it.
    let mut plain = Vec::new();
    decompressor_with_window_log(&compressed[..], 22)
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    assert!(plain == patch);
}

#[test]
fn truncated_and_corrupt_streams_get_typed_errors() {
    let old = firmware(64 * 1024, 44);
    let new = next_version(&old, 45, 10, 1);
    let compressed = compress(&diff(&old, &new), DELTA_ZSTD_WINDOW_LOG);

    let cut = &compressed[..compressed.len() - 5];
    let err = apply(
        decompressor(cut).unwrap(),
        &old[..],
        Vec::new(),
        new.len() as u64,
    )
    .unwrap_err();
    assert!(
        matches!(err, PatchError::Decompress(DecompressError::Truncated)),
        "{err}"
    );

    let garbage = Rng(46).bytes(4096);
    let err = apply(
        decompressor(&garbage[..]).unwrap(),
        &old[..],
        Vec::new(),
        10,
    )
    .unwrap_err();
    assert!(
        matches!(err, PatchError::Decompress(DecompressError::Corrupt(_))),
        "{err}"
    );

    // A flipped byte inside compressed data may decode to a well-formed patch with other
    // bytes (zstd frames carry no checksum unless the encoder adds one): then the apply
    // succeeds with a different image, which the SHA-256 check after the apply refuses.
    // Otherwise it is a typed error. Never the declared image, never a panic.
    for at in (0..compressed.len()).step_by(7) {
        let mut flipped = compressed.clone();
        flipped[at] ^= 0x55;
        let mut out = Vec::new();
        match apply(
            decompressor(&flipped[..]).unwrap(),
            &old[..],
            &mut out,
            new.len() as u64,
        ) {
            Ok(_) => assert!(out != new, "flip at {at} changed nothing"),
            Err(_) => assert!(out.len() <= new.len()),
        }
    }
}

/// A download that fails after some bytes.
struct FailingReader<'a> {
    data: &'a [u8],
    fail_after: usize,
}

impl Read for FailingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.fail_after == 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "link dropped",
            ));
        }
        let n = buf.len().min(self.fail_after).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.fail_after -= n;
        Ok(n)
    }
}

#[test]
fn download_errors_pass_through_unchanged() {
    let old = firmware(64 * 1024, 47);
    let new = next_version(&old, 48, 10, 1);
    let compressed = compress(&diff(&old, &new), DELTA_ZSTD_WINDOW_LOG);
    let reader = FailingReader {
        data: &compressed,
        fail_after: compressed.len() / 2,
    };
    let err = apply(
        decompressor(reader).unwrap(),
        &old[..],
        Vec::new(),
        new.len() as u64,
    )
    .unwrap_err();
    match err {
        PatchError::Read(e) => {
            assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
            assert_eq!(e.to_string(), "link dropped");
        }
        other => panic!("expected the download's own error, got {other}"),
    }
}

#[test]
fn empty_patch_round_trips_but_an_empty_stream_is_truncated() {
    // An empty patch (empty new image) still has a zstd frame.
    let mut out = Vec::new();
    let empty = compress(&[], DELTA_ZSTD_WINDOW_LOG);
    apply(decompressor(&empty[..]).unwrap(), &[][..], &mut out, 0).unwrap();
    assert!(out.is_empty());
    // No frame at all is a cut-off download, not an empty patch.
    let err = apply(decompressor(&[][..]).unwrap(), &[][..], &mut out, 0).unwrap_err();
    assert!(
        matches!(err, PatchError::Decompress(DecompressError::Truncated)),
        "{err}"
    );
}
