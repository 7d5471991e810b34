//! HWP 5.0 binary documents: an OLE compound file whose `BodyText/Section*` streams hold
//! (usually deflated) records of paragraphs and tables, read into the same shape as HWPX.

use super::hancom::{assemble, DocumentInfo, FlowBuilder};
use crate::{DocKind, Document, DocumentParser, IngestError};
use flate2::read::DeflateDecoder;
use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::Path;

const FORMAT: &str = "hwp";
const OLE_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
const SIGNATURE: &[u8] = b"HWP Document File";
/// Upper bound on the unpacked size of one section stream, against deflate bombs.
const MAX_SECTION_BYTES: u64 = 512 << 20;

// FileHeader property flags.
const FLAG_COMPRESSED: u32 = 1 << 0;
const FLAG_PASSWORD: u32 = 1 << 1;
const FLAG_DISTRIBUTION: u32 = 1 << 2;

// Record tag ids (HWPTAG_BEGIN = 0x10).
const TAG_PARA_HEADER: u16 = 0x10 + 50;
const TAG_PARA_TEXT: u16 = 0x10 + 51;
const TAG_CTRL_HEADER: u16 = 0x10 + 55;
const TAG_LIST_HEADER: u16 = 0x10 + 56;

/// Control id of a table, as `MAKE_4CHID('t','b','l',' ')`.
const CTRL_TABLE: u32 = u32::from_be_bytes(*b"tbl ");

/// Parses `.hwp` files (HWP 5.x; the 3.x format is not supported).
pub struct HwpParser;

impl DocumentParser for HwpParser {
    fn name(&self) -> &'static str {
        FORMAT
    }

    fn accepts(&self, path: &Path, head: &[u8]) -> bool {
        match path.extension() {
            Some(ext) => ext.eq_ignore_ascii_case(FORMAT),
            // Word and Excel 97 files are OLE compound files too: without an extension
            // to go by, only claim the ones whose header stream we can see is HWP.
            None => head.starts_with(OLE_MAGIC) && contains(head, SIGNATURE),
        }
    }

    fn parse(&self, file_name: &str, bytes: &[u8]) -> Result<Vec<Document>, IngestError> {
        if bytes.starts_with(b"HWP Document File V3") {
            return Err(IngestError::Unsupported(
                "HWP 3.x document (only HWP 5.x is read)".into(),
            ));
        }
        let mut ole = cfb::CompoundFile::open(Cursor::new(bytes)).map_err(|e| {
            IngestError::malformed(FORMAT, format!("not an OLE compound file: {e}"))
        })?;
        let flags = read_file_header(&mut ole)?;

        let sections = section_streams(&ole);
        if sections.is_empty() {
            return Err(IngestError::malformed(
                FORMAT,
                "no BodyText/Section streams",
            ));
        }
        let mut flow = FlowBuilder::default();
        for path in &sections {
            let data = read_section(&mut ole, path, flags & FLAG_COMPRESSED != 0)?;
            read_records(&data, &mut flow)
                .map_err(|detail| IngestError::malformed(FORMAT, format!("{path}: {detail}")))?;
        }

        // The summary is optional metadata: a damaged one costs the title and date only.
        let summary = read_summary(&mut ole).unwrap_or_default();
        let mut meta = BTreeMap::new();
        if let Some(date) = summary.date {
            meta.insert("date".to_string(), date);
        }
        let info = DocumentInfo {
            kind: DocKind::Hwp,
            format: FORMAT,
            file_name,
            title: summary.title,
            meta,
        };
        Ok(vec![assemble(info, flow.finish())?])
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

type Ole<'a> = cfb::CompoundFile<Cursor<&'a [u8]>>;

/// Checks the signature and returns the property flags, refusing documents whose body
/// we cannot read: password-protected ones and distribution (배포용) ones, whose text is
/// in encrypted `ViewText` streams instead of `BodyText`.
fn read_file_header(ole: &mut Ole<'_>) -> Result<u32, IngestError> {
    let mut header = Vec::new();
    ole.open_stream("/FileHeader")
        .and_then(|s| s.take(256).read_to_end(&mut header))
        .map_err(|e| IngestError::malformed(FORMAT, format!("FileHeader: {e}")))?;
    if !header.starts_with(SIGNATURE) {
        return Err(IngestError::malformed(
            FORMAT,
            "FileHeader has no HWP signature",
        ));
    }
    let flags = header
        .get(36..40)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| IngestError::malformed(FORMAT, "FileHeader is truncated"))?;
    if flags & FLAG_PASSWORD != 0 {
        return Err(IngestError::Unsupported("password-protected HWP".into()));
    }
    if flags & FLAG_DISTRIBUTION != 0 {
        return Err(IngestError::Unsupported(
            "distribution (배포용) HWP document: its text is encrypted".into(),
        ));
    }
    Ok(flags)
}

/// `/BodyText/SectionN` stream paths, in section order.
fn section_streams(ole: &Ole<'_>) -> Vec<String> {
    let Ok(entries) = ole.read_storage("/BodyText") else {
        return Vec::new();
    };
    let mut numbered: Vec<(u32, String)> = entries
        .filter(|e| e.is_stream())
        .filter_map(|e| {
            let n = e.name().strip_prefix("Section")?.parse().ok()?;
            Some((n, format!("/BodyText/{}", e.name())))
        })
        .collect();
    numbered.sort();
    numbered.into_iter().map(|(_, path)| path).collect()
}

fn read_section(ole: &mut Ole<'_>, path: &str, compressed: bool) -> Result<Vec<u8>, IngestError> {
    let malformed = |e: std::io::Error| IngestError::malformed(FORMAT, format!("{path}: {e}"));
    let stream = ole.open_stream(path).map_err(malformed)?;
    let mut data = Vec::new();
    if compressed {
        // Sections are raw deflate streams, without a zlib header.
        DeflateDecoder::new(stream)
            .take(MAX_SECTION_BYTES)
            .read_to_end(&mut data)
    } else {
        stream.take(MAX_SECTION_BYTES).read_to_end(&mut data)
    }
    .map_err(malformed)?;
    Ok(data)
}

/// Title and date from the `HwpSummaryInformation` property set.
#[derive(Default)]
struct Summary {
    title: Option<String>,
    /// YYYY-MM-DD of the last save, else of creation (UTC).
    date: Option<String>,
}

// Property ids and types of an OLE property set (MS-OLEPS).
const PID_TITLE: u32 = 2;
const PID_CREATED: u32 = 12;
const PID_SAVED: u32 = 13;
const VT_LPWSTR: u32 = 0x1F;
const VT_FILETIME: u32 = 0x40;

fn read_summary(ole: &mut Ole<'_>) -> Option<Summary> {
    let mut data = Vec::new();
    ole.open_stream("/\u{5}HwpSummaryInformation")
        .and_then(|s| s.take(1 << 20).read_to_end(&mut data))
        .ok()?;
    let u32_at = |at: usize| -> Option<u32> {
        data.get(at..at.checked_add(4)?)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    // Header (28 bytes), then the first section's FMTID (16 bytes) and offset.
    let section = u32_at(44)? as usize;
    let count = u32_at(section.checked_add(4)?)?.min(1024) as usize;
    let property = |pid: u32| -> Option<usize> {
        (0..count).find_map(|i| {
            // Entries are (property id, offset from the section start) pairs.
            let entry = section + 8 + i * 8;
            if u32_at(entry)? != pid {
                return None;
            }
            Some(section + u32_at(entry + 4)? as usize)
        })
    };
    let title = property(PID_TITLE).and_then(|at| {
        if u32_at(at)? & 0xFFFF != VT_LPWSTR {
            return None;
        }
        let chars = u32_at(at + 4)? as usize;
        let bytes = data.get(at + 8..(at + 8).checked_add(chars.checked_mul(2)?)?)?;
        let units = bytes
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]));
        let title: String = char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
        Some(title.trim_end_matches('\0').to_string())
    });
    let date = [PID_SAVED, PID_CREATED].into_iter().find_map(|pid| {
        let at = property(pid)?;
        if u32_at(at)? & 0xFFFF != VT_FILETIME {
            return None;
        }
        let ticks = u64::from(u32_at(at + 4)?) | u64::from(u32_at(at + 8)?) << 32;
        filetime_date(ticks)
    });
    Some(Summary { title, date })
}

/// YYYY-MM-DD of a FILETIME (100 ns ticks since 1601-01-01 UTC); `None` when unset.
fn filetime_date(ticks: u64) -> Option<String> {
    const TICKS_PER_DAY: u64 = 864_000_000_000;
    // Days from 1601-01-01 to 1970-01-01.
    const UNIX_EPOCH_DAY: i64 = 134_774;
    if ticks == 0 {
        return None;
    }
    let days = (ticks / TICKS_PER_DAY) as i64 - UNIX_EPOCH_DAY;
    let (y, m, d) = civil_from_days(days);
    Some(format!("{y:04}-{m:02}-{d:02}"))
}

/// Gregorian date of a day count since 1970-01-01, counting in 400-year eras of
/// 146,097 days with years starting in March so that leap days come last.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// One record: a 32-bit header (tag 10 bits, level 10 bits, size 12 bits, where size
/// 0xFFF means a 32-bit size follows) and its data.
struct Record<'a> {
    tag: u16,
    level: u16,
    data: &'a [u8],
}

struct Records<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = take_record(&mut self.rest);
        if item.is_err() {
            self.rest = &[];
        }
        Some(item)
    }
}

fn take_u32(rest: &mut &[u8]) -> Option<u32> {
    let (head, tail) = rest.split_first_chunk::<4>()?;
    *rest = tail;
    Some(u32::from_le_bytes(*head))
}

fn take_record<'a>(rest: &mut &'a [u8]) -> Result<Record<'a>, String> {
    let header = take_u32(rest).ok_or("truncated record header")?;
    let tag = (header & 0x3FF) as u16;
    let level = ((header >> 10) & 0x3FF) as u16;
    let size = match header >> 20 {
        0xFFF => take_u32(rest).ok_or("truncated record size")?,
        size => size,
    } as usize;
    if size > rest.len() {
        return Err(format!(
            "record {tag} claims {size} bytes, {} left",
            rest.len()
        ));
    }
    let (data, tail) = rest.split_at(size);
    *rest = tail;
    Ok(Record { tag, level, data })
}

/// What an open record stands for in the flow.
#[derive(Clone, Copy, PartialEq)]
enum Open {
    Paragraph,
    Table { row: Option<u16> },
    Cell,
}

/// Feeds a section's records into the flow. Records form a tree by level: a paragraph's
/// text and controls are one level below it, a table's cells (list headers) one level
/// below its control, and each cell's paragraphs on the cell's own level after it.
fn read_records(data: &[u8], flow: &mut FlowBuilder) -> Result<(), String> {
    let mut open: Vec<(u16, Open)> = Vec::new();
    for record in (Records { rest: data }) {
        let record = record?;
        let level = record.level;
        // Close what this record is not inside of. A paragraph on a cell's level belongs
        // to the cell; anything else on that level (the next cell) ends it.
        while let Some(&(l, what)) = open.last() {
            let inside_cell = what == Open::Cell && record.tag == TAG_PARA_HEADER;
            if l < level || (l == level && inside_cell) {
                break;
            }
            open.pop();
            flow.close();
        }
        match record.tag {
            TAG_PARA_HEADER => {
                flow.open_paragraph();
                open.push((level, Open::Paragraph));
            }
            TAG_PARA_TEXT => push_para_text(record.data, flow),
            TAG_CTRL_HEADER if ctrl_id(record.data) == Some(CTRL_TABLE) => {
                flow.open_table();
                open.push((level, Open::Table { row: None }));
            }
            TAG_LIST_HEADER => {
                if let Some((_, Open::Table { row })) = open.last_mut() {
                    let cell_row = cell_row(record.data);
                    if cell_row != *row {
                        flow.end_row();
                        *row = cell_row;
                    }
                    flow.open_cell();
                    open.push((level, Open::Cell));
                }
            }
            _ => {}
        }
    }
    for _ in open {
        flow.close();
    }
    Ok(())
}

fn ctrl_id(data: &[u8]) -> Option<u32> {
    data.first_chunk::<4>().map(|b| u32::from_le_bytes(*b))
}

/// Row address of a table cell: its list header (paragraph count u16, an unused u16,
/// properties u32) is followed by column and row address, u16 each.
fn cell_row(data: &[u8]) -> Option<u16> {
    data.get(10..12)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_le_bytes)
}

/// Decodes PARA_TEXT (UTF-16LE) into the flow. Code units below 32 are controls: inline
/// and extended controls take 8 units (the code, 6 units of parameters or object id, the
/// code again), plain control characters one.
fn push_para_text(data: &[u8], flow: &mut FlowBuilder) {
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect();
    let mut text: Vec<u16> = Vec::with_capacity(units.len());
    let mut i = 0;
    while let Some(&unit) = units.get(i) {
        let (replacement, width) = match unit {
            // Tab is an inline control; its parameters are the tab's width and leader.
            9 => (Some(' '), 8),
            // Field end, title mark and reserved inline controls: no text.
            4..=8 | 19 | 20 => (None, 8),
            // Extended controls anchor objects (tables, shapes, fields, notes) whose
            // text comes in their own records.
            1..=3 | 11 | 12 | 14..=18 | 21..=23 => (None, 8),
            // Line break within a paragraph.
            10 => (Some(' '), 1),
            24 => (Some('-'), 1),
            // Non-breaking and fixed-width spaces.
            30 | 31 => (Some(' '), 1),
            // Paragraph end and reserved characters.
            0..=31 => (None, 1),
            _ => {
                text.push(unit);
                i += 1;
                continue;
            }
        };
        if let Some(c) = replacement {
            text.push(c as u16);
        }
        i += width;
    }
    let decoded: String = char::decode_utf16(text)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    flow.push_str(&decoded);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::hancom::tests::hangul_overlap;
    use crate::formats::hwpx::tests::{corpus, Q1_2024};
    use crate::formats::HwpxParser;

    fn parse(bytes: &[u8]) -> Result<Document, IngestError> {
        let mut docs = HwpParser.parse("x.hwp", bytes)?;
        assert_eq!(docs.len(), 1);
        Ok(docs.remove(0))
    }

    #[test]
    fn hwp_and_hwpx_of_one_document_agree() {
        let hwp = parse(&corpus(&format!("{Q1_2024}.hwp"))).unwrap();
        let name = format!("{Q1_2024}.hwpx");
        let hwpx = HwpxParser.parse(&name, &corpus(&name)).unwrap().remove(0);
        assert_eq!(hwp.kind, DocKind::Hwp);
        let (a, b) = (
            hangul_overlap(&hwp.text, &hwpx.text),
            hangul_overlap(&hwpx.text, &hwp.text),
        );
        println!("hwp⊂hwpx {a:.4}, hwpx⊂hwp {b:.4}");
        assert!(a >= 0.95 && b >= 0.95, "overlap {a} / {b}");
        assert_eq!(hwp.title, hwpx.title);
        assert!(hwp.text == hwpx.text, "texts differ");
        // Same flattening of tables: the quarterly table row is one line in both.
        assert!(hwp
            .text
            .lines()
            .any(|l| l.starts_with("총투자 | 282.3 | 198.5")));
        let headings = |d: &Document| -> Vec<Option<String>> {
            d.segments
                .iter()
                .map(|s| s.locator.heading.clone())
                .collect()
        };
        assert_eq!(headings(&hwp), headings(&hwpx));
    }

    /// An OLE file with a FileHeader of the given flags and the given extra streams.
    fn ole_with(flags: u32, streams: &[(&str, &[u8])]) -> Vec<u8> {
        use std::io::Write;
        let mut ole = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        let mut header = [0u8; 256];
        header[..SIGNATURE.len()].copy_from_slice(SIGNATURE);
        header[32..36].copy_from_slice(&0x0501_0000u32.to_le_bytes());
        header[36..40].copy_from_slice(&flags.to_le_bytes());
        ole.create_stream("/FileHeader")
            .unwrap()
            .write_all(&header)
            .unwrap();
        for (path, data) in streams {
            if let Some((storage, _)) = path.rsplit_once('/').filter(|(s, _)| !s.is_empty()) {
                ole.create_storage_all(storage).unwrap();
            }
            ole.create_stream(path).unwrap().write_all(data).unwrap();
        }
        ole.into_inner().into_inner()
    }

    fn record(tag: u16, level: u16, data: &[u8]) -> Vec<u8> {
        let header = u32::from(tag) | u32::from(level) << 10 | (data.len() as u32) << 20;
        [&header.to_le_bytes()[..], data].concat()
    }

    #[test]
    fn uncompressed_sections_in_number_order() {
        let para = |text: &str| {
            let units: Vec<u8> = text
                .encode_utf16()
                .chain([13])
                .flat_map(u16::to_le_bytes)
                .collect();
            [
                record(TAG_PARA_HEADER, 0, &[0; 22]),
                record(TAG_PARA_TEXT, 1, &units),
            ]
            .concat()
        };
        let bytes = ole_with(
            0,
            &[
                ("/BodyText/Section10", &para("열한째 구역 문단입니다")),
                ("/BodyText/Section2", &para("셋째 구역 문단입니다")),
            ],
        );
        let doc = parse(&bytes).unwrap();
        assert_eq!(doc.text, "셋째 구역 문단입니다\n열한째 구역 문단입니다");
        assert_eq!(doc.title, "셋째 구역 문단입니다");
    }

    #[test]
    fn protected_and_distribution_documents_are_unsupported() {
        let body: &[(&str, &[u8])] = &[("/BodyText/Section0", &[])];
        let err = parse(&ole_with(FLAG_COMPRESSED | FLAG_PASSWORD, body)).unwrap_err();
        assert!(
            matches!(&err, IngestError::Unsupported(m) if m.contains("password")),
            "{err}"
        );
        let view: &[(&str, &[u8])] = &[("/ViewText/Section0", &[1, 2, 3])];
        let err = parse(&ole_with(FLAG_COMPRESSED | FLAG_DISTRIBUTION, view)).unwrap_err();
        assert!(
            matches!(&err, IngestError::Unsupported(m) if m.contains("배포용")),
            "{err}"
        );
        let err = parse(&ole_with(FLAG_COMPRESSED, &[])).unwrap_err();
        assert!(
            matches!(&err, IngestError::Malformed { detail, .. } if detail.contains("BodyText")),
            "{err}"
        );
        // An OLE file that is not HWP (a Word 97 document, say).
        let mut other = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        other.create_stream("/WordDocument").unwrap();
        let other = other.into_inner().into_inner();
        assert!(matches!(parse(&other), Err(IngestError::Malformed { .. })));
        assert!(!HwpParser.accepts(Path::new("x.doc"), &other));
        assert!(HwpParser.accepts(Path::new("x.HWP"), &other));
    }

    #[test]
    fn filetime_dates() {
        assert_eq!(filetime_date(0), None);
        // 2024-06-21T00:07:50Z
        assert_eq!(
            filetime_date(133_634_020_700_000_000).as_deref(),
            Some("2024-06-21")
        );
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn para_text_controls() {
        let mut units: Vec<u16> = "가".encode_utf16().collect();
        units.extend([11, 0x6c74, 0x6262, 0, 0, 0, 0, 11]); // table anchor
        units.extend([9, 4, 0, 0, 0, 0, 0, 9]); // tab
        units.extend("나".encode_utf16());
        units.extend([30, 10]);
        units.extend("😀".encode_utf16());
        units.extend([13]);
        let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_le_bytes()).collect();
        let mut flow = FlowBuilder::default();
        flow.open_paragraph();
        push_para_text(&bytes, &mut flow);
        assert_eq!(flow.finish(), ["가 나 😀"]);
    }

    #[test]
    fn damaged_input_is_malformed_not_a_panic() {
        let bytes = corpus(&format!("{Q1_2024}.hwp"));
        for cut in [0, 8, 512, 4096, bytes.len() / 2] {
            match parse(&bytes[..cut]) {
                Err(IngestError::Malformed { .. }) => {}
                other => panic!("cut {cut}: {:?}", other.map(|d| d.title)),
            }
        }
        // A cut in the last sector only loses streams we do not read (images): reading
        // on is better than refusing a file whose text is whole.
        let full = parse(&bytes).unwrap();
        match parse(&bytes[..bytes.len() - 100]) {
            Ok(doc) => assert!(doc.text == full.text),
            Err(err) => assert!(matches!(err, IngestError::Malformed { .. }), "{err}"),
        }
        for seed in 1..=20usize {
            let mut flipped = bytes.clone();
            let step = bytes.len() / (50 + seed);
            for i in (seed * 7..bytes.len()).step_by(step) {
                flipped[i] ^= 0xA5;
            }
            // Damage in image data may leave the text readable; it must never panic.
            if let Err(err) = parse(&flipped) {
                assert!(matches!(err, IngestError::Malformed { .. }), "{err}");
            }
        }
        assert!(matches!(
            parse(b"not an ole file at all"),
            Err(IngestError::Malformed { .. })
        ));
    }

    #[test]
    fn records_with_bad_sizes_are_errors() {
        // PARA_HEADER claiming 100 bytes with 2 present.
        let header: u32 = u32::from(TAG_PARA_HEADER) | (100 << 20);
        let mut data = header.to_le_bytes().to_vec();
        data.extend([0, 0]);
        let mut flow = FlowBuilder::default();
        assert!(read_records(&data, &mut flow).is_err());
        // Extended size header cut short.
        let data = (u32::from(TAG_PARA_TEXT) | (0xFFF << 20)).to_le_bytes();
        assert!(read_records(&data, &mut FlowBuilder::default()).is_err());
    }
}
