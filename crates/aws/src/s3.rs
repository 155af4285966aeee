//! `ObjectStore` over S3.

use std::path::Path;

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use sluice_core::ports::{ByteSink, ObjectInfo, ObjectStore, PortError, PortResult};
use tokio::io::AsyncWriteExt;

use crate::error::{code_of, port_error, status_of};

/// Files up to this size go up in one request; larger ones in parts of this size.
pub const PART_SIZE: u64 = 8 << 20;

#[derive(Clone, Debug)]
pub struct S3Store {
    client: crate::lazy::Lazy<aws_sdk_s3::Client>,
    part_size: u64,
}

impl S3Store {
    pub fn new(client: impl Into<crate::lazy::Lazy<aws_sdk_s3::Client>>) -> S3Store {
        S3Store {
            client: client.into(),
            part_size: PART_SIZE,
        }
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        self.client.get()
    }

    async fn put_multipart(
        &self,
        bucket: &str,
        key: &str,
        src: &Path,
        size: u64,
    ) -> PortResult<()> {
        let created = self
            .client
            .get()
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| port_error("s3:CreateMultipartUpload", e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| {
                PortError::permanent("s3:CreateMultipartUpload", "the answer has no upload id")
            })?
            .to_owned();
        let result = self.upload_parts(bucket, key, src, size, &upload_id).await;
        if result.is_err() {
            // Leave no half upload behind; the original error is the one to report.
            let _ = self
                .client
                .get()
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    async fn upload_parts(
        &self,
        bucket: &str,
        key: &str,
        src: &Path,
        size: u64,
        upload_id: &str,
    ) -> PortResult<()> {
        let mut parts = Vec::new();
        let mut offset = 0u64;
        let mut number = 1i32;
        while offset < size {
            let len = self.part_size.min(size - offset);
            // Each part is read from disk as it is sent: one part in flight, none held whole.
            let body = ByteStream::read_from()
                .path(src)
                .offset(offset)
                .length(Length::Exact(len))
                .build()
                .await
                .map_err(|e| {
                    PortError::permanent("s3:UploadPart", format!("{}: {e}", src.display()))
                })?;
            let out = self
                .client
                .get()
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(len as i64)
                .body(body)
                .send()
                .await
                .map_err(|e| port_error("s3:UploadPart", e))?;
            parts.push(
                CompletedPart::builder()
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .part_number(number)
                    .build(),
            );
            offset += len;
            number += 1;
        }
        self.client
            .get()
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| port_error("s3:CompleteMultipartUpload", e))?;
        Ok(())
    }
}

/// An ETag without its quotes.
pub fn bare_etag(etag: Option<&str>) -> Option<String> {
    etag.map(|e| e.trim_matches('"').to_owned())
        .filter(|e| !e.is_empty())
}

/// `bucket/key` for `x-amz-copy-source`, the key percent-encoded (slashes kept).
pub fn copy_source(bucket: &str, key: &str) -> String {
    let mut out = format!("{bucket}/");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A listed object as the port describes it (`None`: a listing entry without a key).
fn listed(bucket: &str, o: &aws_sdk_s3::types::Object) -> Option<ObjectInfo> {
    Some(ObjectInfo {
        bucket: bucket.to_owned(),
        key: o.key()?.to_owned(),
        size: o.size().unwrap_or(0).max(0) as u64,
        etag: bare_etag(o.e_tag()),
        version_id: None,
        last_modified: o.last_modified().map(|t| t.secs()),
    })
}

/// A download's bytes into a local file; the first write error stops it and is kept.
struct FileSink {
    file: tokio::fs::File,
    error: Option<std::io::Error>,
}

impl ByteSink for FileSink {
    async fn chunk(&mut self, bytes: &[u8]) -> bool {
        match self.file.write_all(bytes).await {
            Ok(()) => true,
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }
    async fn end(&mut self) {
        if let Err(e) = self.file.flush().await {
            self.error = Some(e);
        }
    }
}

impl ObjectStore for S3Store {
    async fn list(&self, bucket: &str, prefix: &str) -> PortResult<Vec<ObjectInfo>> {
        let mut pages = self
            .client
            .get()
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error("s3:ListObjectsV2", e))?;
            out.extend(page.contents().iter().filter_map(|o| listed(bucket, o)));
        }
        Ok(out)
    }

    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> PortResult<Vec<ObjectInfo>> {
        let page = self
            .client
            .get()
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_owned))
            .max_keys(max_keys.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| port_error("s3:ListObjectsV2", e))?;
        Ok(page
            .contents()
            .iter()
            .filter_map(|o| listed(bucket, o))
            .collect())
    }

    async fn head(&self, bucket: &str, key: &str) -> PortResult<Option<ObjectInfo>> {
        match self
            .client
            .get()
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(h) => Ok(Some(ObjectInfo {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                size: h.content_length().unwrap_or(0).max(0) as u64,
                etag: bare_etag(h.e_tag()),
                version_id: h.version_id().filter(|v| *v != "null").map(str::to_owned),
                last_modified: h.last_modified().map(|t| t.secs()),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(port_error("s3:HeadObject", e)),
        }
    }

    async fn get_into<S: ByteSink>(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        sink: &mut S,
    ) -> PortResult<ObjectInfo> {
        let out = self
            .client
            .get()
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| port_error("s3:GetObject", e))?;
        let info = ObjectInfo {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size: 0,
            etag: bare_etag(out.e_tag()),
            version_id: out.version_id().filter(|v| *v != "null").map(str::to_owned),
            last_modified: out.last_modified().map(|t| t.secs()),
        };
        let mut body = out.body;
        let mut size = 0u64;
        loop {
            match body.next().await {
                None => {
                    sink.end().await;
                    break;
                }
                Some(Ok(chunk)) => {
                    size += chunk.len() as u64;
                    if !sink.chunk(&chunk).await {
                        break;
                    }
                }
                Some(Err(e)) => {
                    return Err(PortError {
                        source: Some(Box::new(e)),
                        ..PortError::retryable(
                            "s3:GetObject",
                            format!("s3://{bucket}/{key}: the download broke off"),
                        )
                    })
                }
            }
        }
        Ok(ObjectInfo { size, ..info })
    }

    async fn get_to_file(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        dest: &Path,
    ) -> PortResult<ObjectInfo> {
        let io_err = |e: std::io::Error| {
            PortError::permanent("s3:GetObject", format!("writing {}: {e}", dest.display()))
        };
        let mut sink = FileSink {
            file: tokio::fs::File::create(dest).await.map_err(io_err)?,
            error: None,
        };
        let info = self.get_into(bucket, key, version_id, &mut sink).await?;
        match sink.error {
            Some(e) => Err(io_err(e)),
            None => Ok(info),
        }
    }

    async fn put_file(&self, bucket: &str, key: &str, src: &Path) -> PortResult<()> {
        let size = tokio::fs::metadata(src)
            .await
            .map_err(|e| PortError::permanent("s3:PutObject", format!("{}: {e}", src.display())))?
            .len();
        if size > self.part_size {
            return self.put_multipart(bucket, key, src, size).await;
        }
        let body = ByteStream::from_path(src)
            .await
            .map_err(|e| PortError::permanent("s3:PutObject", format!("{}: {e}", src.display())))?;
        self.client
            .get()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body)
            .send()
            .await
            .map_err(|e| port_error("s3:PutObject", e))?;
        Ok(())
    }

    async fn put_bytes(&self, bucket: &str, key: &str, body: Vec<u8>) -> PortResult<()> {
        self.client
            .get()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| port_error("s3:PutObject", e))?;
        Ok(())
    }

    async fn put_if_absent(&self, bucket: &str, key: &str, body: Vec<u8>) -> PortResult<bool> {
        let result = self
            .client
            .get()
            .put_object()
            .bucket(bucket)
            .key(key)
            .if_none_match("*")
            .body(ByteStream::from(body))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if code_of(&e) == Some("PreconditionFailed") || status_of(&e) == Some(412) => {
                Ok(false)
            }
            Err(e) => Err(port_error("s3:PutObject", e)),
        }
    }

    async fn get_bytes(&self, bucket: &str, key: &str) -> PortResult<Option<Vec<u8>>> {
        let out = match self
            .client
            .get()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => return Ok(None),
            Err(e) => return Err(port_error("s3:GetObject", e)),
        };
        let bytes = out.body.collect().await.map_err(|e| PortError {
            source: Some(Box::new(e)),
            ..PortError::retryable(
                "s3:GetObject",
                format!("s3://{bucket}/{key}: the download broke off"),
            )
        })?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    async fn copy(
        &self,
        from_bucket: &str,
        from_key: &str,
        to_bucket: &str,
        to_key: &str,
    ) -> PortResult<()> {
        self.client
            .get()
            .copy_object()
            .copy_source(copy_source(from_bucket, from_key))
            .bucket(to_bucket)
            .key(to_key)
            .send()
            .await
            .map_err(|e| port_error("s3:CopyObject", e))?;
        Ok(())
    }

    async fn delete(&self, bucket: &str, key: &str) -> PortResult<()> {
        // DeleteObject succeeds for a missing key.
        self.client
            .get()
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| port_error("s3:DeleteObject", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_encodes_the_key_but_not_its_slashes() {
        assert_eq!(
            copy_source("raw", "loans/yyyy=2026/Loan book #3 (final).xlsx"),
            "raw/loans/yyyy%3D2026/Loan%20book%20%233%20%28final%29.xlsx"
        );
        assert_eq!(copy_source("b", "ü.csv"), "b/%C3%BC.csv");
    }

    #[test]
    fn etags_lose_their_quotes() {
        assert_eq!(bare_etag(Some("\"abc\"")), Some("abc".to_owned()));
        assert_eq!(bare_etag(Some("\"\"")), None);
        assert_eq!(bare_etag(None), None);
    }
}
