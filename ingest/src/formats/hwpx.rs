//! HWPX (OWPML, KS X 6101): a zip whose `Contents/content.hpf` lists the sections and whose
//! `Contents/section*.xml` hold the paragraphs, read as a stream into one [`Document`].

use super::hancom::{assemble, DocumentInfo, FlowBuilder};
use crate::{DocKind, Document, DocumentParser, IngestError};
use quick_xml::events::{BytesRef, Event};
use quick_xml::Reader;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::Path;

const FORMAT: &str = "hwpx";
const MIMETYPE: &str = "application/hwp+zip";
const CONTENT_HPF: &str = "Contents/content.hpf";
/// Upper bound on the unpacked size of one zip entry, against zip bombs.
const MAX_ENTRY_BYTES: u64 = 512 << 20;

/// Parses `.hwpx` files (and zips that announce the HWPX mimetype).
pub struct HwpxParser;

impl DocumentParser for HwpxParser {
    fn name(&self) -> &'static str {
        FORMAT
    }

    fn accepts(&self, path: &Path, head: &[u8]) -> bool {
        let by_extension = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case(FORMAT));
        // The mimetype entry comes first and uncompressed, so its content is in the head.
        let by_content = head.starts_with(b"PK\x03\x04")
            && (contains(head, MIMETYPE.as_bytes()) || contains(head, b"Contents/section"));
        by_extension || by_content
    }

    fn parse(&self, file_name: &str, bytes: &[u8]) -> Result<Vec<Document>, IngestError> {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| IngestError::malformed(FORMAT, format!("not a zip archive: {e}")))?;
        check_mimetype(&mut zip)?;

        let package = match zip.index_for_name(CONTENT_HPF) {
            Some(_) => read_package(&mut zip)?,
            None => Package::default(),
        };
        let sections = section_paths(&package, &zip);
        if sections.is_empty() {
            return Err(IngestError::Unsupported(
                "zip archive without HWPX sections (no Contents/section*.xml)".into(),
            ));
        }

        let mut flow = FlowBuilder::default();
        for path in &sections {
            let entry = zip
                .by_name(path)
                .map_err(|e| IngestError::malformed(FORMAT, format!("{path}: {e}")))?;
            read_section(BufReader::new(entry.take(MAX_ENTRY_BYTES)), &mut flow)
                .map_err(|e| IngestError::malformed(FORMAT, format!("{path}: {e}")))?;
        }

        let mut meta = BTreeMap::new();
        if let Some(date) = package.date {
            meta.insert("date".to_string(), date);
        }
        let info = DocumentInfo {
            kind: DocKind::Hwpx,
            format: FORMAT,
            file_name,
            title: package.title,
            meta,
        };
        Ok(vec![assemble(info, flow.finish())?])
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

type Zip<'a> = zip::ZipArchive<Cursor<&'a [u8]>>;

/// Tells an HWPX package from other zips (OOXML, ODF, EPUB) by its `mimetype` entry.
fn check_mimetype(zip: &mut Zip<'_>) -> Result<(), IngestError> {
    let Ok(entry) = zip.by_name("mimetype") else {
        return Ok(()); // optional in practice; the sections decide
    };
    let mut mimetype = String::new();
    entry
        .take(256)
        .read_to_string(&mut mimetype)
        .map_err(|e| IngestError::malformed(FORMAT, format!("mimetype: {e}")))?;
    let mimetype = mimetype.trim();
    if mimetype.starts_with("application/hwp") {
        Ok(())
    } else {
        Err(IngestError::Unsupported(format!(
            "zip archive of type {mimetype:?}, not HWPX ({MIMETYPE})"
        )))
    }
}

/// What `content.hpf` (an OPF package) says: metadata and the sections in reading order.
#[derive(Default)]
struct Package {
    title: Option<String>,
    /// YYYY-MM-DD of the last save, else of creation.
    date: Option<String>,
    /// `href`s of the spine items, in spine order.
    spine: Vec<String>,
}

fn read_package(zip: &mut Zip<'_>) -> Result<Package, IngestError> {
    let entry = zip
        .by_name(CONTENT_HPF)
        .map_err(|e| IngestError::malformed(FORMAT, format!("{CONTENT_HPF}: {e}")))?;
    parse_package(BufReader::new(entry.take(MAX_ENTRY_BYTES)))
        .map_err(|e| IngestError::malformed(FORMAT, format!("{CONTENT_HPF}: {e}")))
}

fn parse_package(input: impl BufRead) -> Result<Package, quick_xml::Error> {
    let mut reader = Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut hrefs: HashMap<String, String> = HashMap::new();
    let mut idrefs = Vec::new();
    let mut dates: HashMap<String, String> = HashMap::new();
    let mut title = None;
    // Element whose text we are collecting: "title" or a meta's name.
    let mut capture: Option<String> = None;
    let mut text = String::new();
    loop {
        match reader.read_event_into(&mut buf)? {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                let attr = |name: &str| -> Result<Option<String>, quick_xml::Error> {
                    match e.try_get_attribute(name)? {
                        Some(a) => Ok(Some(a.unescape_value()?.into_owned())),
                        None => Ok(None),
                    }
                };
                match e.local_name().as_ref() {
                    b"title" => capture = Some("title".into()),
                    b"meta" => capture = attr("name")?,
                    b"item" => {
                        if let (Some(id), Some(href)) = (attr("id")?, attr("href")?) {
                            hrefs.insert(id, href);
                        }
                    }
                    b"itemref" => idrefs.extend(attr("idref")?),
                    _ => {}
                }
                text.clear();
            }
            Event::Text(t) if capture.is_some() => text.push_str(&t.xml_content()?),
            Event::GeneralRef(r) if capture.is_some() => text.push_str(&resolve_ref(&r)?),
            Event::End(_) => {
                if let Some(name) = capture.take() {
                    let value = text.trim().to_string();
                    if name == "title" {
                        title = Some(value);
                    } else {
                        dates.insert(name, value);
                    }
                }
            }
            _ => {}
        }
        buf.clear();
    }
    let date = ["ModifiedDate", "CreatedDate"]
        .iter()
        .filter_map(|k| dates.get(*k))
        .find_map(|d| iso_date(d));
    let spine = idrefs
        .iter()
        .filter_map(|id| hrefs.get(id).cloned())
        .collect();
    Ok(Package { title, date, spine })
}

/// The YYYY-MM-DD prefix of an ISO 8601 timestamp.
fn iso_date(s: &str) -> Option<String> {
    let date = s.get(..10)?;
    let b = date.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    (digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10))
        .then(|| date.to_string())
}

/// The section entries in reading order: the spine's section items, or, for packages
/// without a usable spine, `Contents/sectionN.xml` by number.
fn section_paths(package: &Package, zip: &Zip<'_>) -> Vec<String> {
    let from_spine: Vec<String> = package
        .spine
        .iter()
        .filter(|href| is_section(href))
        .filter_map(|href| {
            // OPF hrefs are relative to the package file; Hancom writes them from the root.
            [href.clone(), format!("Contents/{href}")]
                .into_iter()
                .find(|p| zip.index_for_name(p).is_some())
        })
        .collect();
    if !from_spine.is_empty() {
        return from_spine;
    }
    let mut numbered: Vec<(u32, String)> = zip
        .file_names()
        .filter_map(|name| {
            let n = name
                .strip_prefix("Contents/section")?
                .strip_suffix(".xml")?
                .parse()
                .ok()?;
            Some((n, name.to_string()))
        })
        .collect();
    numbered.sort();
    numbered.into_iter().map(|(_, name)| name).collect()
}

fn is_section(href: &str) -> bool {
    let name = href.rsplit('/').next().unwrap_or(href);
    name.starts_with("section") && name.ends_with(".xml")
}

/// Streams one section's XML into the flow: `<hp:p>` paragraphs of `<hp:t>` text, and
/// `<hp:tbl>` tables of `<hp:tr>` rows of `<hp:tc>` cells. Everything else (section and
/// shape properties, line layout) carries no text outside `<hp:t>` and is skipped;
/// paragraphs nested in text boxes, footnotes or headers land after their anchor.
fn read_section(input: impl BufRead, flow: &mut FlowBuilder) -> Result<(), quick_xml::Error> {
    let mut reader = Reader::from_reader(input);
    let mut buf = Vec::new();
    // Depth of open <hp:t> elements: text counts only inside one.
    let mut in_text = 0usize;
    loop {
        match reader.read_event_into(&mut buf)? {
            Event::Eof => break,
            Event::Start(e) => match e.local_name().as_ref() {
                b"p" => flow.open_paragraph(),
                b"tbl" => flow.open_table(),
                b"tr" => flow.end_row(),
                b"tc" => flow.open_cell(),
                b"t" => in_text += 1,
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                b"p" | b"tbl" | b"tc" => flow.close(),
                b"t" => in_text = in_text.saturating_sub(1),
                _ => {}
            },
            Event::Empty(e) => match e.local_name().as_ref() {
                b"p" => {
                    flow.open_paragraph();
                    flow.close();
                }
                // Inline characters written as elements inside <hp:t>.
                b"tab" | b"lineBreak" | b"nbSpace" | b"fwSpace" if in_text > 0 => {
                    flow.push_char(' ')
                }
                b"hyphen" if in_text > 0 => flow.push_char('-'),
                _ => {}
            },
            Event::Text(t) if in_text > 0 => flow.push_str(&t.xml_content()?),
            Event::CData(t) if in_text > 0 => flow.push_str(&t.decode()?),
            Event::GeneralRef(r) if in_text > 0 => flow.push_str(&resolve_ref(&r)?),
            _ => {}
        }
        buf.clear();
    }
    Ok(())
}

/// The text of `&amp;`-style and `&#...;` references; an unknown entity stays as written.
fn resolve_ref(r: &BytesRef<'_>) -> Result<String, quick_xml::Error> {
    if let Some(c) = r.resolve_char_ref()? {
        return Ok(c.to_string());
    }
    let name = r.decode()?;
    Ok(match quick_xml::escape::resolve_predefined_entity(&name) {
        Some(s) => s.to_string(),
        None => format!("&{name};"),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn corpus(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/corpus/docs/hwp")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    pub(crate) const Q1_2024: &str = "2024년 1분기 해외직접투자 보도자료 ff";
    const Q2_2025: &str = "2025년 2분기 해외직접투자 (최종).hwpx";

    fn parse(name: &str, bytes: &[u8]) -> Result<Document, IngestError> {
        let mut docs = HwpxParser.parse(name, bytes)?;
        assert_eq!(docs.len(), 1);
        Ok(docs.remove(0))
    }

    fn squash(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, body) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(body.as_bytes()).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn dev_gold_quotes_are_in_the_text() {
        let qa = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/qa/dev.jsonl"),
        )
        .unwrap();
        let mut checked = 0;
        for line in qa.lines().filter(|l| !l.trim().is_empty()) {
            let q: serde_json::Value = serde_json::from_str(line).unwrap();
            let Some(doc) = q["gold_doc"].as_str().and_then(|d| d.strip_prefix("hwp/")) else {
                continue;
            };
            if !doc.ends_with(".hwpx") {
                continue;
            }
            let parsed = parse(doc, &corpus(doc)).unwrap();
            let text = squash(&parsed.text);
            for quote in q["gold_quote"].as_str().into_iter() {
                assert!(text.contains(&squash(quote)), "{doc}: missing {quote:?}");
                checked += 1;
            }
        }
        assert!(checked > 0, "dev.jsonl has no HWPX gold quotes");
    }

    #[test]
    fn q1_2024_release_text_title_tables_and_segments() {
        let name = format!("{Q1_2024}.hwpx");
        let doc = parse(&name, &corpus(&name)).unwrap();
        assert_eq!(doc.kind, DocKind::Hwpx);
        assert!(doc.title.contains("해외직접투자"), "title {:?}", doc.title);
        assert_eq!(doc.meta.get("date").map(String::as_str), Some("2024-06-21"));
        let text = squash(&doc.text);
        assert!(
            text.contains("순투자액은 128.7억 달러로 전년 동기(138.4억 달러) 대비 7.0% 감소하였다")
        );
        // The quarterly table comes out one row per line.
        assert!(doc
            .text
            .lines()
            .any(|l| l.starts_with("총투자 | 282.3 | 198.5")));
        assert!(doc.segments.len() > 1);
        let mut end = 0;
        for s in &doc.segments {
            assert!(s.range.start >= end && s.range.end <= doc.text.len());
            assert!(doc.text.is_char_boundary(s.range.start));
            assert!(doc.text.is_char_boundary(s.range.end));
            end = s.range.end;
        }
    }

    #[test]
    fn preview_text_is_covered() {
        let name = format!("{Q1_2024}.hwpx");
        let bytes = corpus(&name);
        let doc = parse(&name, &bytes).unwrap();
        let mut zip = zip::ZipArchive::new(Cursor::new(&bytes[..])).unwrap();
        let mut preview = String::new();
        zip.by_name("Preview/PrvText.txt")
            .unwrap()
            .read_to_string(&mut preview)
            .unwrap();
        let overlap = crate::formats::hancom::tests::hangul_overlap(&preview, &doc.text);
        assert!(overlap > 0.95, "preview overlap {overlap}");
    }

    #[test]
    fn q2_2025_release_has_a_sensible_title() {
        let doc = parse(Q2_2025, &corpus(Q2_2025)).unwrap();
        assert!(doc.title.contains("2분기"), "title {:?}", doc.title);
        assert!(doc.title.contains("해외직접투자"), "title {:?}", doc.title);
    }

    #[test]
    fn entities_breaks_and_nested_runs() {
        let section = r#"<?xml version="1.0"?><hs:sec xmlns:hs="s" xmlns:hp="p">
            <hp:p><hp:run><hp:secPr><hp:grid/></hp:secPr><hp:t>A &amp; B&#44032;</hp:t></hp:run>
            <hp:run><hp:t>x<hp:tab/>y<hp:lineBreak/>z</hp:t></hp:run></hp:p>
            <hp:p><hp:run><hp:rect><hp:drawText><hp:subList><hp:p><hp:run><hp:t>상자 글</hp:t></hp:run></hp:p></hp:subList></hp:drawText></hp:rect><hp:t>본문</hp:t></hp:run></hp:p>
            </hs:sec>"#;
        let bytes = zip_of(&[("mimetype", MIMETYPE), ("Contents/section0.xml", section)]);
        let doc = parse("x.hwpx", &bytes).unwrap();
        assert_eq!(doc.text, "A & B가x y z\n본문\n상자 글");
        assert_eq!(doc.title, "A & B가x y z");
    }

    #[test]
    fn foreign_zip_is_unsupported_with_reason() {
        let docx = zip_of(&[
            ("mimetype", "application/vnd.oasis.opendocument.text"),
            ("content.xml", "<a/>"),
        ]);
        let err = parse("x.hwpx", &docx).unwrap_err();
        assert!(
            matches!(&err, IngestError::Unsupported(m) if m.contains("not HWPX")),
            "{err}"
        );
        let plain = zip_of(&[("readme.txt", "hello")]);
        let err = parse("x.hwpx", &plain).unwrap_err();
        assert!(
            matches!(&err, IngestError::Unsupported(m) if m.contains("section")),
            "{err}"
        );
        assert!(!HwpxParser.accepts(Path::new("x.zip"), &plain));
    }

    #[test]
    fn damaged_input_is_malformed_not_a_panic() {
        let name = format!("{Q1_2024}.hwpx");
        let bytes = corpus(&name);
        for cut in [0, 10, 100, bytes.len() / 2, bytes.len() - 30] {
            let err = parse(&name, &bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, IngestError::Malformed { .. }),
                "cut {cut}: {err}"
            );
        }
        // Flip bytes across the archive: each result is an error or a document, never a panic.
        let mut flipped = bytes.clone();
        let step = bytes.len() / 97;
        for i in (0..bytes.len()).step_by(step) {
            flipped[i] ^= 0x5a;
        }
        assert!(matches!(
            parse(&name, &flipped),
            Err(IngestError::Malformed { .. })
        ));
        let section = "<hs:sec xmlns:hp=\"p\"><hp:p><hp:t>열린</hp:p></hs:sec>";
        let bad = zip_of(&[("mimetype", MIMETYPE), ("Contents/section0.xml", section)]);
        assert!(matches!(
            parse("x.hwpx", &bad),
            Err(IngestError::Malformed { .. })
        ));
    }
}
