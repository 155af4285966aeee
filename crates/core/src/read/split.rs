//! Cutting one CSV file into parts that are read at once, each from its own offset.
//!
//! Where a record ends cannot be known without reading from the start (a line end inside a
//! quoted field does not end a record), so a cut is only a guess: just after the first line end
//! at or after an even share of the bytes. Whoever reads the part before a cut confirms it: the
//! guess was right exactly when that reader's next record starts at the cut. A reader that does
//! not land on the cut means the parts after it are thrown away and the file is read from the
//! start, one part, as if it had never been cut ([`crate::extract_input`] does this).

use std::io::{self, Read};

use parquet::file::reader::Length;

use super::files::Opened;

/// How far past an even share a line end is looked for before that cut is given up.
const LOOK_FOR_LINE_END: u64 = 1 << 20;

impl Opened {
    /// The bytes from `start` to the end, read on their own (a file is read at offsets, so
    /// several such readers can share one open file).
    pub fn reader_at(&self, start: u64) -> io::Result<Box<dyn Read + Send>> {
        Ok(match self {
            Opened::File(f) => Box::new(ReadAt {
                file: f.try_clone()?,
                at: start,
            }),
            Opened::Bytes(b) => {
                let start = usize::try_from(start).unwrap_or(usize::MAX).min(b.len());
                Box::new(io::Cursor::new(b.slice(start..)))
            }
        })
    }

    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        match self {
            Opened::File(f) => std::os::unix::fs::FileExt::read_at(f, buf, at),
            Opened::Bytes(b) => {
                let rest = b
                    .get(usize::try_from(at).unwrap_or(usize::MAX)..)
                    .unwrap_or(&[]);
                let n = rest.len().min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                Ok(n)
            }
        }
    }
}

/// A file read from an offset with positioned reads (no shared cursor between readers).
struct ReadAt {
    file: std::fs::File,
    at: u64,
}

impl Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(&self.file, buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Up to `parts - 1` guessed cuts, increasing, each just after a record terminator as the csv
/// crate reads one: after a `\r` or a lone `\n`, so that the record before it is seen to end
/// exactly there (a CRLF's `\n` then opens the next part, read as a blank line and skipped).
pub fn guess_cuts(opened: &Opened, parts: usize) -> io::Result<Vec<u64>> {
    let len = Length::len(opened);
    let mut cuts: Vec<u64> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for k in 1..parts as u64 {
        let share = len / parts as u64 * k;
        // The first terminator at or after the byte before the share (so a share that falls
        // on a record's start cuts there), and never one already cut after.
        let first = share
            .saturating_sub(1)
            .max(cuts.last().copied().unwrap_or(0));
        // Reads start one byte early, to see whether a `\n` follows a `\r`.
        let mut at = first.saturating_sub(1);
        let mut skip = (first - at) as usize;
        let mut cut = None;
        while at < len && at < first + LOOK_FOR_LINE_END {
            let n = opened.read_at(&mut buf, at)?;
            if n <= skip {
                break;
            }
            if let Some(i) = memchr::memchr2(b'\n', b'\r', &buf[skip..n]) {
                let i = i + skip;
                let crlf_end = buf[i] == b'\n' && i > 0 && buf[i - 1] == b'\r';
                cut = Some(at + i as u64 + u64::from(!crlf_end));
                break;
            }
            // The next read overlaps this one's last byte.
            at += n as u64 - 1;
            skip = 1;
        }
        match cut {
            Some(c) if c > 0 && c < len && cuts.last().is_none_or(|&l| c > l) => cuts.push(c),
            _ => {}
        }
    }
    Ok(cuts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn cuts(text: &str, parts: usize) -> Vec<u64> {
        guess_cuts(&Opened::Bytes(Bytes::from(text.to_owned())), parts).unwrap()
    }

    #[test]
    fn cuts_fall_after_a_terminator_and_before_a_crlf_newline() {
        // 20 bytes: shares at 5, 10, 15.
        assert_eq!(cuts("aaaa\nbbbb\ncccc\ndddd\n", 4), [5, 10, 15]);
        // CRLF: the cut is after the `\r`, so the `\n` begins the next part.
        assert_eq!(cuts("aaa\r\nbbb\r\nccc\r\nddd\r\n", 2), [9]);
        assert_eq!(cuts("aaa\r\nbbbb\r\ncc\r\nddd\r\n", 2), [10]);
        // A share that lands on the `\n` of a CRLF cuts just before it.
        assert_eq!(cuts("aaa\r\nbbbb\r\n", 2), [4]);
        // No line end after the share: no cut; cuts never repeat.
        assert_eq!(cuts("aaaa\nbbbbbbbbbbbbbbb", 2), Vec::<u64>::new());
        assert_eq!(cuts("a\nbbbbbbbbbbbbbbbbbbbbbbb\nc\n", 8), [26]);
    }

    #[test]
    fn a_file_reads_the_same_from_an_offset_as_bytes_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        let text = "x\r\n".repeat(30_000);
        std::fs::write(&path, &text).unwrap();
        let file = Opened::File(std::fs::File::open(&path).unwrap());
        let bytes = Opened::Bytes(Bytes::from(text.clone()));
        assert_eq!(
            guess_cuts(&file, 3).unwrap(),
            guess_cuts(&bytes, 3).unwrap()
        );
        let mut a = String::new();
        let mut b = String::new();
        file.reader_at(7).unwrap().read_to_string(&mut a).unwrap();
        bytes.reader_at(7).unwrap().read_to_string(&mut b).unwrap();
        assert_eq!(a, text[7..]);
        assert_eq!(a, b);
    }
}
