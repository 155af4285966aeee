//! XLSX, read cell by cell with calamine's streaming cell reader.
//!
//! Cells are placed by their reference, so omitted cells stay empty instead of shifting their
//! neighbours. Date cells (a number with a date format) become date/times in the workbook's
//! epoch (1900 or 1904); formula cells give their cached value. Before calamine sees the file,
//! the zip directory is checked against [`Limits`], and the parts calamine keeps in memory (the
//! shared strings, styles) are inflated once to count their real size; the sheet itself is
//! held to its declared size by the zip reader: a zip bomb is refused, not unpacked.

use std::io::{Read, Seek, SeekFrom};

use calamine::{DataRef, Reader, Xlsx};
use chrono::{NaiveDate, NaiveDateTime};

use super::ahead::{read_ahead, Ahead, Entry};
use super::{Limits, ReadError, Row, RowVisitor, MAX_XLSX_COLUMNS};
use crate::coerce::{float_text, RawCell};
use crate::spec::SheetRef;

/// Reads one sheet of a workbook and feeds `visitor`. The workbook (inflating, XML, cells) is
/// read a batch of rows ahead of the visitor, on a thread of its own ([`read_ahead`]).
pub fn read_xlsx<RS: Read + Seek + Send>(
    input: RS,
    sheet: Option<&SheetRef>,
    header_row: u32,
    limits: &Limits,
    visitor: &mut dyn RowVisitor,
) -> Result<(), ReadError> {
    read_ahead(visitor, |ahead| {
        read_sheet(input, sheet, header_row, limits, ahead)
    })
}

fn read_sheet<RS: Read + Seek>(
    mut input: RS,
    sheet: Option<&SheetRef>,
    header_row: u32,
    limits: &Limits,
    ahead: &mut Ahead<Entry>,
) -> Result<(), ReadError> {
    check_zip(&mut input, limits)?;
    input.seek(SeekFrom::Start(0))?;
    let mut book: Xlsx<RS> = Xlsx::new(input).map_err(|e| ReadError::NotXlsx(e.to_string()))?;
    let names = book.sheet_names();
    let name = match sheet {
        None => names.first().cloned(),
        Some(SheetRef::Name(n)) => names.iter().find(|s| *s == n).cloned(),
        Some(SheetRef::Index(i)) => names.get(*i).cloned(),
    }
    .ok_or_else(|| ReadError::SheetNotFound {
        wanted: sheet.map(|s| s.to_string()).unwrap_or_else(|| "#0".into()),
        available: names.join(", "),
    })?;
    let xerr = |e: calamine::XlsxError| {
        let message = e.to_string();
        if message.contains(LIED_ABOUT_ITS_SIZE) {
            ReadError::LiedAboutSize(format!("sheet {name}"))
        } else {
            ReadError::Xlsx {
                sheet: name.clone(),
                message,
            }
        }
    };
    let mut cells = book.worksheet_cells_reader(&name).map_err(xerr)?;

    let header_idx = header_row.saturating_sub(1);
    let mut row = Row::default();
    let mut current: Option<u32> = None;
    let mut width: Option<usize> = None;
    let mut seen_any = false;
    let mut text;

    let mut flush = |r: u32, row: &mut Row, width: &mut Option<usize>| -> Result<(), ReadError> {
        if r == header_idx {
            let mut headers: Vec<String> = (0..row.len())
                .map(|i| row.get(i).display().trim().to_string())
                .collect();
            while headers.last().is_some_and(|h| h.is_empty()) {
                headers.pop();
            }
            *width = Some(headers.len());
            let header = ahead.row(u64::from(r) + 1);
            for h in &headers {
                header.push_text(h);
            }
            ahead.mark_header();
            ahead.keep(0)?;
        } else if r > header_idx && !row.is_blank() {
            if width.is_none() {
                // Rows below the header row, and no header: that row was blank.
                return Err(ReadError::BlankHeader(header_row));
            }
            ahead.row(u64::from(r) + 1).copy_from(row);
            ahead.keep(row.capacity())?;
        }
        row.clear();
        Ok(())
    };

    while let Some(cell) = cells.next_cell().map_err(xerr)? {
        seen_any = true;
        let (r, c) = cell.get_position();
        if current != Some(r) {
            if let Some(prev) = current {
                flush(prev, &mut row, &mut width)?;
            }
            current = Some(r);
        }
        if r < header_idx {
            continue;
        }
        if c >= MAX_XLSX_COLUMNS {
            // Placing it would allocate every column up to it (one 1.6 KB file asked 7.7 GB).
            return Err(ReadError::ColumnOutOfRange {
                sheet: name.clone(),
                cell: format!("{}{}", crate::ingest::column_letter(c as usize), r + 1),
            });
        }
        let c = c as usize;
        if r > header_idx && width.is_some_and(|w| c >= w) {
            continue; // cells beside the table (notes, legends) have no header
        }
        let raw = match cell.get_value() {
            DataRef::Empty => RawCell::Empty,
            DataRef::Int(i) => RawCell::Int(*i),
            DataRef::Float(f) => RawCell::Float(*f),
            DataRef::Bool(b) => RawCell::Bool(*b),
            DataRef::String(s) => RawCell::Text(s),
            DataRef::SharedString(s) => RawCell::Text(s),
            // Serials outside the calendar (1900 system: 1..=2,958,465, 1900-01-01..9999-12-31;
            // 1904 system from 0) are no dates: calamine would saturate them to 1899 or 9999.
            // The number goes on, and a date column rejects it as not_a_date.
            DataRef::DateTime(dt)
                if dt.as_f64() < 0.0
                    || dt.as_f64() >= 2_958_466.0
                    || (dt.as_f64() < 1.0 && dt.to_ymd_hms_milli().0 < 1900) =>
            {
                RawCell::Float(dt.as_f64())
            }
            DataRef::DateTime(dt) if dt.is_datetime() => {
                let (y, mo, d, h, mi, s, ms) = dt.to_ymd_hms_milli();
                match NaiveDate::from_ymd_opt(i32::from(y), u32::from(mo), u32::from(d)).and_then(
                    |day| {
                        day.and_hms_milli_opt(
                            u32::from(h),
                            u32::from(mi),
                            u32::from(s),
                            u32::from(ms),
                        )
                    },
                ) {
                    Some(v) => RawCell::DateTime(v),
                    None => {
                        text = format!("invalid date serial {}", float_text(dt.as_f64()));
                        RawCell::Error(&text)
                    }
                }
            }
            DataRef::DateTime(dt) => RawCell::Float(dt.as_f64()),
            DataRef::DateTimeIso(s) => match parse_iso(s) {
                Some(v) => RawCell::DateTime(v),
                None => RawCell::Text(s),
            },
            DataRef::DurationIso(s) => RawCell::Text(s),
            DataRef::Error(e) => {
                text = e.to_string();
                RawCell::Error(&text)
            }
        };
        row.put(c, raw);
    }
    if let Some(prev) = current {
        flush(prev, &mut row, &mut width)?;
    }
    match width {
        Some(_) => Ok(()),
        None if !seen_any => Err(ReadError::Empty),
        None => Err(ReadError::HeaderNotFound(header_row)),
    }
}

fn parse_iso(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()?
                .and_hms_opt(0, 0, 0)
        })
}

/// The zip crate's words for a part that inflates past its declared size.
const LIED_ABOUT_ITS_SIZE: &str = "larger than its declared uncompressed size";

/// Refuses archives whose parts would inflate past the limits.
fn check_zip<RS: Read + Seek>(input: &mut RS, limits: &Limits) -> Result<(), ReadError> {
    let mut zip = zip::ZipArchive::new(&mut *input).map_err(|e| {
        ReadError::NotXlsx(format!(
            "not a zip archive ({e}); is it a CSV or an old .xls renamed .xlsx?"
        ))
    })?;
    let mut parts = Vec::new();
    for i in 0..zip.len() {
        let f = zip
            .by_index_raw(i)
            .map_err(|e| ReadError::NotXlsx(e.to_string()))?;
        let name = String::from_utf8_lossy(f.name_raw()).into_owned();
        let (size, packed) = (f.size(), f.compressed_size().max(1));
        if size > limits.max_xlsx_part_bytes
            || (size > (1 << 20) && size / packed > limits.max_xlsx_ratio)
        {
            return Err(too_large(name, size, limits));
        }
        parts.push((i, name, packed));
    }
    // Declared sizes can lie. A worksheet is safe without a pass of its own: calamine streams
    // it through the zip crate, which fails a part's reader once it yields more than the
    // declared size (zip 9, `ZipFileData::data_reader`: "the declared size bounds the
    // output"), so a lying sheet stops at its declared size with an error (see
    // `LIED_ABOUT_ITS_SIZE`; the test `a_sheet_that_lies_about_its_size…` holds it). The other
    // parts calamine reads whole into memory (shared strings, styles): their real size is
    // counted here first, within each part's cap. Not inflating the sheet twice saves the
    // time of one inflate of it (a fifth of the whole read of a 100k-row sheet).
    for (i, name, packed) in parts {
        if name.starts_with("xl/worksheets/") {
            continue;
        }
        let cap = limits
            .max_xlsx_part_bytes
            .min(packed.saturating_mul(limits.max_xlsx_ratio).max(1 << 20));
        let f = zip
            .by_index(i)
            .map_err(|e| ReadError::NotXlsx(e.to_string()))?;
        let real = std::io::copy(&mut f.take(cap + 1), &mut std::io::sink())
            .map_err(|e| ReadError::NotXlsx(format!("{name}: {e}")))?;
        if real > cap {
            return Err(too_large(name, real, limits));
        }
    }
    Ok(())
}

fn too_large(part: String, size: u64, limits: &Limits) -> ReadError {
    ReadError::TooLarge {
        part,
        size,
        limit: limits.max_xlsx_part_bytes,
        ratio: limits.max_xlsx_ratio,
    }
}
