//! Tests on the real corpus in `shared/`: every statute and the safety letter file parse,
//! known articles get the right locators, passages are exact slices of the text, and
//! every statute/JSON gold quote of the dev questions lies within one passage.

use anjeon_ingest::{chunk_document, parse_file, ChunkOptions, DocKind, Document, Passage};
use std::path::{Path, PathBuf};
use unicode_normalization::UnicodeNormalization;

fn shared() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    assert!(
        dir.join("corpus/docs").is_dir(),
        "shared corpus not found at {}",
        dir.display()
    );
    dir
}

fn docs_dir() -> PathBuf {
    shared().join("corpus/docs")
}

fn parse(rel: &str) -> Vec<Document> {
    let path = docs_dir().join(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_file(&path, &bytes).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn statute_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(docs_dir().join("statutes"))
        .expect("statutes dir")
        .filter_map(|e| e.ok())
        .map(|e| format!("statutes/{}", e.file_name().to_string_lossy()))
        .filter(|f| f.ends_with(".md"))
        .collect();
    files.sort();
    files
}

/// Markdown escapes and bold marks dropped, whitespace runs collapsed: how gold quotes
/// (raw file text) and passages (parsed text) are compared.
fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek().is_some_and(|n| n.is_ascii_punctuation()) {
            continue;
        }
        out.push(c);
    }
    let out = out.replace("**", "");
    out.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .nfc()
        .collect()
}

fn check_invariants(name: &str, doc: &Document, passages: &[Passage], max_chars: usize) {
    let mut last = 0;
    for s in &doc.segments {
        assert!(
            s.range.start >= last && s.range.start <= s.range.end,
            "{name}: segment order"
        );
        assert!(
            doc.text.get(s.range.clone()).is_some(),
            "{name}: segment off char boundary"
        );
        last = s.range.end;
    }
    assert!(
        doc.text.nfc().eq(doc.text.chars()),
        "{name}: text is not NFC"
    );
    let mut last = 0;
    for p in passages {
        assert_eq!(p.text, doc.text[p.range.clone()], "{name}");
        assert!(
            p.range.start >= last,
            "{name}: passages overlap or are out of order"
        );
        assert!(
            p.text.chars().count() <= max_chars,
            "{name}: passage too long"
        );
        assert!(!p.text.trim().is_empty(), "{name}: empty passage");
        assert!(!p.title.is_empty(), "{name}: passage without title");
        last = p.range.end;
    }
}

#[test]
fn all_statutes_parse() {
    let files = statute_files();
    // PROVENANCE.md lists 30 statute files (39 files in all).
    assert_eq!(files.len(), 30);
    for rel in &files {
        let docs = parse(rel);
        assert_eq!(docs.len(), 1, "{rel}");
        let doc = &docs[0];
        assert_eq!(doc.kind, DocKind::Statute, "{rel}");
        assert_eq!(doc.meta["law"], doc.title, "{rel}");
        let date = &doc.meta["effective_date"];
        assert!(
            date.len() == 10 && date.as_bytes()[4] == b'-',
            "{rel}: {date}"
        );
        assert!(doc.meta.contains_key("department"), "{rel}");
        assert!(
            doc.segments.len() > 5,
            "{rel}: {} segments",
            doc.segments.len()
        );
        assert!(!doc.text.contains("\\."), "{rel}: escapes left in text");
        assert!(!doc.text.contains("**"), "{rel}: bold marks left in text");
        // Every article heading of the file became a segment's article.
        let raw = std::fs::read_to_string(docs_dir().join(rel)).expect("read");
        let headings = raw.lines().filter(|l| l.starts_with("##### 제")).count();
        let mut articles: Vec<(&Option<String>, &Option<String>)> = doc
            .segments
            .iter()
            .filter(|s| {
                !s.locator
                    .chapter
                    .as_deref()
                    .is_some_and(|c| c.starts_with("부칙"))
            })
            .map(|s| (&s.locator.chapter, &s.locator.article))
            .collect();
        articles.dedup();
        assert_eq!(articles.len(), headings, "{rel}: articles");
    }
}

#[test]
fn known_articles_have_locators() {
    let doc = &parse("statutes/식품위생분야종사자의건강진단규칙.md")[0];
    assert_eq!(doc.title, "식품위생 분야 종사자의 건강진단 규칙");
    assert_eq!(doc.meta["effective_date"], "2024-01-08");
    assert_eq!(doc.meta["law_kind"], "총리령");
    assert_eq!(doc.meta["department"], "식품의약품안전처");
    let passages = chunk_document(doc, ChunkOptions::default());
    let quote = "건강진단은 건강진단의 유효기간 만료일 전후 각각 30일 이내에 실시해야 한다.";
    let hits: Vec<&Passage> = passages.iter().filter(|p| p.text.contains(quote)).collect();
    assert_eq!(hits.len(), 1);
    let p = hits[0];
    assert_eq!(p.locator.article.as_deref(), Some("제2조"));
    assert_eq!(p.locator.article_title.as_deref(), Some("건강진단 항목 등"));
    assert_eq!(p.locator.paragraph.as_deref(), Some("제4항"));
    assert_eq!(
        p.title,
        "식품위생 분야 종사자의 건강진단 규칙 제2조(건강진단 항목 등)"
    );
    assert!(p.text.starts_with("④ 건강진단은"));

    let doc = &parse("statutes/식품위생법.md")[0];
    let seg = doc
        .segments
        .iter()
        .find(|s| s.locator.article.as_deref() == Some("제44조"))
        .expect("제44조");
    assert_eq!(seg.locator.chapter.as_deref(), Some("제7장 영업"));
    assert_eq!(
        seg.locator.article_title.as_deref(),
        Some("영업자 등의 준수사항")
    );
    assert_eq!(seg.locator.paragraph.as_deref(), Some("제1항"));
    assert!(doc.text[seg.range.clone()].starts_with("제44조(영업자 등의 준수사항)\n① "));
    let sub = doc
        .segments
        .iter()
        .find(|s| {
            s.locator
                .chapter
                .as_deref()
                .is_some_and(|c| c.contains("제1절 동업자조합"))
        })
        .expect("절");
    assert_eq!(
        sub.locator.chapter.as_deref(),
        Some("제10장 식품위생단체 등 > 제1절 동업자조합")
    );
}

#[test]
fn safety_letters() {
    let docs = parse("mfds_data/mfds_safety_letters_subset.json");
    assert_eq!(docs.len(), 18);
    let raw = std::fs::read_to_string(docs_dir().join("mfds_data/mfds_safety_letters_subset.json"))
        .expect("read");
    let records: Vec<serde_json::Value> = serde_json::from_str(&raw).expect("json");
    for (doc, record) in docs.iter().zip(&records) {
        assert_eq!(doc.kind, DocKind::SafetyLetter);
        assert_eq!(
            doc.title,
            record["TITLE"].as_str().unwrap_or_default().trim()
        );
        assert_eq!(
            doc.meta["date"],
            record["PBANC_YMD"].as_str().unwrap_or_default()
        );
        assert_eq!(
            doc.meta["letter_no"],
            record["SAFT_LETT_NO"].as_str().unwrap_or_default()
        );
        assert!(doc.meta.contains_key("department"));
        assert!(doc
            .segments
            .iter()
            .all(|s| s.locator.record.as_deref() == Some(doc.title.as_str())));
        // The registering official's name is personal data and stays out of the text.
        let staff = record["RGSTN_ID"].as_str().unwrap_or_default();
        assert!(
            staff.is_empty() || !doc.text.contains(staff),
            "{staff} in text"
        );
    }
}

#[test]
fn passages_are_exact_slices_for_every_corpus_file() {
    let mut files = statute_files();
    files.push("mfds_data/mfds_safety_letters_subset.json".to_owned());
    for rel in &files {
        for doc in parse(rel) {
            for (max_chars, min_chars) in [(800, 100), (300, 0), (120, 60)] {
                let passages = chunk_document(
                    &doc,
                    ChunkOptions {
                        max_chars,
                        min_chars,
                    },
                );
                check_invariants(rel, &doc, &passages, max_chars);
            }
        }
    }
}

#[test]
fn gold_quotes_fall_within_one_passage() {
    let qa = std::fs::read_to_string(shared().join("qa/dev.jsonl")).expect("dev.jsonl");
    let (mut total, mut in_text, mut in_passage) = (0, 0, 0);
    let mut misses = Vec::new();
    for line in qa.lines().filter(|l| !l.trim().is_empty()) {
        let q: serde_json::Value = serde_json::from_str(line).expect("jsonl");
        let (Some(doc), Some(quote)) = (q["gold_doc"].as_str(), q["gold_quote"].as_str()) else {
            continue;
        };
        if !(doc.starts_with("statutes/") || doc.starts_with("mfds_data/")) {
            continue;
        }
        total += 1;
        let quote = normalise(quote);
        let docs = parse(doc);
        if docs.iter().any(|d| normalise(&d.text).contains(&quote)) {
            in_text += 1;
        }
        let found = docs.iter().any(|d| {
            chunk_document(d, ChunkOptions::default())
                .iter()
                .any(|p| normalise(&p.text).contains(&quote))
        });
        if found {
            in_passage += 1;
        } else {
            misses.push(format!("{} {doc}: {quote}", q["id"]));
        }
    }
    println!("gold quotes: {total} statute/JSON, {in_text} in parsed text, {in_passage} within one passage");
    assert!(
        total >= 20,
        "expected the dev set's statute and JSON questions, got {total}"
    );
    assert!(
        misses.is_empty(),
        "quotes not within one passage:\n{}",
        misses.join("\n")
    );
}
