//! The prompt template language of task files: `{name}` and `{name|trim}` substitute a
//! value, `{#name}…{/name}` keeps its body when the value is non-empty, `{^name}…{/name}` when empty.
//!
//! `{{` and `}}` stand for literal braces. Names are looked up by the caller, so the same
//! language serves prompts (document fields, `a.b.0` paths, `@options`) and choices (`label`, `text`).

use std::fmt;

/// A parsed template; parsing once at load time reports syntax errors before any data is read.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Value {
        name: String,
        trim: bool,
    },
    Section {
        name: String,
        when_empty: bool,
        body: Vec<Node>,
    },
}

/// What a name resolves to when rendering.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The name does not exist: an error in `{name}`, empty in a section.
    Missing,
    Text(String),
}

/// Why a template could not be parsed or rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parser = Parser {
            chars: source.chars().collect(),
            pos: 0,
        };
        let (nodes, closing) = parser.nodes()?;
        if let Some(name) = closing {
            return Err(TemplateError(format!(
                "`{{/{name}}}` closes no open section"
            )));
        }
        Ok(Template { nodes })
    }

    /// Renders with `lookup` resolving names; a `{name}` that is missing is an error.
    pub fn render(
        &self,
        lookup: &dyn Fn(&str) -> Result<Lookup, TemplateError>,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        render_nodes(&self.nodes, lookup, &mut out)?;
        Ok(out)
    }

    /// Whether the template mentions `name` anywhere (as a value or a section).
    pub fn mentions(&self, name: &str) -> bool {
        fn walk(nodes: &[Node], name: &str) -> bool {
            nodes.iter().any(|n| match n {
                Node::Text(_) => false,
                Node::Value { name: n, .. } => n == name,
                Node::Section { name: n, body, .. } => n == name || walk(body, name),
            })
        }
        walk(&self.nodes, name)
    }
}

fn render_nodes(
    nodes: &[Node],
    lookup: &dyn Fn(&str) -> Result<Lookup, TemplateError>,
    out: &mut String,
) -> Result<(), TemplateError> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Value { name, trim } => match lookup(name)? {
                Lookup::Missing => return Err(TemplateError(format!("no value for `{name}`"))),
                Lookup::Text(t) if *trim => out.push_str(t.trim()),
                Lookup::Text(t) => out.push_str(&t),
            },
            Node::Section {
                name,
                when_empty,
                body,
            } => {
                let empty = match lookup(name)? {
                    Lookup::Missing => true,
                    Lookup::Text(t) => t.is_empty(),
                };
                if empty == *when_empty {
                    render_nodes(body, lookup, out)?;
                }
            }
        }
    }
    Ok(())
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    /// Nodes up to the end or up to a `{/name}`, whose name is returned.
    fn nodes(&mut self) -> Result<(Vec<Node>, Option<String>), TemplateError> {
        let mut nodes = Vec::new();
        let mut text = String::new();
        while let Some(&c) = self.chars.get(self.pos) {
            let next = self.chars.get(self.pos + 1).copied();
            match (c, next) {
                ('{', Some('{')) | ('}', Some('}')) => {
                    text.push(c);
                    self.pos += 2;
                }
                ('}', _) => {
                    return Err(TemplateError(format!(
                        "unmatched `}}` at character {} (write `}}}}` for a literal brace)",
                        self.pos
                    )))
                }
                ('{', _) => {
                    let tag = self.tag()?;
                    if !text.is_empty() {
                        nodes.push(Node::Text(std::mem::take(&mut text)));
                    }
                    if let Some(name) = tag.strip_prefix('/') {
                        return Ok((nodes, Some(name.to_string())));
                    }
                    nodes.push(self.node(&tag)?);
                }
                _ => {
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
        if !text.is_empty() {
            nodes.push(Node::Text(text));
        }
        Ok((nodes, None))
    }

    /// The text between `{` at `pos` and the next `}`; `pos` ends after the `}`.
    fn tag(&mut self) -> Result<String, TemplateError> {
        let start = self.pos;
        let rest = &self.chars[start + 1..];
        let Some(len) = rest.iter().position(|&c| c == '}') else {
            return Err(TemplateError(format!(
                "`{{` at character {start} is never closed (write `{{{{` for a literal brace)"
            )));
        };
        let tag: String = rest[..len].iter().collect();
        if tag.contains('{') {
            return Err(TemplateError(format!(
                "`{{` inside a tag at character {start}"
            )));
        }
        self.pos = start + len + 2;
        Ok(tag)
    }

    fn node(&mut self, tag: &str) -> Result<Node, TemplateError> {
        let section = match tag.chars().next() {
            Some('#') => Some(false),
            Some('^') => Some(true),
            _ => None,
        };
        if let Some(when_empty) = section {
            let name = checked_name(&tag[1..])?;
            let (body, closing) = self.nodes()?;
            return match closing {
                Some(c) if c == name => Ok(Node::Section {
                    name,
                    when_empty,
                    body,
                }),
                Some(c) => Err(TemplateError(format!(
                    "section `{name}` is closed by `{{/{c}}}`"
                ))),
                None => Err(TemplateError(format!("section `{name}` is never closed"))),
            };
        }
        let (name, filter) = match tag.split_once('|') {
            Some((n, f)) => (n, Some(f.trim())),
            None => (tag, None),
        };
        let trim = match filter {
            None => false,
            Some("trim") => true,
            Some(other) => {
                return Err(TemplateError(format!(
                    "unknown filter `{other}` (only `trim` exists)"
                )))
            }
        };
        Ok(Node::Value {
            name: checked_name(name)?,
            trim,
        })
    }
}

fn checked_name(name: &str) -> Result<String, TemplateError> {
    if name.is_empty() || name.trim() != name {
        return Err(TemplateError(format!("bad name `{name}` in a tag")));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, pairs: &[(&str, &str)]) -> Result<String, TemplateError> {
        let t = Template::parse(template)?;
        t.render(&|name| {
            Ok(pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map_or(Lookup::Missing, |(_, v)| Lookup::Text(v.to_string())))
        })
    }

    #[test]
    fn substitutes_trims_and_escapes() {
        let out = render(
            "{q|trim}\n{{{a}}} 정답：",
            &[("q", "  질문 "), ("a", "x, y")],
        );
        assert_eq!(out, Ok("질문\n{x, y} 정답：".to_string()));
    }

    #[test]
    fn sections_follow_emptiness() {
        let t = "{#ctx}맥락: {ctx}\n{/ctx}{^ctx}(없음){/ctx}질문";
        assert_eq!(render(t, &[("ctx", "a")]), Ok("맥락: a\n질문".into()));
        assert_eq!(render(t, &[("ctx", "")]), Ok("(없음)질문".into()));
        assert_eq!(render(t, &[]), Ok("(없음)질문".into()));
    }

    #[test]
    fn missing_value_is_an_error() {
        assert!(render("{nope}", &[]).is_err());
    }

    #[test]
    fn syntax_errors_are_caught_at_parse() {
        for bad in [
            "{a",
            "a}",
            "{#a}x",
            "{#a}x{/b}",
            "{/a}",
            "{a|upper}",
            "{}",
            "{ a}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn mentions_finds_nested_names() {
        let t = Template::parse("{#a}{b}{/a}").unwrap();
        assert!(t.mentions("a") && t.mentions("b") && !t.mentions("c"));
    }
}
