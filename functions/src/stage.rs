//! Output files closed before the end of their input (a partition past `output_roll_rows`)
//! leave /tmp at once: each goes up to `_sluice/staging/<its lake key>` while the input is
//! still being read, and its local copy is removed. At publish it is copied to its key and the
//! staged copy removed: readers never see part of a file's rows, and /tmp holds only the files
//! still open. Staged copies of an ingest that never published (a bad file, a crash) are
//! written again by the retry and expire under the bucket's lifecycle rule (7 days).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use sluice_core::ingest::{OnClose, OutputFile};
use sluice_core::ports::ObjectStore;
use tokio::sync::mpsc;

use crate::errors::FnError;
use crate::ports::Ports;

/// Where a rolled output waits in the lake bucket until its file is published.
pub fn staged_key(rel: &str) -> String {
    format!("_sluice/staging/{rel}")
}

/// The ingest's [`OnClose`] and what [`serve`] reads.
pub fn channel() -> (OnClose, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel::<String>(4);
    let on_close = OnClose(Arc::new(move |f: &OutputFile| {
        tx.blocking_send(f.path.clone())
            .map_err(|_| "the staging uploader has stopped".to_owned())
    }));
    (on_close, rx)
}

/// Uploads each closed file under `root` to its staged key and removes it from disk, until
/// the ingest ends (its [`OnClose`] is dropped). Returns the files staged; stops at the first
/// error (the ingest then stops too).
pub async fn serve<P: Ports>(
    ports: &P,
    lake: &str,
    root: PathBuf,
    mut rx: mpsc::Receiver<String>,
) -> Result<BTreeSet<String>, FnError> {
    let mut staged = BTreeSet::new();
    while let Some(rel) = rx.recv().await {
        let local = root.join(&rel);
        ports
            .store()
            .put_file(lake, &staged_key(&rel), &local)
            .await?;
        std::fs::remove_file(&local)
            .map_err(|e| FnError::internal(format!("removing {}", local.display()), e))?;
        staged.insert(rel);
    }
    Ok(staged)
}

/// Publishes `rel`: a staged file is copied to its key and its staged copy removed; any other
/// is uploaded from `root`.
pub async fn publish<P: Ports>(
    ports: &P,
    lake: &str,
    root: &std::path::Path,
    rel: &str,
    staged: &BTreeSet<String>,
) -> Result<(), FnError> {
    if staged.contains(rel) {
        let key = staged_key(rel);
        ports.store().copy(lake, &key, lake, rel).await?;
        ports.store().delete(lake, &key).await?;
    } else {
        ports.store().put_file(lake, rel, &root.join(rel)).await?;
    }
    Ok(())
}
