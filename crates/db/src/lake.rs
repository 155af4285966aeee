//! The lake files a load reads: where they are, their identity (key and ETag) and row counts.

use std::future::Future;
use std::path::{Path, PathBuf};

/// One lake file of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeObject {
    /// The key in the lake bucket (`data/<table>/…/<file>.parquet`): the ledger's source object.
    pub key: String,
    /// Its version: the S3 ETag, or locally a hash of its bytes.
    pub etag: String,
}

/// Where a load finds the lake: a local folder (`sluice load --input`) or the lake bucket.
pub trait Lake: Sync {
    /// The Parquet files of a lake table, sorted by key.
    fn list(
        &self,
        lake_table: &str,
    ) -> impl Future<Output = Result<Vec<LakeObject>, String>> + Send;
    /// A local path holding the object's bytes (the bucket's implementation downloads it).
    fn fetch(&self, object: &LakeObject) -> impl Future<Output = Result<PathBuf, String>> + Send;
    /// Called when the load is done with a fetched file.
    fn release(&self, _path: &Path) {}
}

/// A folder laid out as the lake bucket is: `<root>/data/<table>/…/*.parquet`.
pub struct LocalLake {
    pub root: PathBuf,
}

impl Lake for LocalLake {
    async fn list(&self, lake_table: &str) -> Result<Vec<LakeObject>, String> {
        let dir = self.root.join("data").join(lake_table);
        let files = sluice_core::read::files::parquet_files(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut out = Vec::with_capacity(files.len());
        for path in files {
            let rel = path
                .strip_prefix(&self.root)
                .map_err(|e| e.to_string())?
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push(LakeObject {
                key: rel,
                etag: file_hash(&path).map_err(|e| format!("{}: {e}", path.display()))?,
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn fetch(&self, object: &LakeObject) -> Result<PathBuf, String> {
        Ok(self.root.join(&object.key))
    }
}

/// A local file's version: FNV-1a of its bytes, read in blocks.
fn file_hash(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        for b in &buf[..n] {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    Ok(format!("{h:016x}"))
}
