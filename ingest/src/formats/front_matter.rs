//! A small, strict parser for the YAML subset used in Markdown front matter: block maps,
//! block lists (of scalars or maps), and plain or quoted scalars.
//!
//! Anything outside that subset (block scalars, anchors, flow collections with content)
//! is an error rather than a guess, so a surprising file is reported instead of misread.

/// A parsed YAML value. Scalars stay strings: dates such as `2023-12-07` and codes such
/// as `'011797'` must keep their exact spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Yaml {
    Scalar(String),
    List(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Yaml::Scalar(s) => Some(s),
            _ => None,
        }
    }
}

/// The top-level map of a front matter block, in file order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct FrontMatter {
    pub entries: Vec<(String, Yaml)>,
}

impl FrontMatter {
    pub(crate) fn get(&self, key: &str) -> Option<&Yaml> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A non-empty scalar value.
    pub(crate) fn str(&self, key: &str) -> Option<&str> {
        self.get(key)
            .and_then(Yaml::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// The scalar items of a list value; a lone scalar counts as a one-item list.
    pub(crate) fn strings(&self, key: &str) -> Vec<&str> {
        match self.get(key) {
            Some(Yaml::Scalar(s)) if !s.trim().is_empty() => vec![s.trim()],
            Some(Yaml::List(items)) => items
                .iter()
                .filter_map(Yaml::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Splits `---\n<yaml>\n---\n<body>` into the YAML and the body. `None` when the text
/// does not open with a front matter fence or the closing fence is missing.
pub(crate) fn split_front_matter(text: &str) -> Option<(&str, &str)> {
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))?;
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare == "---" || bare == "..." {
            return Some((&rest[..offset], &rest[offset + line.len()..]));
        }
        offset += line.len();
    }
    None
}

/// Parses the YAML of a front matter block.
pub(crate) fn parse_front_matter(yaml: &str) -> Result<FrontMatter, String> {
    let mut lines = Vec::new();
    for (number, raw) in yaml.lines().enumerate() {
        let line = raw.trim_end();
        let content = line.trim_start_matches(' ');
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if content.starts_with('\t') {
            return Err(format!("line {}: tab indentation", number + 1));
        }
        lines.push(Line {
            number: number + 1,
            indent: line.len() - content.len(),
            content,
        });
    }
    let mut parser = Parser { lines, pos: 0 };
    if parser.lines.is_empty() {
        return Ok(FrontMatter::default());
    }
    let entries = parser.map(0)?;
    if let Some(line) = parser.lines.get(parser.pos) {
        return Err(format!("line {}: unexpected indentation", line.number));
    }
    Ok(FrontMatter { entries })
}

struct Line<'a> {
    number: usize,
    indent: usize,
    content: &'a str,
}

struct Parser<'a> {
    lines: Vec<Line<'a>>,
    pos: usize,
}

impl<'a> Parser<'a> {
    /// A block map whose keys sit at `indent`.
    fn map(&mut self, indent: usize) -> Result<Vec<(String, Yaml)>, String> {
        let mut entries = Vec::new();
        while let Some(line) = self.lines.get(self.pos) {
            if line.indent < indent {
                break;
            }
            if line.indent > indent {
                return Err(format!("line {}: unexpected indentation", line.number));
            }
            if line.content.starts_with("- ") || line.content == "-" {
                break;
            }
            let (number, content) = (line.number, line.content);
            self.pos += 1;
            let (key, value) = split_key(content)
                .ok_or_else(|| format!("line {number}: expected `key: value`"))?;
            let value = match value {
                Some(v) => scalar(v).map_err(|e| format!("line {number}: {e}"))?,
                None => self.nested(indent)?,
            };
            entries.push((key, value));
        }
        Ok(entries)
    }

    /// The value of a `key:` with nothing after the colon: an indented block, a list at
    /// the key's own indentation (a common YAML style), or an empty scalar.
    fn nested(&mut self, parent_indent: usize) -> Result<Yaml, String> {
        match self.lines.get(self.pos) {
            Some(next) if next.indent > parent_indent => {
                let indent = next.indent;
                if is_item(next.content) {
                    self.list(indent)
                } else {
                    self.map(indent).map(Yaml::Map)
                }
            }
            Some(next) if next.indent == parent_indent && is_item(next.content) => {
                self.list(parent_indent)
            }
            _ => Ok(Yaml::Scalar(String::new())),
        }
    }

    /// A block list whose `- ` markers sit at `indent`.
    fn list(&mut self, indent: usize) -> Result<Yaml, String> {
        let mut items = Vec::new();
        while let Some(line) = self.lines.get(self.pos) {
            if line.indent != indent || !is_item(line.content) {
                if line.indent > indent {
                    return Err(format!("line {}: unexpected indentation", line.number));
                }
                break;
            }
            let number = line.number;
            let item = line.content.strip_prefix('-').unwrap_or_default();
            let item_indent = indent + 1 + (item.len() - item.trim_start().len());
            let item = item.trim_start();
            self.pos += 1;
            if item.is_empty() {
                items.push(self.nested(indent)?);
                continue;
            }
            let starts_quoted = item.starts_with(['\'', '"']);
            match split_key(item).filter(|_| !starts_quoted) {
                // `- key: value` opens a map whose further keys align with `key`.
                Some((key, value)) => {
                    let first = match value {
                        Some(v) => scalar(v).map_err(|e| format!("line {number}: {e}"))?,
                        None => self.nested(item_indent)?,
                    };
                    let mut entries = vec![(key, first)];
                    entries.extend(self.map(item_indent)?);
                    items.push(Yaml::Map(entries));
                }
                None => items.push(scalar(item).map_err(|e| format!("line {number}: {e}"))?),
            }
        }
        Ok(Yaml::List(items))
    }
}

fn is_item(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// `key: value` → (key, Some(value)); `key:` → (key, None). Keys may be quoted.
fn split_key(content: &str) -> Option<(String, Option<&str>)> {
    let (key, rest) =
        if let Some(quote) = content.chars().next().filter(|c| *c == '\'' || *c == '"') {
            let end = content[1..].find(quote)? + 1;
            (
                content[1..end].to_owned(),
                content[end + 1..].strip_prefix(':')?,
            )
        } else {
            let colon = content
                .match_indices(':')
                .map(|(i, _)| i)
                .find(|&i| content[i + 1..].is_empty() || content[i + 1..].starts_with(' '))?;
            (
                content[..colon].trim_end().to_owned(),
                &content[colon + 1..],
            )
        };
    if key.is_empty() {
        return None;
    }
    let value = rest.trim();
    Some((key, (!value.is_empty()).then_some(value)))
}

fn scalar(raw: &str) -> Result<Yaml, String> {
    let raw = raw.trim();
    if let Some(inner) = raw.strip_prefix('\'') {
        let inner = inner
            .strip_suffix('\'')
            .ok_or("unterminated single-quoted string")?;
        return Ok(Yaml::Scalar(inner.replace("''", "'")));
    }
    if let Some(inner) = raw.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or("unterminated double-quoted string")?;
        return unescape_double(inner).map(Yaml::Scalar);
    }
    match raw {
        "[]" => return Ok(Yaml::List(Vec::new())),
        "{}" => return Ok(Yaml::Map(Vec::new())),
        "~" | "null" => return Ok(Yaml::Scalar(String::new())),
        _ => {}
    }
    if raw.starts_with(['|', '>', '&', '*', '[', '{', '!', '%', '@', '`']) {
        return Err(format!("unsupported YAML value `{raw}`"));
    }
    // A plain scalar ends at a ` #` comment.
    let plain = raw.find(" #").map_or(raw, |i| raw[..i].trim_end());
    Ok(Yaml::Scalar(plain.to_owned()))
}

fn unescape_double(inner: &str) -> Result<String, String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('/') => out.push('/'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let ch = u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("bad escape \\u{hex}"))?;
                out.push(ch);
            }
            other => return Err(format!("unsupported escape \\{}", other.unwrap_or(' '))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "제목: 식품위생 분야 종사자의 건강진단 규칙\n법령ID: '011797'\n법령구분코드: ''\n소관부처:\n- 식품의약품안전처\n공포일자: 2023-12-07\n출처: https://www.law.go.kr/법령/식품위생법\n첨부파일:\n- 별표번호: '0000'\n  별표구분: 별표\n  제목: 삭제 &lt;2023. 12. 7.&gt;\n- 별표번호: '0001'\n  제목: \"서식 \\\"1\\\"\"\n태그: []\n";

    #[test]
    fn parses_the_statute_subset() {
        let fm = parse_front_matter(SAMPLE).unwrap();
        assert_eq!(fm.str("제목"), Some("식품위생 분야 종사자의 건강진단 규칙"));
        assert_eq!(fm.str("법령ID"), Some("011797"));
        assert_eq!(fm.str("법령구분코드"), None);
        assert_eq!(fm.strings("소관부처"), vec!["식품의약품안전처"]);
        assert_eq!(fm.str("공포일자"), Some("2023-12-07"));
        assert_eq!(
            fm.str("출처"),
            Some("https://www.law.go.kr/법령/식품위생법")
        );
        let Some(Yaml::List(files)) = fm.get("첨부파일") else {
            panic!("첨부파일 is not a list");
        };
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[1],
            Yaml::Map(vec![
                ("별표번호".into(), Yaml::Scalar("0001".into())),
                ("제목".into(), Yaml::Scalar("서식 \"1\"".into())),
            ])
        );
        assert_eq!(fm.get("태그"), Some(&Yaml::List(vec![])));
    }

    #[test]
    fn indented_lists_and_nested_maps() {
        let fm = parse_front_matter("a:\n  - x\n  - y\nb:\n  c: 1\n  d:\n    - z\n").unwrap();
        assert_eq!(fm.strings("a"), vec!["x", "y"]);
        assert_eq!(
            fm.get("b"),
            Some(&Yaml::Map(vec![
                ("c".into(), Yaml::Scalar("1".into())),
                ("d".into(), Yaml::List(vec![Yaml::Scalar("z".into())])),
            ]))
        );
    }

    #[test]
    fn rejects_what_it_does_not_understand() {
        for bad in [
            "a: |\n  text\n",
            "a: 'open\n",
            "  a: 1\nb: 2\n",
            "a: 1\n   b: 2\n",
            "just text\n",
            "a: [1, 2]\n",
            "- 1\n",
        ] {
            assert!(parse_front_matter(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn splits_fences() {
        assert_eq!(
            split_front_matter("---\na: 1\n---\n# T\n"),
            Some(("a: 1\n", "# T\n"))
        );
        assert_eq!(split_front_matter("---\na: 1\n"), None);
        assert_eq!(split_front_matter("# T\n"), None);
    }
}
