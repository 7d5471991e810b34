//! MFDS open-data JSON: drug safety letters (의약품 안전성 서한) as a bare array or
//! wrapped as `{"items": [...]}` / data.go.kr `{"response": {"body": {"items": ...}}}`.
//!
//! Each record becomes one document whose text is its labelled sections. The JSON
//! parser also routes law.go.kr statute JSON, so every `.json` file gets a clear answer.

use super::blocks::{file_stem, tidy_lines};
use super::statute::iso_date;
use super::statute_law::{is_statute_value, statute_from_value};
use super::textfile::{decode_text, has_extension, nfc, unescape_entities};
use super::DocumentParser;
use crate::{DocKind, Document, IngestError, Locator, Segment};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

pub struct MfdsJsonParser;

const NOT_KNOWN: &str = "JSON is neither MFDS safety letters nor a law.go.kr statute";

/// Wrapper keys, outermost first, that lead from a data.go.kr response to its records.
const WRAPPERS: &[&str] = &["response", "body", "items", "item", "data"];

/// Sections of a letter in reading order: field and the label its text starts with.
/// `RGSTN_ID` (the registering official's name) is deliberately never used.
const SECTIONS: &[(&str, &str)] = &[
    ("SUMRY_CONT", "요약"),
    ("PBANC_CONT", "내용"),
    ("ACTN_MTTR_CONT", "조치사항"),
];

impl DocumentParser for MfdsJsonParser {
    fn name(&self) -> &'static str {
        "json"
    }

    fn accepts(&self, path: &Path, _head: &[u8]) -> bool {
        has_extension(path, &["json"])
    }

    fn parse(&self, file_name: &str, bytes: &[u8]) -> Result<Vec<Document>, IngestError> {
        let text = decode_text(bytes)?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| IngestError::malformed("JSON", e))?;
        if is_statute_value(&value) {
            return statute_from_value(&value).map(|doc| vec![doc]);
        }
        let records =
            find_records(&value).ok_or_else(|| IngestError::Unsupported(NOT_KNOWN.into()))?;
        if records.is_empty() {
            return Err(IngestError::NoText(format!("{file_name}: no records")));
        }
        if !records.iter().any(|r| is_safety_letter(r)) {
            return Err(IngestError::Unsupported(NOT_KNOWN.into()));
        }
        let fallback = file_stem(file_name);
        let docs: Vec<Document> = records
            .iter()
            .filter(|r| is_safety_letter(r))
            .filter_map(|r| letter_document(r, &fallback))
            .collect();
        if docs.is_empty() {
            return Err(IngestError::NoText(format!(
                "{file_name}: records without text"
            )));
        }
        Ok(docs)
    }
}

/// The record array: the value itself or the first wrapper path that leads to one.
fn find_records(value: &Value) -> Option<Vec<&Value>> {
    let mut current = value;
    // Descending at most once per wrapper name keeps this bounded on odd input.
    for _ in 0..=WRAPPERS.len() {
        match current {
            Value::Array(items) => return Some(items.iter().collect()),
            Value::Object(map) => {
                let next = WRAPPERS.iter().find_map(|k| map.get(*k))?;
                if next.is_object() && is_safety_letter(next) {
                    return Some(vec![next]); // data.go.kr gives a lone item unwrapped
                }
                current = next;
            }
            _ => return None,
        }
    }
    None
}

fn is_safety_letter(record: &Value) -> bool {
    record.get("TITLE").is_some_and(Value::is_string)
        && ["SAFT_LETT_NO", "PBANC_CONT", "SUMRY_CONT"]
            .iter()
            .any(|k| record.get(*k).is_some())
}

fn field<'a>(record: &'a Value, key: &str) -> Option<&'a str> {
    record
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// One letter: a header (title and the facts line), then one labelled section per
/// non-empty field, each a segment located by the letter's title.
fn letter_document(record: &Value, fallback_title: &str) -> Option<Document> {
    let number = field(record, "SAFT_LETT_NO");
    let title = field(record, "TITLE")
        .map(|t| nfc(&unescape_entities(t)).into_owned())
        .or_else(|| number.map(|n| format!("안전성 서한 {n}")))
        .unwrap_or_else(|| fallback_title.to_owned());
    let date = field(record, "PBANC_YMD").map(|d| iso_date(d.get(..10).unwrap_or(d)));
    let department = field(record, "CHRG_DEP");
    let category = field(record, "PBANC_DIVS_NM");

    let facts: Vec<String> = [
        ("구분", category),
        ("공고일", date.as_deref()),
        ("담당부서", department),
    ]
    .iter()
    .filter_map(|(label, v)| v.map(|v| format!("{label}: {v}")))
    .collect();
    let mut sections = vec![if facts.is_empty() {
        title.clone()
    } else {
        format!("{title}\n{}", facts.join(" | "))
    }];
    for (key, label) in SECTIONS {
        if let Some(body) = field(record, key) {
            let body = tidy_lines(&unescape_entities(body));
            sections.push(format!("{label}:\n{body}"));
        }
    }
    if sections.len() == 1 {
        return None; // a title alone is not worth a document
    }

    let locator = Locator {
        record: Some(title.clone()),
        ..Locator::default()
    };
    let mut text = String::new();
    let mut segments = Vec::new();
    for section in sections {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        let start = text.len();
        text.push_str(&nfc(&section));
        segments.push(Segment {
            range: start..text.len(),
            locator: locator.clone(),
        });
    }
    text.push('\n');

    let mut meta = BTreeMap::new();
    let optional = [
        ("date", date.as_deref()),
        ("department", department),
        ("letter_no", number),
        ("category", category),
        ("url", field(record, "ATTACH_FILE_URL")),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            meta.insert(key.to_owned(), v.to_owned());
        }
    }
    Some(Document {
        title,
        kind: DocKind::SafetyLetter,
        text,
        meta,
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &str = r#"{"SAFT_LETT_NO":"9","TITLE":"A 성분 &lt;주의&gt;","PBANC_DIVS_NM":"안전성서한","PBANC_YMD":"2026-05-21","SUMRY_CONT":"요약문","PBANC_CONT":"1. 본문\n\n\n2. 둘째","ACTN_MTTR_CONT":null,"RGSTN_ID":"홍길동","CHRG_DEP":"의약품안전평가과"}"#;

    #[test]
    fn wrappers_and_fields() {
        for json in [
            format!("[{RECORD}]"),
            format!("{{\"items\": [{RECORD}]}}"),
            format!("{{\"response\":{{\"body\":{{\"items\":{{\"item\":[{RECORD}]}}}}}}}}"),
            format!("{{\"body\":{{\"items\":{RECORD}}}}}"),
        ] {
            let docs = MfdsJsonParser.parse("l.json", json.as_bytes()).unwrap();
            assert_eq!(docs.len(), 1, "{json}");
            let doc = &docs[0];
            assert_eq!(doc.title, "A 성분 <주의>");
            assert_eq!(doc.meta["date"], "2026-05-21");
            assert_eq!(doc.meta["department"], "의약품안전평가과");
            assert_eq!(doc.meta["letter_no"], "9");
            assert_eq!(
                doc.text,
                "A 성분 <주의>\n구분: 안전성서한 | 공고일: 2026-05-21 | 담당부서: 의약품안전평가과\n\n요약:\n요약문\n\n내용:\n1. 본문\n\n2. 둘째\n"
            );
            assert!(!doc.text.contains("홍길동"));
            assert_eq!(doc.segments.len(), 3);
            assert_eq!(
                doc.segments[2].locator.record.as_deref(),
                Some("A 성분 <주의>")
            );
        }
    }

    #[test]
    fn unknown_json_is_unsupported() {
        for json in [
            &b"{\"a\": 1}"[..],
            b"[{\"name\": \"x\"}]",
            b"3",
            b"{\"items\": {\"x\": 1}}",
        ] {
            match MfdsJsonParser.parse("x.json", json) {
                Err(IngestError::Unsupported(msg)) => assert_eq!(msg, NOT_KNOWN),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            MfdsJsonParser.parse("x.json", b"[]"),
            Err(IngestError::NoText(_))
        ));
    }

    #[test]
    fn garbage_and_truncation() {
        let json = format!("[{RECORD}]");
        for cut in (0..json.len()).filter(|i| json.is_char_boundary(*i)) {
            let _ = MfdsJsonParser.parse("t.json", &json.as_bytes()[..cut]);
        }
        let deep = "[".repeat(100_000);
        assert!(MfdsJsonParser.parse("d.json", deep.as_bytes()).is_err());
        assert!(MfdsJsonParser
            .parse("b.json", &[0xff, 0xfe, 0x81, 0x00])
            .is_err());
        let odd = r#"[{"TITLE": "t", "PBANC_CONT": 5, "PBANC_YMD": "가나다라마바사아자차카"}]"#;
        assert!(MfdsJsonParser.parse("o.json", odd.as_bytes()).is_err());
    }
}
