//! Streaming CSV check: fed chunk by chunk as the download arrives, so a 200 MB file is
//! checked without a second pass and without holding it in memory.
//!
//! A body passes when it is UTF-8, `;`-separated, has a header, and every record has the
//! header's field count. HTML, JSON and empty bodies are refused before a byte is trusted.

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

/// Why a body is not an acceptable export.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("the reply is empty")]
    Empty,
    #[error("the reply is {0}, not CSV")]
    NotCsv(&'static str),
    #[error("the reply is not UTF-8 (invalid byte at offset {0})")]
    NotUtf8(u64),
    #[error(
        "record {record} has {found} fields, the header has {expected} (truncated or not `;`-separated?)"
    )]
    FieldCount {
        record: u64,
        expected: u64,
        found: u64,
    },
    #[error("the file ends inside a quoted field (truncated download)")]
    UnterminatedQuote,
}

/// What a passing body held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvSummary {
    /// Data records, the header excluded.
    pub rows: u64,
    /// Columns in the header.
    pub columns: u64,
    /// Bytes checked.
    pub bytes: u64,
}

/// The incremental checker.
pub struct CsvCheck {
    reader: Reader,
    scratch: Vec<u8>,
    ends: Vec<usize>,
    bytes: u64,
    sniffed: bool,
    utf8_pending: Vec<u8>,
    fields: u64,
    header: Option<u64>,
    records: u64,
    in_quotes: bool,
}

impl Default for CsvCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvCheck {
    /// A checker for `;`-separated CSV.
    pub fn new() -> Self {
        Self {
            reader: ReaderBuilder::new().delimiter(b';').build(),
            scratch: vec![0; 64 * 1024],
            ends: vec![0; 1024],
            bytes: 0,
            sniffed: false,
            utf8_pending: Vec::new(),
            fields: 0,
            header: None,
            records: 0,
            in_quotes: false,
        }
    }

    /// Checks the next chunk of the body.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), CsvError> {
        if chunk.is_empty() {
            return Ok(());
        }
        if !self.sniffed {
            sniff(chunk)?;
            self.sniffed = true;
        }
        self.check_utf8(chunk)?;
        self.track_quotes(chunk);
        self.bytes += chunk.len() as u64;
        self.parse(chunk, false)
    }

    /// Ends the body: checks the last record and returns the counts.
    pub fn finish(mut self) -> Result<CsvSummary, CsvError> {
        if self.bytes == 0 {
            return Err(CsvError::Empty);
        }
        if !self.utf8_pending.is_empty() {
            return Err(CsvError::NotUtf8(
                self.bytes - self.utf8_pending.len() as u64,
            ));
        }
        if self.in_quotes {
            return Err(CsvError::UnterminatedQuote);
        }
        self.parse(&[], true)?;
        let columns = self.header.ok_or(CsvError::Empty)?;
        Ok(CsvSummary {
            rows: self.records.saturating_sub(1),
            columns,
            bytes: self.bytes,
        })
    }

    /// Counts fields per record with csv_core's DFA record reader. Field contents are not
    /// needed, so a full output or ends buffer is simply reused.
    fn parse(&mut self, mut input: &[u8], eof: bool) -> Result<(), CsvError> {
        loop {
            // csv_core reads an empty slice as end of input: only pass one at the real end.
            if input.is_empty() && !eof {
                return Ok(());
            }
            let (res, nin, _, nend) =
                self.reader
                    .read_record(input, &mut self.scratch, &mut self.ends);
            input = &input[nin..];
            self.fields += nend as u64;
            match res {
                ReadRecordResult::InputEmpty if !eof => return Ok(()),
                ReadRecordResult::InputEmpty
                | ReadRecordResult::OutputFull
                | ReadRecordResult::OutputEndsFull => {}
                ReadRecordResult::Record => self.end_record()?,
                ReadRecordResult::End => return Ok(()),
            }
        }
    }

    fn end_record(&mut self) -> Result<(), CsvError> {
        self.records += 1;
        let found = std::mem::take(&mut self.fields);
        match self.header {
            None => self.header = Some(found),
            Some(expected) if expected != found => {
                return Err(CsvError::FieldCount {
                    record: self.records,
                    expected,
                    found,
                });
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Quote parity over the whole body: `"` toggles, a doubled `""` toggles twice. An odd
    /// count at the end means the body stopped inside a quoted field.
    fn track_quotes(&mut self, chunk: &[u8]) {
        let quotes = memchr::memchr_iter(b'"', chunk).count();
        if quotes % 2 == 1 {
            self.in_quotes = !self.in_quotes;
        }
    }

    fn check_utf8(&mut self, mut chunk: &[u8]) -> Result<(), CsvError> {
        let mut offset = self.bytes;
        if !self.utf8_pending.is_empty() {
            let width = utf8_width(self.utf8_pending[0]);
            let take = (width - self.utf8_pending.len()).min(chunk.len());
            self.utf8_pending.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            offset += take as u64;
            if self.utf8_pending.len() < width {
                return Ok(());
            }
            if simdutf8::basic::from_utf8(&self.utf8_pending).is_err() {
                return Err(CsvError::NotUtf8(offset - width as u64));
            }
            self.utf8_pending.clear();
        }
        // The fast check first; the compat one only to locate an error.
        if simdutf8::basic::from_utf8(chunk).is_ok() {
            return Ok(());
        }
        match simdutf8::compat::from_utf8(chunk) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                self.utf8_pending = chunk[e.valid_up_to()..].to_vec();
                Ok(())
            }
            Err(e) => Err(CsvError::NotUtf8(offset + e.valid_up_to() as u64)),
        }
    }
}

fn utf8_width(first: u8) -> usize {
    match first {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// Refuses bodies that are obviously something else, looking at the first bytes only.
fn sniff(first: &[u8]) -> Result<(), CsvError> {
    let start = first.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(first);
    let trimmed = start.trim_ascii_start();
    match trimmed.first() {
        None => Ok(()),
        Some(b'<') => Err(CsvError::NotCsv("HTML or XML")),
        Some(b'{') | Some(b'[') => Err(CsvError::NotCsv("JSON")),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_in_chunks(body: &[u8], size: usize) -> Result<CsvSummary, CsvError> {
        let mut c = CsvCheck::new();
        for chunk in body.chunks(size.max(1)) {
            c.feed(chunk)?;
        }
        c.finish()
    }

    #[test]
    fn counts_rows_with_multiline_quoted_fields_in_any_chunking() {
        let body =
            "allure_id;name;scenario\n1;Логин;\"шаг 1\nшаг 2; \"\"цитата\"\"\"\n2;b;c\n".as_bytes();
        for size in [1, 2, 3, 7, 64, 4096] {
            let s = check_in_chunks(body, size).unwrap();
            assert_eq!((s.rows, s.columns), (2, 3), "chunk size {size}");
        }
    }

    #[test]
    fn header_only_is_a_valid_empty_export() {
        let s = check_in_chunks(b"allure_id;name\n", 4).unwrap();
        assert_eq!((s.rows, s.columns), (0, 2));
    }

    #[test]
    fn refuses_html_json_empty() {
        assert_eq!(
            check_in_chunks(b"\n  <!DOCTYPE html><html>login</html>", 8),
            Err(CsvError::NotCsv("HTML or XML"))
        );
        assert_eq!(
            check_in_chunks(b"{\"error\":1}", 8),
            Err(CsvError::NotCsv("JSON"))
        );
        assert_eq!(check_in_chunks(b"", 8), Err(CsvError::Empty));
    }

    #[test]
    fn refuses_truncated_record_and_open_quote() {
        let e = check_in_chunks(b"a;b;c\n1;2;3\n4;5", 3).unwrap_err();
        assert!(
            matches!(
                e,
                CsvError::FieldCount {
                    record: 3,
                    expected: 3,
                    found: 2
                }
            ),
            "{e:?}"
        );
        let e = check_in_chunks(b"a;b\n1;\"multi\nline", 3).unwrap_err();
        assert_eq!(e, CsvError::UnterminatedQuote);
    }

    #[test]
    fn refuses_invalid_utf8_and_accepts_split_characters() {
        let e = check_in_chunks(b"a;b\n1;\xff\n", 2).unwrap_err();
        assert_eq!(e, CsvError::NotUtf8(6));
        // "Ж" is two bytes; split it across every boundary.
        let body = "a;b\nЖЖЖ;ЖЖ\n".as_bytes();
        for size in 1..6 {
            assert!(check_in_chunks(body, size).is_ok(), "chunk size {size}");
        }
        // A body ending in half a character is not UTF-8.
        assert!(matches!(
            check_in_chunks(&body[..body.len() - 2], 4),
            Err(CsvError::NotUtf8(_))
        ));
    }
}
