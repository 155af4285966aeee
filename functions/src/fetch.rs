//! Lake objects for the core's blocking readers (normalize, the extract), fetched one at a
//! time when the reader's turn comes, never copied to /tmp: a [`DataFile::Remote`] asks the
//! async side over a channel, which reads the object from the store and hands its bytes back.
//! Scratch disk is then not a limit on the lake's size; memory holds one file at a time.

use std::sync::Arc;

use sluice_core::ports::{ObjectStore, PortError};
use sluice_core::read::files::{Bytes, DataFile};
use tokio::sync::mpsc;

use crate::ports::Ports;

type Reply = std::sync::mpsc::SyncSender<Result<Bytes, String>>;

/// One fetch asked for.
pub struct Request {
    bucket: String,
    key: String,
    reply: Reply,
}

/// Makes [`DataFile`]s whose bytes [`serve`] fetches. Drop it (and every file it made) for
/// `serve` to end.
pub struct Fetcher {
    tx: mpsc::Sender<Request>,
}

pub fn channel() -> (Fetcher, mpsc::Receiver<Request>) {
    let (tx, rx) = mpsc::channel(1);
    (Fetcher { tx }, rx)
}

impl Fetcher {
    /// The object `s3://bucket/key` as a data file, fetched when read.
    pub fn file(&self, bucket: &str, key: &str) -> DataFile {
        let tx = self.tx.clone();
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        DataFile::Remote {
            name: format!("s3://{bucket}/{key}"),
            fetch: Arc::new(move || {
                let (reply, answer) = std::sync::mpsc::sync_channel(1);
                tx.blocking_send(Request {
                    bucket: bucket.clone(),
                    key: key.clone(),
                    reply,
                })
                .map_err(|_| "the fetcher has stopped".to_owned())?;
                answer
                    .recv()
                    .map_err(|_| "the fetcher has stopped".to_owned())?
            }),
        }
    }
}

/// Answers fetches until every [`Fetcher`] and file is dropped. Returns the first store error
/// (it decides the outcome: a throttled read is retried, not taken for a bad file).
pub async fn serve<P: Ports>(ports: &P, mut rx: mpsc::Receiver<Request>) -> Option<PortError> {
    let mut failure = None;
    while let Some(r) = rx.recv().await {
        let answer = match ports.store().get_bytes(&r.bucket, &r.key).await {
            Ok(Some(body)) => Ok(Bytes::from(body)),
            Ok(None) => Err(format!("s3://{}/{} is gone", r.bucket, r.key)),
            Err(e) => {
                let message = e.to_string();
                failure.get_or_insert(e);
                Err(message)
            }
        };
        // A reader that has gone does not need the answer.
        let _ = r.reply.send(answer);
    }
    failure
}
