//! S3 adapter against the emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;

use sluice_aws::s3::S3Store;
use sluice_core::ports::ObjectStore;

async fn bucket(store: &S3Store) -> String {
    let name = sluice_testkit::unique("s3");
    store
        .client()
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .unwrap();
    name
}

#[tokio::test]
async fn lists_more_than_one_page() {
    let store = S3Store::new(common::clients().await.s3);
    let b = bucket(&store).await;
    let mut tasks = tokio::task::JoinSet::new();
    let keys: Vec<String> = (0..1050)
        .map(|i| format!("loans/yyyy=2026/part-{i:05}.csv"))
        .collect();
    for chunk in keys.chunks(35) {
        let (store, b, chunk) = (store.clone(), b.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for k in chunk {
                store.put_bytes(&b, &k, b"x".to_vec()).await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    store
        .put_bytes(&b, "other/x.csv", b"y".to_vec())
        .await
        .unwrap();
    let listed = store.list(&b, "loans/").await.unwrap();
    assert_eq!(listed.len(), 1050, "all pages, nothing outside the prefix");
    let got: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    let want: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(got, want, "key order");
    assert!(listed.iter().all(|o| o.size == 1 && o.etag.is_some()));
}

fn patterned_file(bytes: usize) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    let block: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut left = bytes;
    let mut n = 0u8;
    while left > 0 {
        let take = left.min(block.len());
        // Vary each block so a part uploaded twice or out of order would show.
        let mut chunk = block[..take].to_vec();
        chunk[0] = n;
        f.write_all(&chunk).unwrap();
        n = n.wrapping_add(1);
        left -= take;
    }
    f.flush().unwrap();
    f
}

#[tokio::test]
async fn multipart_upload_over_16_mib_round_trips() {
    let store = S3Store::new(common::clients().await.s3);
    let b = bucket(&store).await;
    let size = (17 << 20) + 12_345;
    let src = patterned_file(size);
    store
        .put_file(&b, "big/file.bin", src.path())
        .await
        .unwrap();

    let head = store.head(&b, "big/file.bin").await.unwrap().unwrap();
    assert_eq!(head.size, size as u64);
    // A multipart ETag ends in -<parts>: 17 MiB in 8 MiB parts is 3 parts.
    assert!(
        head.etag.as_deref().unwrap().ends_with("-3"),
        "etag {:?}",
        head.etag
    );

    let dest = tempfile::NamedTempFile::new().unwrap();
    let info = store
        .get_to_file(&b, "big/file.bin", None, dest.path())
        .await
        .unwrap();
    assert_eq!(info.size, size as u64);
    // When it was written (ingest's lag metric counts from it): just now, by head, get and list.
    let now = sluice_aws::now_secs();
    for t in [head.last_modified, info.last_modified] {
        let t = t.expect("S3 says when an object was written");
        assert!((now - t).abs() < 300, "last modified {t}, now {now}");
    }
    let listed = store.list(&b, "big/").await.unwrap();
    assert_eq!(listed[0].last_modified, head.last_modified);
    assert!(
        std::fs::read(src.path()).unwrap() == std::fs::read(dest.path()).unwrap(),
        "bytes differ"
    );
}

#[tokio::test]
async fn put_if_absent_refuses_an_existing_key() {
    let store = S3Store::new(common::clients().await.s3);
    let b = bucket(&store).await;
    assert!(store
        .put_if_absent(&b, "markers/done", b"first".to_vec())
        .await
        .unwrap());
    assert!(!store
        .put_if_absent(&b, "markers/done", b"second".to_vec())
        .await
        .unwrap());
    assert_eq!(
        store.get_bytes(&b, "markers/done").await.unwrap().unwrap(),
        b"first"
    );
    assert_eq!(store.get_bytes(&b, "markers/none").await.unwrap(), None);
    assert_eq!(store.head(&b, "markers/none").await.unwrap(), None);
}

#[tokio::test]
async fn copy_keeps_bytes_and_odd_keys_work() {
    let store = S3Store::new(common::clients().await.s3);
    let b = bucket(&store).await;
    let key = "in/Loan book #3 (final) ü.csv";
    store
        .put_bytes(&b, key, b"a,b\n1,2\n".to_vec())
        .await
        .unwrap();
    store.copy(&b, key, &b, "out/copy.csv").await.unwrap();
    assert_eq!(
        store.get_bytes(&b, "out/copy.csv").await.unwrap().unwrap(),
        b"a,b\n1,2\n"
    );
}

#[tokio::test]
async fn a_missing_bucket_is_a_permanent_error() {
    let store = S3Store::new(common::clients().await.s3);
    let err = store.list("no-such-bucket-sluice", "").await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(err.code.as_deref(), Some("NoSuchBucket"), "{err}");
}
