//! The same 식품위생법 excerpt as law.go.kr-style Markdown, XML and JSON must give the same
//! document: text, segments and locators (the formats share one statute builder).

use anjeon_ingest::{chunk_document, parse_file, ChunkOptions, DocKind, Document};
use std::path::Path;

fn parse_fixture(name: &str) -> Document {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut docs = parse_file(&path, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(docs.len(), 1, "{name}");
    docs.remove(0)
}

#[test]
fn markdown_xml_and_json_agree() {
    let md = parse_fixture("식품위생법_발췌.md");
    let xml = parse_fixture("식품위생법_발췌.xml");
    let json = parse_fixture("식품위생법_발췌.json");
    for (name, other) in [("xml", &xml), ("json", &json)] {
        assert_eq!(md.title, other.title, "{name}");
        assert_eq!(md.kind, other.kind, "{name}");
        assert_eq!(md.text, other.text, "{name} text differs");
        assert_eq!(md.segments, other.segments, "{name} segments differ");
        for key in [
            "law",
            "law_kind",
            "department",
            "effective_date",
            "promulgation_date",
            "law_id",
        ] {
            assert_eq!(md.meta.get(key), other.meta.get(key), "{name} meta {key}");
        }
    }
}

#[test]
fn excerpt_structure() {
    let doc = parse_fixture("식품위생법_발췌.md");
    assert_eq!(doc.kind, DocKind::Statute);
    assert_eq!(doc.meta["effective_date"], "2026-12-31");
    assert_eq!(doc.meta["law_kind"], "법률");
    let seen: Vec<(String, Option<&str>)> = doc
        .segments
        .iter()
        .map(|s| (s.locator.display(), s.locator.chapter.as_deref()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("제2조".to_owned(), Some("제1장 총칙")),
            ("제4조".to_owned(), Some("제2장 식품과 식품첨가물")),
            ("제10조".to_owned(), Some("제3장 기구와 용기ㆍ포장")),
            ("제44조 제1항".to_owned(), Some("제7장 영업")),
            ("제44조 제2항".to_owned(), Some("제7장 영업")),
            ("제44조 제5항".to_owned(), Some("제7장 영업")),
            (
                "제59조 제1항".to_owned(),
                Some("제10장 식품위생단체 등 > 제1절 동업자조합")
            ),
            (
                "제59조 제2항".to_owned(),
                Some("제10장 식품위생단체 등 > 제1절 동업자조합")
            ),
            ("부칙 제1조".to_owned(), Some("부칙 <제21299호,2025.12.30>")),
            ("부칙 제3조".to_owned(), Some("부칙 <제21299호,2025.12.30>")),
        ]
    );
    let first_44 = &doc.text[doc.segments[3].range.clone()];
    assert!(
        first_44.starts_with("제44조(영업자 등의 준수사항)\n① 제36조제1항 각 호의"),
        "{first_44}"
    );
    assert!(first_44.ends_with("\n  2. 「야생생물 보호 및 관리에 관한 법률」을 위반하여 포획ㆍ채취한 야생생물은 이를 식품의 제조ㆍ가공에 사용하거나 판매하지 말 것"));
    assert!(doc
        .text
        .contains("\n    가. 음식을 먹을 때 사용하거나 담는 것\n"));
    assert!(!doc.text.contains('\\') && !doc.text.contains("**"));

    let passages = chunk_document(&doc, ChunkOptions::default());
    let p44 = passages
        .iter()
        .find(|p| p.locator.display() == "제44조 제1항")
        .expect("제44조 제1항");
    assert_eq!(p44.title, "식품위생법 제44조(영업자 등의 준수사항)");
    let supplement = passages
        .iter()
        .find(|p| p.locator.display() == "부칙 제1조")
        .expect("부칙");
    assert_eq!(
        supplement.title,
        "식품위생법 부칙 <제21299호,2025.12.30> 제1조(시행일)"
    );
}
