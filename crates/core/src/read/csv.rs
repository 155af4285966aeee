//! CSV (and any delimiter-separated text), read record by record with the `csv` crate.
//!
//! UTF-8 input may start with a BOM; a declared single-byte encoding (`windows-1252`, …) is
//! transcoded field by field. A record larger than [`Limits::max_record_bytes`] stops the file
//! with an error instead of growing memory without bound.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::rc::Rc;

use encoding_rs::Encoding;

use super::ahead::{read_ahead, Ahead, Entry};
use super::{Limits, ReadError, RowVisitor};
use crate::spec::CsvOptions;

/// What the CSV parser has been handed: bytes since the last record (to bound a record's size)
/// and where the newlines were (the `csv` crate's own line count skips blank lines and
/// miscounts CRLF, so lines are counted here from byte offsets).
#[derive(Default)]
struct Tracker {
    read: u64,
    since_record: u64,
    /// Offsets of `\r` and `\n` bytes not yet passed, with whether each is a `\n`.
    breaks: VecDeque<(u64, bool)>,
    lines_before: u64,
}

impl Tracker {
    /// The 1-based line of the first content byte at or after `offset` (the parser reports a
    /// record's start before the line breaks and blank lines it skipped).
    fn line_of(&mut self, mut offset: u64) -> u64 {
        while let Some(&(pos, lf)) = self.breaks.front() {
            if pos > offset {
                break;
            }
            if pos == offset {
                offset += 1;
            }
            self.breaks.pop_front();
            if lf {
                self.lines_before += 1;
            }
        }
        self.lines_before + 1
    }
}

struct Metered<R> {
    inner: R,
    tracker: Rc<RefCell<Tracker>>,
    limit: u64,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut t = self.tracker.borrow_mut();
        if t.since_record > self.limit {
            return Err(std::io::Error::other(RECORD_TOO_LARGE));
        }
        let n = self.inner.read(buf)?;
        let base = t.read;
        t.breaks.extend(
            memchr::memchr2_iter(b'\n', b'\r', &buf[..n])
                .map(|i| (base + i as u64, buf[i] == b'\n')),
        );
        t.read += n as u64;
        t.since_record += n as u64;
        Ok(n)
    }
}

const RECORD_TOO_LARGE: &str = "record too large";

/// Reads a delimited text file and feeds `visitor`.
///
/// Parsing (the `csv` crate's state machine, UTF-8 checks or transcoding, line numbers, the
/// header, blank and ragged rows) runs a batch of rows ahead of the visitor, on a thread of its
/// own ([`read_ahead`]).
pub fn read_csv<R: Read + Send>(
    input: R,
    opts: &CsvOptions,
    header_row: u32,
    limits: &Limits,
    visitor: &mut dyn RowVisitor,
) -> Result<(), ReadError> {
    read_ahead(visitor, |ahead| {
        parse(input, opts, header_row, limits, ahead)
    })
}

fn parse<R: Read>(
    input: R,
    opts: &CsvOptions,
    header_row: u32,
    limits: &Limits,
    ahead: &mut Ahead<Entry>,
) -> Result<(), ReadError> {
    let encoding = Encoding::for_label(opts.encoding.as_bytes()).unwrap_or(encoding_rs::UTF_8);
    let is_utf8 = encoding == encoding_rs::UTF_8;
    let mut buffered = BufReader::with_capacity(1 << 16, input);
    if is_utf8 && buffered.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
        buffered.consume(3);
    }
    let tracker = Rc::new(RefCell::new(Tracker::default()));
    let metered = Metered {
        inner: buffered,
        tracker: tracker.clone(),
        limit: limits.max_record_bytes,
    };
    let mut rdr = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(opts.delimiter as u8)
        .quote(opts.quote as u8)
        .buffer_capacity(1 << 16)
        .from_reader(metered);

    let mut record = ::csv::ByteRecord::new();
    let mut header_len = None;
    let mut records_seen: u64 = 0;
    loop {
        let start = rdr.position().byte();
        let more = rdr.read_byte_record(&mut record).map_err(|e| {
            let line = tracker.borrow_mut().line_of(start);
            match e.kind() {
                ::csv::ErrorKind::Io(io) if io.to_string() == RECORD_TOO_LARGE => {
                    ReadError::RecordTooLarge {
                        line,
                        limit: limits.max_record_bytes,
                    }
                }
                _ => ReadError::Csv {
                    line,
                    message: e.to_string(),
                },
            }
        })?;
        if !more {
            break;
        }
        let line = {
            let mut t = tracker.borrow_mut();
            t.since_record = 0;
            let offset = record.position().map(|p| p.byte()).unwrap_or(start);
            t.line_of(offset)
        };
        records_seen += 1;
        let row = ahead.row(line);
        if is_utf8 {
            let Ok(text) = std::str::from_utf8(record.as_slice()) else {
                ahead.drop_last();
                return Err(ReadError::InvalidUtf8 { line });
            };
            row.push_texts(text, (0..record.len()).filter_map(|i| record.range(i)));
        } else {
            for field in record.iter() {
                let (cow, _had_errors) = encoding.decode_without_bom_handling(field);
                row.push_text(&cow);
            }
        }
        match header_len {
            None => {
                // The header is the first record at or below line `header_row` (the csv crate
                // skips blank lines, so count lines, not records).
                if line >= u64::from(header_row) {
                    header_len = Some(row.len());
                    ahead.mark_header();
                } else {
                    ahead.drop_last();
                    continue;
                }
            }
            Some(n) => {
                if row.len() != n {
                    // A lone empty field on a line is a blank line, not a ragged row.
                    if row.len() == 1 && row.is_blank() {
                        ahead.drop_last();
                        continue;
                    }
                    row.ragged = Some(row.len());
                } else if row.is_blank() {
                    ahead.drop_last();
                    continue;
                }
            }
        }
        ahead.keep(record.as_slice().len())?;
    }
    match header_len {
        Some(_) => Ok(()),
        None if records_seen == 0 => Err(ReadError::Empty),
        None => Err(ReadError::HeaderNotFound(header_row)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coerce::RawCell;
    use crate::read::Row;

    #[derive(Default)]
    struct Collect {
        headers: Vec<String>,
        rows: Vec<(u64, Vec<String>, Option<usize>)>,
    }

    impl RowVisitor for Collect {
        fn header(&mut self, headers: &[String]) -> Result<(), ReadError> {
            self.headers = headers.to_vec();
            Ok(())
        }
        fn row(&mut self, line: u64, row: &Row) -> Result<(), ReadError> {
            let cells = (0..row.len())
                .map(|i| match row.get(i) {
                    RawCell::Text(t) => t.to_string(),
                    other => format!("{other:?}"),
                })
                .collect();
            self.rows.push((line, cells, row.ragged));
            Ok(())
        }
    }

    fn read(bytes: &[u8], opts: CsvOptions, header_row: u32) -> Result<Collect, ReadError> {
        let mut c = Collect::default();
        read_csv(bytes, &opts, header_row, &Limits::default(), &mut c)?;
        Ok(c)
    }

    #[test]
    fn bom_quotes_and_line_numbers() {
        let c = read(
            b"\xEF\xBB\xBFid,note\n1,\"a, \"\"b\"\"\nc\"\n\n2,x\n",
            CsvOptions::default(),
            1,
        )
        .unwrap();
        assert_eq!(c.headers, vec!["id", "note"]);
        assert_eq!(c.rows[0], (2, vec!["1".into(), "a, \"b\"\nc".into()], None));
        assert_eq!(c.rows[1], (5, vec!["2".into(), "x".into()], None));
    }

    #[test]
    fn crlf_and_blank_lines_keep_editor_line_numbers() {
        let c = read(b"a\r\n1\r\n\r\n\r\n2\r\n", CsvOptions::default(), 1).unwrap();
        let lines: Vec<u64> = c.rows.iter().map(|r| r.0).collect();
        assert_eq!(lines, vec![2, 5]);
    }

    #[test]
    fn header_row_below_title_lines() {
        let c = read(
            b"title\n\nid;n\n1;2\n",
            CsvOptions {
                delimiter: ';',
                ..Default::default()
            },
            2,
        )
        .unwrap();
        assert_eq!(c.headers, vec!["id", "n"]);
        assert_eq!(c.rows.len(), 1);
    }

    #[test]
    fn ragged_rows_are_flagged() {
        let c = read(b"a,b,c\n1,2\n1,2,3,4\n", CsvOptions::default(), 1).unwrap();
        assert_eq!(c.rows[0].2, Some(2));
        assert_eq!(c.rows[1].2, Some(4));
    }

    #[test]
    fn windows_1252_is_transcoded() {
        let opts = CsvOptions {
            encoding: "windows-1252".into(),
            ..Default::default()
        };
        let c = read(b"name\nJos\xe9\n", opts, 1).unwrap();
        assert_eq!(c.rows[0].1, vec!["José".to_string()]);
    }

    #[test]
    fn invalid_utf8_without_declared_encoding_is_a_file_error() {
        let e = read(b"name\nok\nJos\xe9\n", CsvOptions::default(), 1)
            .err()
            .unwrap();
        assert!(matches!(e, ReadError::InvalidUtf8 { line: 3 }), "{e}");
        assert!(e.to_string().contains("windows-1252"));
    }

    #[test]
    fn empty_and_header_only() {
        assert!(matches!(
            read(b"", CsvOptions::default(), 1),
            Err(ReadError::Empty)
        ));
        assert!(matches!(
            read(b"a\n", CsvOptions::default(), 3),
            Err(ReadError::HeaderNotFound(3))
        ));
        assert_eq!(
            read(b"a,b\n", CsvOptions::default(), 1).unwrap().rows.len(),
            0
        );
    }

    #[test]
    fn huge_record_is_refused_with_bounded_memory() {
        let mut data = b"a,b\n1,\"".to_vec();
        data.extend(std::iter::repeat_n(b'x', 3 << 20));
        data.extend(b"\"\n");
        let mut c = Collect::default();
        let limits = Limits {
            max_record_bytes: 1 << 20,
            ..Limits::default()
        };
        let e = read_csv(&data[..], &CsvOptions::default(), 1, &limits, &mut c).unwrap_err();
        assert!(matches!(e, ReadError::RecordTooLarge { .. }), "{e}");
    }

    #[test]
    fn rows_across_many_batches_keep_their_order_and_lines() {
        let mut data = String::from("id,note\n");
        let mut expected = Vec::new();
        let mut line = 2;
        for i in 0..3000u64 {
            if i % 7 == 0 {
                data.push('\n');
                line += 1;
            }
            // Now and then a field long enough to close a batch by its bytes.
            let note = if i % 500 == 0 {
                "x".repeat(100_000)
            } else {
                format!("n{i}")
            };
            data.push_str(&format!("{i},\"{note}\"\n"));
            expected.push((line, vec![i.to_string(), note], None));
            line += 1;
        }
        let c = read(data.as_bytes(), CsvOptions::default(), 1).unwrap();
        assert_eq!(c.rows.len(), 3000);
        assert_eq!(c.rows, expected);
    }

    struct StopAt {
        seen: u64,
        stop: u64,
    }

    impl RowVisitor for StopAt {
        fn header(&mut self, _: &[String]) -> Result<(), ReadError> {
            Ok(())
        }
        fn row(&mut self, line: u64, _: &Row) -> Result<(), ReadError> {
            self.seen += 1;
            if self.seen == self.stop {
                return Err(ReadError::Rejected(format!("stopped at line {line}")));
            }
            Ok(())
        }
    }

    fn read_into(data: &[u8], v: &mut dyn RowVisitor) -> Result<(), ReadError> {
        read_csv(data, &CsvOptions::default(), 1, &Limits::default(), v)
    }

    #[test]
    fn a_visitor_refusal_stops_reading_and_is_the_error() {
        let mut data = b"a\n".to_vec();
        for i in 0..5000 {
            data.extend(format!("{i}\n").bytes());
        }
        let mut v = StopAt { seen: 0, stop: 700 };
        let e = read_into(&data, &mut v).unwrap_err();
        assert_eq!(e.to_string(), "stopped at line 701");
        assert_eq!(v.seen, 700);
    }

    #[test]
    fn a_reading_error_comes_after_every_row_before_it() {
        let mut data = b"a\n".to_vec();
        for i in 0..2000 {
            data.extend(format!("{i}\n").bytes());
        }
        data.extend(b"Jos\xe9\nafter\n");
        let mut v = StopAt {
            seen: 0,
            stop: u64::MAX,
        };
        let e = read_into(&data, &mut v).unwrap_err();
        assert!(matches!(e, ReadError::InvalidUtf8 { line: 2002 }), "{e}");
        assert_eq!(v.seen, 2000);
    }
}
