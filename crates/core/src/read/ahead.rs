//! A reader running ahead of its visitor: the reader (parsing, UTF-8 checks, XML, inflating)
//! fills batches of rows on a thread of its own, and the visitor (coercion, writing) takes them
//! on the caller's thread, in order. The visitor sees exactly the rows, line numbers and order
//! a single thread would give it; a reading error reaches the caller after the rows before it.

use std::sync::mpsc::{Receiver, SyncSender};

use super::{ReadError, Row, RowVisitor};

/// A batch is handed over at this many rows or source bytes, whichever comes first. At most
/// [`BATCHES_IN_FLIGHT`] + 2 batches exist at once, each holding well under a megabyte once
/// recycled, plus the largest row being read, whatever the file.
const BATCH_ROWS: usize = 256;
const BATCH_BYTES: usize = 64 << 10;
const BATCHES_IN_FLIGHT: usize = 2;

struct Entry {
    /// The header (its cells are the header's texts) rather than a data row.
    header: bool,
    line: u64,
    row: Row,
}

/// The first `used` entries are the batch; the rest are buffers kept for reuse.
#[derive(Default)]
struct Batch {
    entries: Vec<Entry>,
    used: usize,
    bytes: usize,
}

impl Batch {
    /// Emptied for reuse. Rows keep their buffers, unless together they hold more than
    /// [`BATCH_BYTES`] × 4 (huge rows once passed through): then they give them back.
    fn recycled(mut self) -> Batch {
        let held: usize = self.entries.iter().map(|e| e.row.capacity()).sum();
        if held > BATCH_BYTES * 4 {
            self.entries.clear();
        }
        self.used = 0;
        self.bytes = 0;
        self
    }
}

/// The reader's end: rows go in here.
pub struct Ahead {
    batch: Batch,
    full: SyncSender<Batch>,
    empty: Receiver<Batch>,
}

impl Ahead {
    /// A new, empty data row at `line`, to fill; [`Ahead::keep`] or [`Ahead::drop_last`] it.
    pub fn row(&mut self, line: u64) -> &mut Row {
        let b = &mut self.batch;
        if b.used == b.entries.len() {
            b.entries.push(Entry {
                header: false,
                line: 0,
                row: Row::default(),
            });
        }
        b.used += 1;
        let e = &mut b.entries[b.used - 1];
        e.header = false;
        e.line = line;
        e.row.clear();
        &mut e.row
    }

    /// Makes the last row the header: the visitor gets its cells as texts.
    pub fn mark_header(&mut self) {
        if let Some(e) = self
            .batch
            .used
            .checked_sub(1)
            .map(|i| &mut self.batch.entries[i])
        {
            e.header = true;
        }
    }

    /// Forgets the last row (a blank line, or one that failed).
    pub fn drop_last(&mut self) {
        self.batch.used = self.batch.used.saturating_sub(1);
    }

    /// Keeps the last row, `bytes` long in the source; hands the batch over when it is full.
    /// An error means the visitor has stopped: stop reading (the visitor's error is the one
    /// the caller gets).
    pub fn keep(&mut self, bytes: usize) -> Result<(), ReadError> {
        self.batch.bytes += bytes;
        if self.batch.used >= BATCH_ROWS || self.batch.bytes >= BATCH_BYTES {
            let next = self.empty.try_recv().unwrap_or_default();
            self.full
                .send(std::mem::replace(&mut self.batch, next))
                .map_err(|_| ReadError::Rejected("the visitor stopped".into()))?;
        }
        Ok(())
    }
}

/// Runs `read` on a thread of its own, feeding its rows to `visitor` on this one.
pub fn read_ahead<F>(visitor: &mut dyn RowVisitor, read: F) -> Result<(), ReadError>
where
    F: FnOnce(&mut Ahead) -> Result<(), ReadError> + Send,
{
    let (full, batches) = std::sync::mpsc::sync_channel(BATCHES_IN_FLIGHT);
    let (spent, empty) = std::sync::mpsc::channel::<Batch>();
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut ahead = Ahead {
                batch: Batch::default(),
                full,
                empty,
            };
            let read = read(&mut ahead);
            // The rows before an error are the visitor's too.
            if ahead.batch.used > 0 {
                let _ = ahead.full.send(ahead.batch);
            }
            read
        });
        // Returns early when the visitor refuses: the reader, its next batch unwanted, stops.
        let visited = (|| {
            for mut batch in batches {
                for e in &batch.entries[..batch.used] {
                    if e.header {
                        let headers: Vec<String> = (0..e.row.len())
                            .map(|i| e.row.get(i).display().into_owned())
                            .collect();
                        visitor.header(&headers)?;
                    } else {
                        visitor.row(e.line, &e.row)?;
                    }
                }
                batch = batch.recycled();
                // The reader may have finished already; then the batch is simply dropped.
                let _ = spent.send(batch);
            }
            Ok(())
        })();
        let read = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        visited.and(read)
    })
}
