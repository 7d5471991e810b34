//! Statutes in the law.go.kr 법령 OpenAPI shape, as XML (`lawService.do?type=XML`) or
//! JSON: `법령 > 기본정보`, `조문 > 조문단위 > 항 > 호 > 목`, `부칙 > 부칙단위`.
//!
//! XML is first turned into the JSON shape law.go.kr serves (repeated elements become
//! arrays, attributes sit beside a `content` text), so one walker feeds both formats to
//! the shared [`StatuteBuilder`].

use super::statute::{
    circled_number, content_line, is_supplement_label, iso_date, supplement_lines, StatuteBuilder,
    StatuteInfo,
};
use super::textfile::{decode_text, has_extension};
use super::DocumentParser;
use crate::{Document, IngestError};
use quick_xml::events::Event;
use serde_json::{Map, Value};
use std::path::Path;

pub struct StatuteLawParser;

const FORMAT: &str = "law.go.kr statute";

/// Deeper XML than this is not a statute; the limit also keeps the value tree shallow
/// enough to drop without deep recursion.
const MAX_XML_DEPTH: usize = 64;

impl DocumentParser for StatuteLawParser {
    fn name(&self) -> &'static str {
        "statute-law"
    }

    fn accepts(&self, path: &Path, head: &[u8]) -> bool {
        let head = String::from_utf8_lossy(head);
        if has_extension(path, &["xml"]) {
            return head.contains("<법령");
        }
        has_extension(path, &["json"]) && is_statute_json_head(&head)
    }

    fn parse(&self, _file_name: &str, bytes: &[u8]) -> Result<Vec<Document>, IngestError> {
        let text = decode_text(bytes)?;
        let trimmed = text.trim_start();
        let value = if trimmed.starts_with('<') {
            xml_to_value(trimmed).map_err(|e| IngestError::malformed(FORMAT, e))?
        } else {
            serde_json::from_str(trimmed).map_err(|e| IngestError::malformed(FORMAT, e))?
        };
        statute_from_value(&value).map(|doc| vec![doc])
    }
}

/// Whether a JSON file opens with the `{"법령": ...}` object. Checked on the head: the
/// key comes first in law.go.kr output, and a quoted `"법령"` followed by a colon can
/// only be a key (quotes inside JSON strings are escaped).
fn is_statute_json_head(head: &str) -> bool {
    let head = head.trim_start();
    head.starts_with('{')
        && head
            .match_indices("\"법령\"")
            .any(|(i, m)| head[i + m.len()..].trim_start().starts_with(':'))
}

/// Whether a parsed JSON value is a law.go.kr statute.
pub(crate) fn is_statute_value(value: &Value) -> bool {
    value.get("법령").is_some_and(Value::is_object)
}

/// Builds the statute document from the law.go.kr JSON shape.
pub(crate) fn statute_from_value(value: &Value) -> Result<Document, IngestError> {
    let law = value
        .get("법령")
        .filter(|v| v.is_object())
        .ok_or_else(|| IngestError::malformed(FORMAT, "no 법령 element"))?;
    let basic = law.get("기본정보").unwrap_or(&Value::Null);
    let title = ["법령명_한글", "법령명한글", "법령명"]
        .iter()
        .map(|k| text_of(basic.get(*k)))
        .find(|t| !t.trim().is_empty())
        .ok_or_else(|| IngestError::malformed(FORMAT, "기본정보 has no 법령명_한글"))?;
    let non_empty = |key: &str| Some(text_of(basic.get(key))).filter(|t| !t.trim().is_empty());
    let mut extra = Vec::new();
    if let Some(id) = non_empty("법령ID") {
        extra.push(("law_id", id.trim().to_owned()));
    }
    let info = StatuteInfo {
        title: title.trim().to_owned(),
        law_kind: non_empty("법종구분").map(|t| t.trim().to_owned()),
        departments: items(basic.get("소관부처"))
            .map(|d| text_of(Some(d)).trim().to_owned())
            .filter(|d| !d.is_empty())
            .collect(),
        promulgation_date: non_empty("공포일자").map(|d| iso_date(&d)),
        effective_date: non_empty("시행일자").map(|d| iso_date(&d)),
        extra,
    };
    let mut builder = StatuteBuilder::new(info);
    let units = law.get("조문").and_then(|j| j.get("조문단위"));
    for unit in items(units) {
        article_unit(&mut builder, unit);
    }
    let supplements: Vec<&Value> = items(law.get("부칙").and_then(|b| b.get("부칙단위"))).collect();
    if !supplements.is_empty() {
        builder.supplement("부칙");
    }
    for unit in supplements {
        let body = text_of(unit.get("부칙내용"));
        let opens_with_label = body
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .is_some_and(is_supplement_label);
        if !opens_with_label {
            builder.supplement(&supplement_label(unit));
        }
        supplement_lines(&mut builder, body.lines());
    }
    builder.finish(FORMAT)
}

/// One `조문단위`: a 장/절 heading (`조문여부` 전문) or an article with its 항/호/목.
fn article_unit(builder: &mut StatuteBuilder, unit: &Value) {
    let content = text_of(unit.get("조문내용"));
    if text_of(unit.get("조문여부")).trim() == "전문" {
        builder.division(content.trim());
        return;
    }
    let number = text_of(unit.get("조문번호"));
    let branch = text_of(unit.get("조문가지번호"));
    let mut article = format!("제{}조", number.trim());
    if !matches!(branch.trim(), "" | "0") {
        article.push_str(&format!("의{}", branch.trim()));
    }
    let title = text_of(unit.get("조문제목"));
    let title = Some(title.trim()).filter(|t| !t.is_empty());
    builder.article(&article, title);
    // 조문내용 repeats the heading, then holds the text of articles without 항.
    for line in strip_heading(content.trim(), &article, title).lines() {
        content_line(builder, 0, line);
    }
    for paragraph in items(unit.get("항")) {
        let body = text_of(paragraph.get("항내용"));
        let mut lines = body.lines().map(str::trim).filter(|l| !l.is_empty());
        if let Some(first) = lines.next() {
            let number = text_of(paragraph.get("항번호"));
            let label = number
                .trim()
                .chars()
                .next()
                .filter(|c| circled_number(*c).is_some());
            match label {
                // Some exports put the circled number only in 항번호.
                Some(l) if !first.starts_with(l) => builder.paragraph(l, &format!("{l} {first}")),
                _ => content_line(builder, 0, first),
            }
        }
        for line in lines {
            builder.line(0, line);
        }
        for item in items(paragraph.get("호")) {
            nested_lines(builder, 1, &text_of(item.get("호내용")));
            for sub in items(item.get("목")) {
                nested_lines(builder, 2, &text_of(sub.get("목내용")));
            }
        }
    }
}

/// A 호 or 목 text: its first line at `depth`, continuation lines one deeper.
fn nested_lines(builder: &mut StatuteBuilder, depth: usize, text: &str) {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if let Some(first) = lines.next() {
        builder.line(depth, first);
    }
    for line in lines {
        builder.line(depth + 1, line);
    }
}

/// `제44조(제목) 본문` → `본문`.
fn strip_heading<'a>(content: &'a str, article: &str, title: Option<&str>) -> &'a str {
    let Some(rest) = content.strip_prefix(article) else {
        return content;
    };
    let rest = rest.trim_start();
    let rest = match title {
        Some(t) => rest
            .strip_prefix('(')
            .and_then(|r| r.strip_prefix(t))
            .and_then(|r| r.strip_prefix(')'))
            .unwrap_or(rest),
        None => rest,
    };
    rest.trim_start()
}

/// `부칙 <제1919호,2023.12.7>` from 부칙공포번호/부칙공포일자, for bodies that lack it.
fn supplement_label(unit: &Value) -> String {
    let number = text_of(unit.get("부칙공포번호"));
    let date = text_of(unit.get("부칙공포일자"));
    let date = iso_date(&date);
    let dotted = date
        .split('-')
        .map(|p| p.trim_start_matches('0'))
        .collect::<Vec<_>>()
        .join(".");
    match (number.trim(), dotted.as_str()) {
        ("", "") => "부칙".to_owned(),
        ("", d) => format!("부칙 <{d}>"),
        (n, "") => format!("부칙 <제{}호>", n.trim_start_matches('0')),
        (n, d) => format!("부칙 <제{}호,{d}>", n.trim_start_matches('0')),
    }
}

/// The items of a value that law.go.kr gives as one object or an array of them.
fn items(value: Option<&Value>) -> impl Iterator<Item = &Value> {
    let slice: &[Value] = match value {
        Some(Value::Array(a)) => a,
        Some(v @ (Value::Object(_) | Value::String(_))) => std::slice::from_ref(v),
        _ => &[],
    };
    slice.iter()
}

/// The text of a field: strings as they are, arrays (law.go.kr nests 부칙내용 as arrays
/// of lines) joined by newlines, and `{"content": ...}` objects by their content.
fn text_of(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| text_of(Some(v)))
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
        Some(Value::Object(o)) => text_of(o.get("content")),
        _ => String::new(),
    }
}

/// One open element while converting XML.
struct XmlNode {
    name: String,
    fields: Map<String, Value>,
    text: String,
}

impl XmlNode {
    /// Text-only elements become strings; elements with children or attributes become
    /// objects, their non-blank text under `content` (as in law.go.kr's JSON).
    fn into_value(self) -> Value {
        if self.fields.is_empty() {
            return Value::String(self.text);
        }
        let mut fields = self.fields;
        if !self.text.trim().is_empty() {
            fields.insert("content".to_owned(), Value::String(self.text));
        }
        Value::Object(fields)
    }
}

fn add_child(fields: &mut Map<String, Value>, name: String, value: Value) {
    match fields.get_mut(&name) {
        Some(Value::Array(existing)) => existing.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            fields.insert(name, value);
        }
    }
}

/// Converts an XML document to `{root: value}` in the law.go.kr JSON shape.
pub(crate) fn xml_to_value(xml: &str) -> Result<Value, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<XmlNode> = Vec::new();
    let mut root = Map::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("XML error at byte {}: {e}", reader.error_position()))?;
        match event {
            Event::Start(e) => {
                if stack.len() >= MAX_XML_DEPTH {
                    return Err(format!("XML nested deeper than {MAX_XML_DEPTH} elements"));
                }
                stack.push(open_node(&e)?);
            }
            Event::Empty(e) => {
                let node = open_node(&e)?;
                close_node(&mut stack, &mut root, node);
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("unexpected closing tag")?;
                close_node(&mut stack, &mut root, node);
            }
            Event::Text(t) => {
                if let Some(node) = stack.last_mut() {
                    node.text
                        .push_str(&t.xml_content().map_err(|e| e.to_string())?);
                }
            }
            Event::CData(t) => {
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&t.decode().map_err(|e| e.to_string())?);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(node) = stack.last_mut() {
                    let name = r.decode().map_err(|e| e.to_string())?;
                    if let Some(ch) = r.resolve_char_ref().map_err(|e| e.to_string())? {
                        node.text.push(ch);
                    } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&name) {
                        node.text.push_str(s);
                    } else {
                        return Err(format!("unknown entity &{name};"));
                    }
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err("truncated XML: elements left open".to_owned());
    }
    if root.is_empty() {
        return Err("no XML element".to_owned());
    }
    Ok(Value::Object(root))
}

fn open_node(e: &quick_xml::events::BytesStart<'_>) -> Result<XmlNode, String> {
    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
    let mut fields = Map::new();
    for attr in e.attributes() {
        let attr = attr.map_err(|e| e.to_string())?;
        let key = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
        let value = attr.unescape_value().map_err(|e| e.to_string())?;
        fields.insert(key, Value::String(value.into_owned()));
    }
    Ok(XmlNode {
        name,
        fields,
        text: String::new(),
    })
}

fn close_node(stack: &mut [XmlNode], root: &mut Map<String, Value>, node: XmlNode) {
    let name = node.name.clone();
    let value = node.into_value();
    match stack.last_mut() {
        Some(parent) => add_child(&mut parent.fields, name, value),
        None => add_child(root, name, value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_shape_matches_law_go_kr_json() {
        let v = xml_to_value(
            "<?xml version=\"1.0\"?><법령 법령키=\"1\"><기본정보><법종구분 법종구분코드=\"A\">법률</법종구분></기본정보>\
             <조문><조문단위><조문번호>1</조문번호></조문단위><조문단위><조문번호>2</조문번호><조문내용><![CDATA[a<b]]> &amp; &#51228;</조문내용></조문단위></조문></법령>",
        )
        .unwrap();
        assert_eq!(v["법령"]["법령키"], "1");
        assert_eq!(v["법령"]["기본정보"]["법종구분"]["content"], "법률");
        assert_eq!(v["법령"]["조문"]["조문단위"][1]["조문번호"], "2");
        assert_eq!(v["법령"]["조문"]["조문단위"][1]["조문내용"], "a<b & 제");
    }

    #[test]
    fn json_head_detection() {
        assert!(is_statute_json_head("{ \"법령\" : {"));
        assert!(!is_statute_json_head(
            "[{\"TITLE\": \"법령 \\\"법령\\\": 개정\"}]"
        ));
        assert!(!is_statute_json_head("{\"items\": []}"));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let good = "<법령><기본정보><법령명_한글>시험법</법령명_한글></기본정보><조문><조문단위><조문번호>1</조문번호><조문여부>조문</조문여부><조문제목>목적</조문제목><조문내용>제1조(목적) 본문</조문내용></조문단위></조문></법령>";
        assert!(StatuteLawParser.parse("a.xml", good.as_bytes()).is_ok());
        for cut in (0..good.len()).filter(|i| good.is_char_boundary(*i)) {
            let _ = StatuteLawParser.parse("a.xml", &good.as_bytes()[..cut]);
        }
        let deep = "<a>".repeat(10_000);
        assert!(StatuteLawParser.parse("a.xml", deep.as_bytes()).is_err());
        for bad in [
            &b"<\xff\xfe"[..],
            b"<a></b>",
            b"<a>&bogus;</a>",
            b"{\"\xeb\xb2\x95\xeb\xa0\xb9\": 3}",
            b"{\"\xeb\xb2\x95\xeb\xa0\xb9\": {\"\xec\xa1\xb0\xeb\xac\xb8\": 7}}",
            b"[",
        ] {
            assert!(StatuteLawParser.parse("a.json", bad).is_err(), "{bad:?}");
        }
    }
}
