//! The data files normalize and the extract read: on local disk (the CLI, a test), or lake
//! objects fetched whole into memory when their turn comes, one at a time (the functions, which
//! then need no scratch disk however large the lake grows). Parquet needs random access, so a
//! file is held whole while it is read, never the dataset.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use bytes::Bytes;
use parquet::file::reader::{ChunkReader, Length};

/// Every Parquet file below `dir` (any depth: partition folders), sorted. A folder that does not
/// exist has none; any other error reading one is returned.
pub fn parquet_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for e in entries {
            let path = e?.path();
            if path.is_dir() {
                walk(&path, found)?;
            } else if path.extension().is_some_and(|x| x == "parquet") {
                found.push(path);
            }
        }
        Ok(())
    }
    let mut found = Vec::new();
    walk(dir, &mut found)?;
    found.sort();
    Ok(found)
}

/// Fetches one object's bytes (the functions bridge it to the object store).
pub type Fetch = Arc<dyn Fn() -> Result<Bytes, String> + Send + Sync>;

/// One data file to read.
#[derive(Clone)]
pub enum DataFile {
    Local(PathBuf),
    /// Read when its turn comes; `name` is what messages and quarantine call it
    /// (`s3://bucket/key`).
    Remote {
        name: String,
        fetch: Fetch,
    },
}

impl fmt::Debug for DataFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl From<PathBuf> for DataFile {
    fn from(p: PathBuf) -> Self {
        DataFile::Local(p)
    }
}

impl DataFile {
    pub fn name(&self) -> String {
        match self {
            DataFile::Local(p) => p.display().to_string(),
            DataFile::Remote { name, .. } => name.clone(),
        }
    }

    pub fn is_parquet(&self) -> bool {
        self.name().ends_with(".parquet")
    }

    /// Opens (or fetches) the file.
    pub fn open(&self) -> Result<Opened, String> {
        match self {
            DataFile::Local(p) => File::open(p).map(Opened::File).map_err(|e| e.to_string()),
            DataFile::Remote { fetch, .. } => fetch().map(Opened::Bytes),
        }
    }
}

/// An opened data file: Parquet reads it at random, CSV from start to end.
pub enum Opened {
    File(File),
    Bytes(Bytes),
}

impl Opened {
    /// Another handle on the same bytes: a second file handle (every read seeks first), or
    /// the same shared buffer (no copy).
    pub fn try_clone_cheap(&self) -> std::io::Result<Opened> {
        Ok(match self {
            Opened::File(f) => Opened::File(f.try_clone()?),
            Opened::Bytes(b) => Opened::Bytes(b.clone()),
        })
    }

    /// The file from start to end.
    pub fn into_reader(self) -> Box<dyn Read + Send> {
        match self {
            Opened::File(f) => Box::new(std::io::BufReader::new(f)),
            Opened::Bytes(b) => Box::new(std::io::Cursor::new(b)),
        }
    }
}

impl Length for Opened {
    fn len(&self) -> u64 {
        match self {
            Opened::File(f) => Length::len(f),
            Opened::Bytes(b) => Length::len(b),
        }
    }
}

impl ChunkReader for Opened {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(match self {
            Opened::File(f) => Box::new(f.get_read(start)?),
            Opened::Bytes(b) => Box::new(b.get_read(start)?),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        match self {
            Opened::File(f) => f.get_bytes(start, length),
            Opened::Bytes(b) => b.get_bytes(start, length),
        }
    }
}
