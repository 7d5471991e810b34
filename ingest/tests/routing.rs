//! Format detection: statute Markdown vs other Markdown, statute JSON vs safety letter
//! JSON vs unknown JSON, and the plain extensions.

use anjeon_ingest::{parse_file, parser_for, IngestError};
use std::path::Path;

fn name_for(file: &str, bytes: &[u8]) -> Option<&'static str> {
    parser_for(Path::new(file), bytes).map(|p| p.name())
}

#[test]
fn routes_by_extension_and_shape() {
    let statute_md = "---\n제목: 시험법\n법령구분: 법률\n시행일자: 2024-01-08\n---\n# 시험법\n\n##### 제1조 (목적)\n\n본문.\n";
    assert_eq!(
        name_for("a.md", statute_md.as_bytes()),
        Some("statute-markdown")
    );
    assert_eq!(
        name_for("a.MD", statute_md.as_bytes()),
        Some("statute-markdown")
    );
    assert_eq!(
        name_for("a.md", b"---\ntitle: x\n---\n# A\n"),
        Some("markdown")
    );
    assert_eq!(name_for("a.md", b"# A\n"), Some("markdown"));
    assert_eq!(
        name_for("a.json", "{\"법령\": {}}".as_bytes()),
        Some("statute-law")
    );
    assert_eq!(
        name_for("a.xml", "<?xml version=\"1.0\"?><법령>".as_bytes()),
        Some("statute-law")
    );
    assert_eq!(name_for("a.json", b"[{\"TITLE\": \"x\"}]"), Some("json"));
    assert_eq!(name_for("a.html", b"<html>"), Some("html"));
    assert_eq!(name_for("a.htm", b"<html>"), Some("html"));
    assert_eq!(name_for("a.txt", b"text"), Some("text"));
    assert_eq!(name_for("a.xml", b"<other/>"), None);

    // Statute front matter without articles is still readable, as generic Markdown.
    let docs = parse_file(
        Path::new("a.md"),
        "---\n제목: 시험법\n법령구분: 법률\n---\n# 시험법\n\n안내문.\n".as_bytes(),
    )
    .expect("parses");
    assert_eq!(docs[0].title, "시험법");
    assert_eq!(docs[0].kind, anjeon_ingest::DocKind::Markdown);
}

#[test]
fn unknown_json_says_so() {
    match parse_file(Path::new("x.json"), b"{\"rows\": [1, 2]}") {
        Err(IngestError::Unsupported(msg)) => {
            assert_eq!(
                msg,
                "JSON is neither MFDS safety letters nor a law.go.kr statute"
            )
        }
        other => panic!("{other:?}"),
    }
}
