//! Streaming read of a large object: its own test binary, so the process's peak memory
//! reflects this download alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;

use sluice_aws::s3::S3Store;
use sluice_core::ports::{ByteSink, ObjectStore};

/// Peak resident memory of this process so far, in bytes (Linux `VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[tokio::test]
async fn a_large_object_is_read_without_holding_it_in_memory() {
    let store = S3Store::new(common::clients().await.s3);
    let b = sluice_testkit::unique("stream");
    store
        .client()
        .create_bucket()
        .bucket(&b)
        .send()
        .await
        .unwrap();
    let size: usize = 96 << 20;
    let mut src = tempfile::NamedTempFile::new().unwrap();
    let block = vec![7u8; 1 << 20];
    for i in 0..(size >> 20) {
        let mut blk = block.clone();
        blk[0] = i as u8;
        src.write_all(&blk).unwrap();
    }
    src.flush().unwrap();
    store.put_file(&b, "large.bin", src.path()).await.unwrap();

    let before = peak_rss();
    let dest = tempfile::NamedTempFile::new().unwrap();
    let info = store
        .get_to_file(&b, "large.bin", None, dest.path())
        .await
        .unwrap();
    let grew = peak_rss().saturating_sub(before);
    assert_eq!(info.size, size as u64);
    assert_eq!(std::fs::metadata(dest.path()).unwrap().len(), size as u64);
    assert!(
        grew < (size as u64) / 3,
        "peak memory grew by {} MiB while downloading {} MiB",
        grew >> 20,
        size >> 20
    );

    // Streamed into a sink (ingest's path for CSV): every byte in order, then the end.
    let mut counting = Counting::default();
    let info = store
        .get_into(&b, "large.bin", None, &mut counting)
        .await
        .unwrap();
    assert_eq!((info.size, counting.bytes), (size as u64, size as u64));
    assert!(counting.ended);
    assert_eq!(counting.first_of_each_mib, (0..96).collect::<Vec<u8>>());
    // A reader that stops: the download stops, no error, no end.
    let mut stopping = Counting {
        stop_after: Some(1),
        ..Counting::default()
    };
    store
        .get_into(&b, "large.bin", None, &mut stopping)
        .await
        .unwrap();
    assert!(!stopping.ended);
    assert!(stopping.bytes < size as u64);
}

#[derive(Default)]
struct Counting {
    bytes: u64,
    first_of_each_mib: Vec<u8>,
    ended: bool,
    stop_after: Option<usize>,
    chunks: usize,
}

impl ByteSink for Counting {
    async fn chunk(&mut self, bytes: &[u8]) -> bool {
        for (i, b) in bytes.iter().enumerate() {
            if (self.bytes + i as u64).is_multiple_of(1 << 20) {
                self.first_of_each_mib.push(*b);
            }
        }
        self.bytes += bytes.len() as u64;
        self.chunks += 1;
        self.stop_after.is_none_or(|n| self.chunks < n)
    }
    async fn end(&mut self) {
        self.ended = true;
    }
}
