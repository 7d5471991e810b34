//! Tests of the PDF parser against the Hancom PDFs of the shared corpus (checked against
//! pdftotext) and against small PDFs built here for fonts, layout and damaged input.

use super::*;
use lopdf::{dictionary, Object, Stream};
use std::path::PathBuf;
use std::process::Command;

const TEXT_PDFS: &[&str] = &[
    "KDRIs활용_정오표_1차수정.pdf",
    "정오표_2차수정_아미노산.pdf",
    "정오표_3차수정_수분_식이섬유.pdf",
    "정오표_4차수정_에너지_판토텐산_칼슘.pdf",
];

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

fn corpus_pdf(name: &str) -> PathBuf {
    shared().join("corpus/docs/pdf").join(name)
}

fn parse_corpus(name: &str) -> Result<Document, IngestError> {
    let path = corpus_pdf(name);
    let bytes =
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut docs = PdfParser.parse(name, &bytes)?;
    assert_eq!(docs.len(), 1);
    Ok(docs.remove(0))
}

fn pdftotext(path: &Path) -> String {
    let output = Command::new("pdftotext")
        .arg(path)
        .arg("-")
        .output()
        .unwrap_or_else(|e| panic!("cannot run pdftotext ({e}): install poppler-utils"));
    assert!(
        output.status.success(),
        "pdftotext failed on {}",
        path.display()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn hangul_counts(text: &str) -> HashMap<char, usize> {
    let mut counts = HashMap::new();
    for c in text
        .chars()
        .filter(|c| ('\u{AC00}'..='\u{D7A3}').contains(c))
    {
        *counts.entry(c).or_default() += 1;
    }
    counts
}

fn without_whitespace(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn hangul_matches_pdftotext() {
    for name in TEXT_PDFS {
        let doc = parse_corpus(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ours = hangul_counts(&doc.text);
        let reference = hangul_counts(&pdftotext(&corpus_pdf(name)));
        let common: usize = reference
            .iter()
            .map(|(c, n)| (*n).min(ours.get(c).copied().unwrap_or(0)))
            .sum();
        let recall = common as f64 / reference.values().sum::<usize>().max(1) as f64;
        let precision = common as f64 / ours.values().sum::<usize>().max(1) as f64;
        println!("{name}: Hangul recall {recall:.4}, precision {precision:.4}");
        assert!(recall >= 0.95, "{name}: recall {recall:.4}");
        assert!(precision >= 0.95, "{name}: precision {precision:.4}");
    }
}

#[test]
fn one_segment_per_page() {
    for name in TEXT_PDFS {
        let doc = parse_corpus(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let bytes = std::fs::read(corpus_pdf(name)).unwrap_or_default();
        let pages = lopdf::Document::load_mem(&bytes)
            .map(|d| d.get_pages().len())
            .unwrap_or(0);
        assert_eq!(doc.segments.len(), pages, "{name}");
        assert_eq!(pages, 2, "{name}");
        for (i, segment) in doc.segments.iter().enumerate() {
            assert_eq!(segment.locator.page, Some(i as u32 + 1));
            assert!(
                !doc.text[segment.range.clone()].trim().is_empty(),
                "{name} page {}",
                i + 1
            );
        }
        assert_eq!(doc.kind, DocKind::Pdf);
        assert!(
            doc.meta.get("date").is_some_and(|d| d.len() == 10),
            "{name}: {:?}",
            doc.meta
        );
    }
}

#[test]
fn gold_quotes_are_found() {
    let path = shared().join("qa/dev.jsonl");
    let questions =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut checked = 0;
    for line in questions.lines().filter(|l| !l.trim().is_empty()) {
        let q: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let (Some(doc), Some(quote)) = (q["gold_doc"].as_str(), q["gold_quote"].as_str()) else {
            continue;
        };
        let Some(name) = doc.strip_prefix("pdf/") else {
            continue;
        };
        let parsed = parse_corpus(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let quote: String = without_whitespace(quote).nfc().collect();
        assert!(
            without_whitespace(&parsed.text).contains(&quote),
            "{}: gold quote {quote:?} not in {name}",
            q["id"]
        );
        checked += 1;
    }
    assert!(checked > 0, "dev.jsonl has no PDF questions");
}

#[test]
fn image_only_pdf_has_no_text() {
    match parse_corpus("KDRIs안내_카드뉴스.pdf") {
        Err(IngestError::NoText(reason)) => assert!(reason.contains("13 page")),
        other => panic!("expected NoText, got {:?}", other.map(|d| d.text.len())),
    }
}

#[test]
fn reading_order_keeps_table_cells_together() {
    let doc =
        parse_corpus("정오표_4차수정_에너지_판토텐산_칼슘.pdf").unwrap_or_else(|e| panic!("{e}"));
    // Both lines of the corrected sentence are in one cell, so they stay adjacent.
    assert!(doc.text.contains(
        "1.075 mL/kcal를 곱하여 968 mL/일을 산출\n하고 이를 반올림하여 1,000 mL/일로 제시하"
    ));
    assert!(
        doc.text
            .starts_with("「2020 한국인 영양소 섭취기준」정오표"),
        "{}",
        &doc.text[..200]
    );
}

#[test]
fn damaged_files_do_not_panic() {
    let bytes = std::fs::read(corpus_pdf(TEXT_PDFS[3])).unwrap_or_default();
    assert!(!bytes.is_empty());
    for len in [
        0,
        1,
        5,
        8,
        100,
        1000,
        bytes.len() / 3,
        bytes.len() / 2,
        bytes.len() - 200,
        bytes.len() - 1,
    ] {
        let result = PdfParser.parse("cut.pdf", &bytes[..len]);
        if len < 100 {
            assert!(
                matches!(result, Err(IngestError::Malformed { .. })),
                "{len}: {result:?}"
            );
        }
    }
    // A fixed-seed generator keeps the flipped bytes the same run to run.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..40 {
        let mut damaged = bytes.clone();
        for _ in 0..(1 + next() % 20) {
            let at = (next() % damaged.len() as u64) as usize;
            damaged[at] ^= 1 << (next() % 8);
        }
        let _ = PdfParser.parse("flipped.pdf", &damaged);
    }
    assert!(PdfParser.parse("junk.pdf", b"%PDF-1.4\n%junk\n").is_err());
}

#[test]
fn accepts_pdf_by_extension_or_magic() {
    assert!(PdfParser.accepts(Path::new("a.PDF"), b""));
    assert!(PdfParser.accepts(Path::new("noext"), b"%PDF-1.7\n"));
    assert!(!PdfParser.accepts(Path::new("a.txt"), b"hello"));
}

#[test]
fn page_numbers_and_dates() {
    for n in ["3", "- 3 -", "— 12 —", "3 / 10", "(4)", "iv"] {
        assert!(is_page_number(n), "{n}");
    }
    for n in ["제3조", "2021년", "3. 개요", "1,000"] {
        assert!(!is_page_number(n), "{n}");
    }
    assert_eq!(
        pdf_date("D:20211105103109+09'00'").as_deref(),
        Some("2021-11-05")
    );
    assert_eq!(pdf_date("D:2021").as_deref(), Some("2021-01-01"));
    assert_eq!(pdf_date("garbage"), None);
    assert!(!is_meaningful_title("보고서.hwp"));
    assert!(!is_meaningful_title("  "));
    assert!(is_meaningful_title("2020 한국인 영양소 섭취기준 정오표"));
}

#[test]
fn running_headers_and_page_numbers_are_dropped() {
    let page = Rect {
        x0: 0.0,
        y0: 0.0,
        x1: 600.0,
        y1: 800.0,
    };
    let line = |text: &str, y: f32| Line {
        text: text.to_string(),
        top: y + 8.0,
        bottom: y - 2.0,
        block_start: false,
    };
    let mut pages: Vec<(Vec<Line>, Rect)> = (1..=4)
        .map(|n| {
            (
                vec![
                    line(&format!("식품안전 보고서 {n}월호"), 780.0),
                    line("본문", 500.0),
                    line("3", 550.0),
                    line(&format!("- {n} -"), 20.0),
                ],
                page,
            )
        })
        .collect();
    drop_running_lines(&mut pages);
    for (lines, _) in &pages {
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["본문", "3"]);
    }
}

/// A one-page PDF drawing `content` with the given font resources.
fn build_pdf(fonts: Vec<(&str, Object)>, content: &str) -> Vec<u8> {
    save(build_document(fonts, content))
}

fn save(mut doc: lopdf::Document) -> Vec<u8> {
    let mut out = Vec::new();
    doc.save_to(&mut out)
        .expect("an in-memory PDF can be written");
    out
}

fn build_document(fonts: Vec<(&str, Object)>, content: &str) -> lopdf::Document {
    let mut doc = lopdf::Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let mut font_dict = Dictionary::new();
    for (name, font) in fonts {
        let id = doc.add_object(font);
        font_dict.set(name, id);
    }
    let content_id = doc.add_object(Stream::new(Dictionary::new(), content.as_bytes().to_vec()));
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "Contents" => content_id,
        "Resources" => dictionary! { "Font" => font_dict },
        "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(
            dictionary! { "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1 },
        ),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let info = doc.add_object(dictionary! {
        "Title" => Object::string_literal("Synthetic test page"),
        "CreationDate" => Object::string_literal("D:20240229120000Z"),
    });
    doc.trailer.set("Info", info);
    doc
}

fn parse_bytes(bytes: &[u8]) -> Document {
    let mut docs = PdfParser
        .parse("synthetic.pdf", bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    docs.remove(0)
}

#[test]
fn simple_font_text_operators_and_columns() {
    let helvetica = dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding",
    };
    let content = "BT /F1 10 Tf 14 TL 1 0 0 1 50 700 Tm (Left column) Tj T* [(line)-600(two)] TJ \
                   (caf\\351 three) ' ET \
                   BT /F1 10 Tf 1 0 0 1 320 700 Tm (Right column) Tj 5 0 (next line) \" ET";
    let doc = parse_bytes(&build_pdf(vec![("F1", helvetica.into())], content));
    assert_eq!(
        doc.text,
        "Left column\nline two\ncaf\u{e9} three\n\nRight column\nnext line"
    );
    assert_eq!(doc.title, "Synthetic test page");
    assert_eq!(doc.meta.get("date").map(String::as_str), Some("2024-02-29"));
}

#[test]
fn cid_font_without_to_unicode_uses_adobe_korea1() {
    let descendant = dictionary! {
        "Type" => "Font", "Subtype" => "CIDFontType0", "BaseFont" => "HYSMyeongJo-Medium",
        "CIDSystemInfo" => dictionary! {
            "Registry" => Object::string_literal("Adobe"),
            "Ordering" => Object::string_literal("Korea1"),
            "Supplement" => 2,
        },
    };
    let font = dictionary! {
        "Type" => "Font", "Subtype" => "Type0", "BaseFont" => "HYSMyeongJo-Medium",
        "Encoding" => "Identity-H", "DescendantFonts" => vec![descendant.into()],
    };
    // CIDs 3296 and 1086 are 한 and 가 in Adobe-Korea1.
    let doc = parse_bytes(&build_pdf(
        vec![("K", font.into())],
        "BT /K 12 Tf 72 720 Td <0CE0043E> Tj ET",
    ));
    assert_eq!(doc.text, "한가");
}

#[test]
fn cid_font_without_any_unicode_table_is_reported() {
    // poppler-data ships no UCS2 table for the obsolete Adobe-Japan2 collection.
    let descendant = dictionary! {
        "Type" => "Font", "Subtype" => "CIDFontType0", "BaseFont" => "HojoMincho",
        "CIDSystemInfo" => dictionary! {
            "Registry" => Object::string_literal("Adobe"),
            "Ordering" => Object::string_literal("Japan2"),
            "Supplement" => 0,
        },
    };
    let font = dictionary! {
        "Type" => "Font", "Subtype" => "Type0", "BaseFont" => "HojoMincho",
        "Encoding" => "Identity-H", "DescendantFonts" => vec![descendant.into()],
    };
    let bytes = build_pdf(
        vec![("K", font.into())],
        "BT /K 12 Tf 72 720 Td <0CE0> Tj ET",
    );
    match PdfParser.parse("japan2.pdf", &bytes) {
        Err(IngestError::Unsupported(reason)) => {
            assert!(
                reason.contains("HojoMincho") && reason.contains("Adobe-Japan2-UCS2"),
                "{reason}"
            )
        }
        other => panic!("expected an error naming the font, got {other:?}"),
    }
}

/// The test page encrypted (RC4, 128 bit) with the given user password.
fn encrypted_pdf(user_password: &str) -> Vec<u8> {
    let helvetica =
        dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica" };
    let mut doc = build_document(
        vec![("F1", helvetica.into())],
        "BT /F1 10 Tf 50 700 Td (secret) Tj ET",
    );
    doc.trailer.set(
        "ID",
        vec![
            Object::string_literal("0123456789abcdef"),
            Object::string_literal("0123456789abcdef"),
        ],
    );
    let state = lopdf::EncryptionState::try_from(lopdf::EncryptionVersion::V2 {
        document: &doc,
        owner_password: "owner",
        user_password,
        key_length: 128,
        permissions: lopdf::Permissions::all(),
    })
    .expect("encryption state");
    doc.encrypt(&state).expect("encrypt");
    save(doc)
}

#[test]
fn encrypted_pdfs() {
    match PdfParser.parse("locked.pdf", &encrypted_pdf("user")) {
        Err(IngestError::Malformed { detail, .. }) => {
            assert!(detail.contains("password"), "{detail}")
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    // Permission-only encryption (empty user password) opens without asking.
    assert_eq!(parse_bytes(&encrypted_pdf("")).text, "secret");
}
