//! A reader running ahead of its consumer: the reader (parsing, UTF-8 checks, XML, inflating)
//! fills batches of items on a thread of its own, and the consumer (coercion, writing,
//! aggregating) takes them on the caller's thread, in order. The consumer sees exactly the
//! items, line numbers and order a single thread would give it; a reading error reaches the
//! caller after the items before it.

use std::sync::mpsc::{Receiver, SyncSender};

use super::{ReadError, Row, RowVisitor};

/// A batch is handed over at this many items or source bytes, whichever comes first. At most
/// [`BATCHES_IN_FLIGHT`] + 2 batches exist at once, each holding at most 4 × [`BATCH_BYTES`]
/// once recycled (about 4.5 MiB in all), plus the largest item being read, whatever the file.
const BATCH_ITEMS: usize = 256;
const BATCH_BYTES: usize = 64 << 10;
/// Enough for the reader to keep working while the consumer waits on a writer: with 2, the
/// 1M-row CSV → Parquet ingest kept its two cores about 75 % busy; with 16 (and the Parquet
/// files' first batches staggered) it took 15 % less time for about 1.5 MB more peak RSS.
const BATCHES_IN_FLIGHT: usize = 16;

/// What a batch holds; reused batch after batch.
pub trait Item: Default + Send {
    /// The bytes its buffers hold on to.
    fn held(&self) -> usize {
        0
    }
}

impl Item for ::csv::ByteRecord {}

/// The first `used` items are the batch; the rest are buffers kept for reuse.
struct Batch<T> {
    items: Vec<T>,
    used: usize,
    bytes: usize,
}

impl<T: Item> Batch<T> {
    fn new() -> Batch<T> {
        Batch {
            items: Vec::new(),
            used: 0,
            bytes: 0,
        }
    }

    /// Emptied for reuse. Items keep their buffers, unless together they hold more than
    /// [`BATCH_BYTES`] × 4 (huge ones once passed through): then they give them back.
    fn recycled(mut self) -> Batch<T> {
        if self.items.iter().map(Item::held).sum::<usize>() > BATCH_BYTES * 4 {
            self.items.clear();
        }
        self.used = 0;
        self.bytes = 0;
        self
    }
}

/// The consumer has stopped (its error is the one the caller gets): stop reading.
#[derive(Debug)]
pub struct Stopped;

impl From<Stopped> for ReadError {
    fn from(_: Stopped) -> ReadError {
        ReadError::Rejected("the visitor stopped".into())
    }
}

/// The reader's end: items go in here.
pub struct Ahead<'c, T> {
    batch: Batch<T>,
    out: Out<'c, T>,
}

/// Where a full batch goes: over a channel to the consumer's thread, or, with one core, to the
/// consumer itself on the reader's thread.
enum Out<'c, T> {
    Thread {
        full: SyncSender<Batch<T>>,
        empty: Receiver<Batch<T>>,
    },
    Inline(&'c mut dyn FnMut(&mut Batch<T>) -> Result<(), Stopped>),
}

impl<T: Item> Ahead<'_, T> {
    /// The next item to fill (a reused one: clear what it held); [`Ahead::keep`] or
    /// [`Ahead::drop_last`] it.
    pub fn next(&mut self) -> &mut T {
        let b = &mut self.batch;
        if b.used == b.items.len() {
            b.items.push(T::default());
        }
        b.used += 1;
        &mut b.items[b.used - 1]
    }

    /// The item [`Ahead::next`] gave last.
    pub fn last(&mut self) -> Option<&mut T> {
        let i = self.batch.used.checked_sub(1)?;
        self.batch.items.get_mut(i)
    }

    /// Forgets the last item (a blank line, or one that failed).
    pub fn drop_last(&mut self) {
        self.batch.used = self.batch.used.saturating_sub(1);
    }

    /// Keeps the last item, `bytes` long in the source; hands the batch over when it is full.
    pub fn keep(&mut self, bytes: usize) -> Result<(), Stopped> {
        self.batch.bytes += bytes;
        if self.batch.used >= BATCH_ITEMS || self.batch.bytes >= BATCH_BYTES {
            self.hand_over()?;
        }
        Ok(())
    }

    /// The last, partly filled batch, once the reader is done: the items before a reading
    /// error are the consumer's too.
    fn hand_over_rest(&mut self) {
        if self.batch.used > 0 {
            let _ = self.hand_over();
        }
    }

    fn hand_over(&mut self) -> Result<(), Stopped> {
        match &mut self.out {
            Out::Thread { full, empty } => {
                let next = empty.try_recv().unwrap_or_else(|_| Batch::new());
                full.send(std::mem::replace(&mut self.batch, next))
                    .map_err(|_| Stopped)
            }
            Out::Inline(take) => {
                let taken = take(&mut self.batch);
                self.batch = std::mem::replace(&mut self.batch, Batch::new()).recycled();
                taken
            }
        }
    }
}

/// Runs `read` on a thread of its own, handing its items to `take` on this one, in order.
/// The first error wins: `take`'s (which stops the reader), or else `read`'s. With one core
/// (`taskset`, a cgroup's CPU quota) both run on this thread, batch by batch: a second thread
/// would only add its hand-overs and context switches.
pub fn run_ahead<T, E, R, C>(read: R, take: C) -> Result<(), E>
where
    T: Item,
    E: Send,
    R: FnOnce(&mut Ahead<T>) -> Result<(), E> + Send,
    C: FnMut(&mut T) -> Result<(), E>,
{
    let in_flight = if crate::cores() == 1 {
        0
    } else {
        BATCHES_IN_FLIGHT
    };
    run_ahead_by(in_flight, read, take)
}

/// [`run_ahead`] with up to `in_flight` full batches waiting for the consumer; 0 runs the
/// reader and the consumer on this thread, one batch at a time, with the same items, order
/// and errors.
pub fn run_ahead_by<T, E, R, C>(in_flight: usize, read: R, mut take: C) -> Result<(), E>
where
    T: Item,
    E: Send,
    R: FnOnce(&mut Ahead<T>) -> Result<(), E> + Send,
    C: FnMut(&mut T) -> Result<(), E>,
{
    if in_flight == 0 {
        return run_inline(read, take);
    }
    let (full, batches) = std::sync::mpsc::sync_channel(in_flight);
    let (spent, empty) = std::sync::mpsc::channel::<Batch<T>>();
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut ahead = Ahead {
                batch: Batch::new(),
                out: Out::Thread { full, empty },
            };
            let read = read(&mut ahead);
            ahead.hand_over_rest();
            read
        });
        // Returns early when `take` refuses: the reader, its next batch unwanted, stops.
        let taken = (|| {
            for mut batch in batches {
                for item in &mut batch.items[..batch.used] {
                    take(item)?;
                }
                // The reader may have finished already; then the batch is simply dropped.
                let _ = spent.send(batch.recycled());
            }
            Ok(())
        })();
        let read = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        taken.and(read)
    })
}

/// [`run_ahead_by`] on one thread: each full batch goes to `take` as the reader fills it.
fn run_inline<T, E, R, C>(read: R, mut take: C) -> Result<(), E>
where
    T: Item,
    R: FnOnce(&mut Ahead<T>) -> Result<(), E>,
    C: FnMut(&mut T) -> Result<(), E>,
{
    let mut refused = None;
    let mut deliver = |batch: &mut Batch<T>| -> Result<(), Stopped> {
        // As on two threads: once the consumer has refused, it takes nothing more.
        if refused.is_some() {
            return Err(Stopped);
        }
        for item in &mut batch.items[..batch.used] {
            if let Err(e) = take(item) {
                refused = Some(e);
                return Err(Stopped);
            }
        }
        Ok(())
    };
    let mut ahead = Ahead {
        batch: Batch::new(),
        out: Out::Inline(&mut deliver),
    };
    let read = read(&mut ahead);
    ahead.hand_over_rest();
    drop(ahead);
    match refused {
        Some(e) => Err(e),
        None => read,
    }
}

/// A row for a [`RowVisitor`]: a data row at its line, or the header.
#[derive(Default)]
pub struct Entry {
    /// The header (its cells are the header's texts) rather than a data row.
    header: bool,
    line: u64,
    row: Row,
}

impl Item for Entry {
    fn held(&self) -> usize {
        self.row.capacity()
    }
}

impl Ahead<'_, Entry> {
    /// A new, empty data row at `line`, to fill; [`Ahead::keep`] or [`Ahead::drop_last`] it.
    pub fn row(&mut self, line: u64) -> &mut Row {
        let e = self.next();
        e.header = false;
        e.line = line;
        e.row.clear();
        &mut e.row
    }

    /// Makes the last row the header: the visitor gets its cells as texts.
    pub fn mark_header(&mut self) {
        if let Some(e) = self.last() {
            e.header = true;
        }
    }
}

/// Runs `read` on a thread of its own, feeding its rows to `visitor` on this one.
pub fn read_ahead<F>(visitor: &mut dyn RowVisitor, read: F) -> Result<(), ReadError>
where
    F: FnOnce(&mut Ahead<Entry>) -> Result<(), ReadError> + Send,
{
    run_ahead(read, |e: &mut Entry| {
        if e.header {
            let headers: Vec<String> = (0..e.row.len())
                .map(|i| e.row.get(i).display().into_owned())
                .collect();
            visitor.header(&headers)
        } else {
            visitor.row(e.line, &e.row)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `n` one-field records ("0", "1", ...), then fails if `fail` says so; the
    /// consumer refuses the record `refuse`. Returns what the consumer saw and the result.
    fn run(
        in_flight: usize,
        n: usize,
        fail: bool,
        refuse: Option<usize>,
    ) -> (Vec<String>, Result<(), String>) {
        let mut seen = Vec::new();
        let result = run_ahead_by(
            in_flight,
            |ahead: &mut Ahead<::csv::ByteRecord>| {
                for i in 0..n {
                    let r = ahead.next();
                    r.clear();
                    r.push_field(i.to_string().as_bytes());
                    ahead.keep(8).map_err(|_| "reader stopped".to_string())?;
                }
                if fail {
                    return Err("reader failed".to_string());
                }
                Ok(())
            },
            |r: &mut ::csv::ByteRecord| {
                let text = String::from_utf8_lossy(&r[0]).into_owned();
                if refuse == Some(seen.len()) {
                    return Err(format!("refused {text}"));
                }
                seen.push(text);
                Ok(())
            },
        );
        (seen, result)
    }

    #[test]
    fn one_thread_or_two_the_consumer_sees_the_same_items_and_errors() {
        let all: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        for in_flight in [0, 1, 16] {
            let (seen, result) = run(in_flight, 1000, false, None);
            assert_eq!(
                (seen, result),
                (all.clone(), Ok(())),
                "in_flight {in_flight}"
            );
            // A reading error reaches the caller after every item read before it.
            let (seen, result) = run(in_flight, 700, true, None);
            assert_eq!(seen, all[..700].to_vec(), "in_flight {in_flight}");
            assert_eq!(result, Err("reader failed".to_string()));
            // The consumer's refusal wins and it is handed nothing after it.
            let (seen, result) = run(in_flight, 1000, false, Some(500));
            assert_eq!(seen, all[..500].to_vec(), "in_flight {in_flight}");
            assert_eq!(result, Err("refused 500".to_string()));
        }
    }
}
