//! A download read as it arrives: the bridge between the object store's async download (on the
//! runtime) and the core's blocking reader (on a blocking thread). A bounded channel of chunks
//! carries the bytes, so at most `depth` chunks are held whatever the object's size, and the
//! download waits while the reader is busy.
//!
//! The end of the object is a message of its own: a channel that closes without it (the
//! download broke off, or its task was dropped) is an error to the reader, never the end of
//! the file, so a half-read CSV is never taken for a whole one.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sluice_core::ports::ByteSink;
use tokio::sync::mpsc;

enum Piece {
    Bytes(Vec<u8>),
    End,
}

/// The download's end of the channel.
pub struct ChannelSink {
    tx: mpsc::Sender<Piece>,
}

impl ByteSink for ChannelSink {
    async fn chunk(&mut self, bytes: &[u8]) -> bool {
        self.tx.send(Piece::Bytes(bytes.to_vec())).await.is_ok()
    }
    async fn end(&mut self) {
        // A reader that has gone does not need to hear it.
        let _ = self.tx.send(Piece::End).await;
    }
}

/// The reader's end: a blocking [`Read`] (call it from a blocking thread only).
pub struct ChannelReader {
    rx: mpsc::Receiver<Piece>,
    chunk: Vec<u8>,
    pos: usize,
    ended: bool,
    cut: Arc<AtomicBool>,
}

impl ChannelReader {
    /// Set when the reader met a channel closed before the object's end: whatever it made of
    /// the bytes it got, the file was not all there.
    pub fn cut_flag(&self) -> Arc<AtomicBool> {
        self.cut.clone()
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.pos < self.chunk.len() {
                let n = out.len().min(self.chunk.len() - self.pos);
                out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Bytes(b)) => {
                    self.chunk = b;
                    self.pos = 0;
                }
                Some(Piece::End) => self.ended = true,
                None => {
                    self.cut.store(true, Ordering::SeqCst);
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the download stopped before the object's end",
                    ));
                }
            }
        }
    }
}

/// A channel holding at most `depth` chunks in flight.
pub fn channel(depth: usize) -> (ChannelSink, ChannelReader) {
    let (tx, rx) = mpsc::channel(depth.max(1));
    (
        ChannelSink { tx },
        ChannelReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
            ended: false,
            cut: Arc::new(AtomicBool::new(false)),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(mut r: ChannelReader) -> (std::io::Result<Vec<u8>>, bool) {
        let cut = r.cut_flag();
        let mut out = Vec::new();
        let res = r.read_to_end(&mut out).map(|_| out);
        (res, cut.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn every_byte_arrives_in_order_and_the_end_is_the_end() {
        let (mut sink, reader) = channel(2);
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let reading = tokio::task::spawn_blocking(move || read_all(reader));
        for c in body.chunks(777) {
            assert!(sink.chunk(c).await);
        }
        sink.end().await;
        drop(sink);
        let (got, cut) = reading.await.unwrap();
        assert_eq!(got.unwrap(), body);
        assert!(!cut);
    }

    #[tokio::test]
    async fn a_download_that_stops_without_its_end_is_an_error_not_eof() {
        let (mut sink, reader) = channel(2);
        let reading = tokio::task::spawn_blocking(move || read_all(reader));
        assert!(sink.chunk(b"id,amount\n1,10\n2,2").await);
        drop(sink); // the download broke off: no end marker
        let (got, cut) = reading.await.unwrap();
        let e = got.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(cut);
    }

    #[tokio::test]
    async fn a_reader_that_stops_stops_the_download() {
        let (mut sink, reader) = channel(1);
        drop(reader); // the reader refused the file after its header
        assert!(!sink.chunk(b"more").await);
    }
}
