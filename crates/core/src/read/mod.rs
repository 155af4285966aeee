//! Streaming readers: a source file becomes a header and a sequence of rows, one at a time.
//!
//! Readers drive a [`RowVisitor`]: they call [`RowVisitor::header`] once, then
//! [`RowVisitor::row`] for every data row, reusing one [`Row`] buffer, so memory does not grow
//! with the number of rows. Problems with the file as a whole are a [`ReadError`]; problems
//! with one row are the visitor's business (quarantine).

pub(crate) mod ahead;
pub mod csv;
pub mod files;
pub mod parquet;
pub mod split;
pub mod xlsx;

use chrono::NaiveDateTime;

use crate::coerce::RawCell;

/// Limits that keep a hostile file from taking the process down.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest CSV record, in bytes.
    pub max_record_bytes: u64,
    /// Largest uncompressed part of an xlsx (a sheet's XML, the shared strings).
    pub max_xlsx_part_bytes: u64,
    /// Largest ratio between an xlsx part's uncompressed and compressed sizes.
    pub max_xlsx_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 16 << 20,
            max_xlsx_part_bytes: 1 << 30,
            max_xlsx_ratio: 250,
        }
    }
}

/// A problem with a file as a whole: it cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the file")]
    Io(#[from] std::io::Error),
    #[error("the file is empty: no header row")]
    Empty,
    #[error("header row {0} not found: the file has fewer rows")]
    HeaderNotFound(u32),
    #[error("not a readable xlsx workbook: {0}")]
    NotXlsx(String),
    #[error("sheet '{wanted}' not found (the workbook has: {available})")]
    SheetNotFound { wanted: String, available: String },
    #[error("xlsx part '{part}' would inflate to {size} bytes (limit {limit}, ratio limit {ratio}): refusing a possible zip bomb")]
    TooLarge {
        part: String,
        size: u64,
        limit: u64,
        ratio: u64,
    },
    #[error("xlsx part '{0}' inflates past the size it declares: refusing a possible zip bomb")]
    LiedAboutSize(String),
    #[error("line {line}: a record larger than {limit} bytes")]
    RecordTooLarge { line: u64, limit: u64 },
    #[error("line {line}: invalid UTF-8 (declare source.csv.encoding, e.g. windows-1252, if the file is not UTF-8)")]
    InvalidUtf8 { line: u64 },
    #[error("line {line}: {message}")]
    Csv { line: u64, message: String },
    #[error("sheet '{sheet}': {message}")]
    Xlsx { sheet: String, message: String },
    /// The visitor refused the file (for example, a required column is missing).
    #[error("{0}")]
    Rejected(String),
    #[error(
        "row {0}, the header row, is blank (if the table starts lower, set source.header_row)"
    )]
    BlankHeader(u32),
    #[error("sheet '{sheet}': cell {cell} lies beyond column XFD, the last one a workbook can have ({MAX_XLSX_COLUMNS} columns)")]
    ColumnOutOfRange { sheet: String, cell: String },
    /// A bug met while reading this file: reported as this file's failure, never a crash.
    #[error("internal error while reading this file (please report it): {0}")]
    Internal(String),
}

/// Columns a worksheet can have (A..XFD).
pub const MAX_XLSX_COLUMNS: u32 = 16_384;

impl ReadError {
    /// A panic met while reading a file (a bug the file provokes), as that file's error.
    pub fn from_panic(panic: &(dyn std::any::Any + Send)) -> ReadError {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        ReadError::Internal(what)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Empty,
    Text(usize, usize),
    Int(i64),
    Float(f64),
    Bool(bool),
    DateTime(NaiveDateTime),
    Error(usize, usize),
}

/// One row's cells, stored in a reusable buffer.
///
/// A row of text fields only (a CSV record) is kept compact: its fields lie back to back in
/// `text` and `ends` says where each starts and ends (4 bytes a field, not a 24-byte slot), so a
/// row read on one thread and coerced on another drags fewer cache lines between the cores.
#[derive(Debug, Default)]
pub struct Row {
    text: String,
    slots: Vec<Slot>,
    /// Text-only rows: field `i` is `text[ends[i]..ends[i + 1]]` (`slots` is then empty).
    ends: Vec<u32>,
    /// CSV: the number of fields, when it differs from the header's (a ragged row).
    pub ragged: Option<usize>,
}

impl Row {
    pub fn clear(&mut self) {
        self.text.clear();
        self.slots.clear();
        self.ends.clear();
        self.ragged = None;
    }

    /// The bytes the row's buffers hold on to.
    pub fn capacity(&self) -> usize {
        self.text.capacity()
            + self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.ends.capacity() * std::mem::size_of::<u32>()
    }

    pub fn len(&self) -> usize {
        match self.ends.len() {
            0 => self.slots.len(),
            n => n - 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cell at `i`; past the end is [`RawCell::Empty`]. Always inlined: returned through
    /// memory, the cell was copied byte by byte into the caller's frame and read back (a
    /// store-forwarding stall per cell, the ingest's hottest instruction in perf annotate).
    #[inline(always)]
    pub fn get(&self, i: usize) -> RawCell<'_> {
        if !self.ends.is_empty() {
            return match (self.ends.get(i), self.ends.get(i + 1)) {
                (Some(&a), Some(&b)) => {
                    RawCell::Text(self.text.get(a as usize..b as usize).unwrap_or_default())
                }
                _ => RawCell::Empty,
            };
        }
        match self.slots.get(i) {
            None | Some(Slot::Empty) => RawCell::Empty,
            Some(Slot::Text(a, b)) => RawCell::Text(&self.text[*a..*b]),
            Some(Slot::Error(a, b)) => RawCell::Error(&self.text[*a..*b]),
            Some(Slot::Int(v)) => RawCell::Int(*v),
            Some(Slot::Float(v)) => RawCell::Float(*v),
            Some(Slot::Bool(v)) => RawCell::Bool(*v),
            Some(Slot::DateTime(v)) => RawCell::DateTime(*v),
        }
    }

    /// Makes this row a copy of `other`, reusing this row's buffers.
    pub fn copy_from(&mut self, other: &Row) {
        self.text.clear();
        self.text.push_str(&other.text);
        self.slots.clear();
        self.slots.extend_from_slice(&other.slots);
        self.ends.clear();
        self.ends.extend_from_slice(&other.ends);
        self.ragged = other.ragged;
    }

    /// Text-only fields become slots, before a cell of another kind joins them.
    fn spill(&mut self) {
        if self.ends.is_empty() {
            return;
        }
        self.slots.clear();
        self.slots.extend(
            self.ends
                .windows(2)
                .map(|w| Slot::Text(w[0] as usize, w[1] as usize)),
        );
        self.ends.clear();
    }

    /// True when every cell is empty (or blank text): such rows are skipped, not rejected.
    pub fn is_blank(&self) -> bool {
        (0..self.len()).all(|i| match self.get(i) {
            RawCell::Empty => true,
            RawCell::Text(t) => t.trim().is_empty(),
            _ => false,
        })
    }

    fn set(&mut self, col: usize, slot: Slot) {
        self.spill();
        if self.slots.len() <= col {
            self.slots.resize(col + 1, Slot::Empty);
        }
        self.slots[col] = slot;
    }

    /// Appends the cells `fields` marks in `text` (byte ranges on character boundaries, in
    /// order), copying `text` once.
    pub fn push_texts(&mut self, text: &str, fields: impl Iterator<Item = std::ops::Range<usize>>) {
        let base = self.text.len();
        self.text.push_str(text);
        // Compact while the row holds nothing else and the fields lie back to back.
        if self.slots.is_empty() && self.ends.is_empty() {
            if let Ok(base) = u32::try_from(base) {
                self.ends.push(base);
            }
        }
        for r in fields {
            let (a, b) = (base + r.start, base + r.end);
            let next = self.ends.last().is_some_and(|&end| end as usize == a);
            match u32::try_from(b) {
                Ok(b) if next => self.ends.push(b),
                _ => {
                    self.spill();
                    self.slots.push(Slot::Text(a, b));
                }
            }
        }
    }

    pub fn push_text(&mut self, t: &str) {
        self.spill();
        let a = self.text.len();
        self.text.push_str(t);
        self.slots.push(Slot::Text(a, self.text.len()));
    }

    /// Places a cell at column `col` (0-based), filling any gap with empty cells.
    pub fn put(&mut self, col: usize, cell: RawCell<'_>) {
        let slot = match cell {
            RawCell::Empty => Slot::Empty,
            RawCell::Text(t) | RawCell::Error(t) => {
                let a = self.text.len();
                self.text.push_str(t);
                let b = self.text.len();
                if matches!(cell, RawCell::Error(_)) {
                    Slot::Error(a, b)
                } else {
                    Slot::Text(a, b)
                }
            }
            RawCell::Int(v) => Slot::Int(v),
            RawCell::Float(v) => Slot::Float(v),
            RawCell::Bool(v) => Slot::Bool(v),
            RawCell::DateTime(v) => Slot::DateTime(v),
        };
        self.set(col, slot);
    }
}

/// Receives a file's header and rows from a reader.
pub trait RowVisitor {
    /// Called once with the header cells as text. An `Err` stops reading (for example,
    /// a required column is missing).
    fn header(&mut self, headers: &[String]) -> Result<(), ReadError>;
    /// Called for every non-blank data row. `line` is the row number as a person sees it in
    /// Excel or the line number in an editor.
    fn row(&mut self, line: u64, row: &Row) -> Result<(), ReadError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_places_cells_by_column_and_pads_gaps() {
        let mut r = Row::default();
        r.put(0, RawCell::Text("a"));
        r.put(3, RawCell::Float(1.5));
        assert_eq!(r.len(), 4);
        assert_eq!(r.get(1), RawCell::Empty);
        assert_eq!(r.get(3), RawCell::Float(1.5));
        assert_eq!(r.get(9), RawCell::Empty);
        assert!(!r.is_blank());
        r.clear();
        r.put(2, RawCell::Text("  "));
        assert!(r.is_blank());
    }

    #[test]
    fn a_text_only_row_reads_the_same_compact_or_not() {
        fn cells(r: &Row) -> Vec<RawCell<'_>> {
            (0..r.len() + 1).map(|i| r.get(i)).collect()
        }
        let mut r = Row::default();
        let want = [
            RawCell::Text("1"),
            RawCell::Text(""),
            RawCell::Text("ñandú"),
            RawCell::Text("x"),
            RawCell::Empty,
        ];
        r.push_texts("1ñandúx", [0..1, 1..1, 1..8, 8..9].into_iter());
        assert_eq!(
            (r.ends.len(), r.slots.len()),
            (5, 0),
            "back to back: compact"
        );
        assert_eq!(cells(&r), want);
        // Not back to back (the comma at 8 is skipped): the last field spills the row.
        r.clear();
        r.push_texts("1ñandú,x", [0..1, 1..1, 1..8, 9..10].into_iter());
        assert_eq!((r.ends.len(), r.slots.len()), (0, 4));
        assert_eq!(cells(&r), want);
        r.clear();
        r.push_texts("ab", [0..1, 1..2].into_iter());
        assert_eq!((r.len(), r.ends.len()), (2, 3));
        let mut copy = Row::default();
        copy.copy_from(&r);
        assert_eq!(
            cells(&copy),
            [RawCell::Text("a"), RawCell::Text("b"), RawCell::Empty]
        );
        // Another kind of cell joins: the texts stay.
        r.put(3, RawCell::Int(7));
        assert_eq!(
            cells(&r),
            [
                RawCell::Text("a"),
                RawCell::Text("b"),
                RawCell::Empty,
                RawCell::Int(7),
                RawCell::Empty
            ]
        );
        r.clear();
        r.push_texts(" ,", [0..1, 2..2].into_iter());
        assert!(r.is_blank() && r.len() == 2);
        r.clear();
        r.push_texts("", std::iter::empty());
        assert!(r.is_empty() && r.is_blank());
    }
}
