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

        let info = DocumentInfo {
            kind: DocKind::Hwp,
            format: FORMAT,
            file_name,
            title: None,
            meta: BTreeMap::new(),
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
