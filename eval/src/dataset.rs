//! Benchmark data on disk turned into documents: JSON Lines, JSON arrays, CSV and TSV
//! files (also inside `.tar.gz` archives), with column renames, derived fields, options and gold.
//!
//! A [`SourceSpec`] is the `[data]` (or `[fewshot.data]`) table of a task file; [`load`]
//! reads it relative to the user's data root and returns one [`Doc`] per record.

use crate::error::{EvalError, Result};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// One record of a data file with its answer sets, ready for prompting.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub id: String,
    /// Position of the record in its source (before any choice permutation).
    pub source_index: usize,
    /// The record's fields after renames and derivations.
    pub fields: Map<String, Value>,
    /// Answer sets, the main one (named [`MAIN`]) first when the task has one.
    pub answers: Vec<AnswerSet>,
}

/// Name of the answer set that `options` and `gold` in a source table define.
pub const MAIN: &str = "main";

/// The options of one question and which of them are correct.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerSet {
    pub name: String,
    pub options: Vec<String>,
    pub correct: Vec<bool>,
}

impl AnswerSet {
    /// The single correct option, if exactly one is correct.
    pub fn gold(&self) -> Option<usize> {
        let mut golds = self.correct.iter().enumerate().filter(|(_, c)| **c);
        match (golds.next(), golds.next()) {
            (Some((i, _)), None) => Some(i),
            _ => None,
        }
    }
}

impl Doc {
    pub fn answer_set(&self, name: &str) -> Option<&AnswerSet> {
        self.answers.iter().find(|a| a.name == name)
    }

    /// A field by name or by a dotted path (`mc1_targets.choices`, `choices.0`), as text.
    /// Arrays and objects are not text; `null` is the empty string.
    pub fn text(&self, path: &str) -> std::result::Result<Option<String>, String> {
        match lookup_path(&self.fields, path) {
            None => Ok(None),
            Some(v) => scalar_text(v)
                .map(Some)
                .ok_or_else(|| format!("field `{path}` is a list or table, not text")),
        }
    }
}

/// Where a task's documents come from and how to read their answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// File(s) relative to the data root, or to the archive when `archive` is set.
    pub path: OneOrMany,
    /// A `.tar.gz` file relative to the data root that holds `path`.
    #[serde(default)]
    pub archive: Option<String>,
    /// `jsonl`, `json`, `csv` or `tsv`; taken from the file extension when absent.
    #[serde(default)]
    pub format: Option<Format>,
    /// The split these records are (`test`, `validation`, …); recorded, not interpreted.
    pub split: String,
    /// Field holding a record's id; records without it get `<split>-<row>`.
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// Renames: our field name = the source's column name (the column is kept too).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// The main answer set's options.
    #[serde(default)]
    pub options: Option<OptionsSpec>,
    /// The main answer set's single correct option.
    #[serde(default)]
    pub gold: Option<GoldSpec>,
    /// Further named answer sets (TruthfulQA's `mc1` and `mc2`).
    #[serde(default)]
    pub answers: BTreeMap<String, AnswerSpec>,
}

fn default_id_field() -> String {
    "id".to_string()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn paths(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(p) => vec![p.as_str()],
            OneOrMany::Many(ps) => ps.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jsonl,
    Json,
    Csv,
    Tsv,
}

/// Where the option texts of an answer set are.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptionsSpec {
    /// A field holding a list of strings.
    Field(String),
    /// Several fields, one option each.
    Fields(Vec<String>),
    /// The same options for every record (verbalizers such as 아니오/예).
    Fixed(Vec<String>),
}

/// Where the single correct option is and how it is written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldSpec {
    pub field: String,
    #[serde(default)]
    pub kind: GoldKind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GoldKind {
    /// A 0-based index (number or numeric text).
    #[default]
    Index,
    /// A 1-based index.
    Index1,
    /// `true`/`false` in any case: option 1 when true, option 0 when false.
    Bool,
    /// The text of the correct option.
    Text,
    /// A letter `A`, `b`, `(C)`: its position in the alphabet.
    Letter,
}

/// A named answer set: options plus either a gold index or a 0/1 label per option.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerSpec {
    pub options: OptionsSpec,
    #[serde(default)]
    pub gold: Option<GoldSpec>,
    /// A field holding one 0/1 (or false/true) label per option.
    #[serde(default)]
    pub labels: Option<String>,
}

/// A field computed from another: looked up in a table, or with text replaced.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeriveSpec {
    pub from: String,
    #[serde(default)]
    pub map: Option<BTreeMap<String, String>>,
    /// `[pattern, replacement]`, applied to every occurrence.
    #[serde(default)]
    pub replace: Option<(String, String)>,
}

/// A file a task read, with its checksum for the results' provenance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct DataFile {
    pub path: String,
    pub sha256: String,
}

impl SourceSpec {
    /// Checks what can be checked without data: an answer set exists and is well formed.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match (&self.options, &self.gold) {
            (Some(_), Some(_)) | (None, None) => {}
            (Some(_), None) => return Err("`options` needs a `gold`".into()),
            (None, Some(_)) => return Err("`gold` needs `options`".into()),
        }
        if self.options.is_none() && self.answers.is_empty() {
            return Err("no answers: give `options` and `gold`, or `[….answers.NAME]`".into());
        }
        if self.answers.contains_key(MAIN) && self.options.is_some() {
            return Err(format!("answer set `{MAIN}` is defined twice"));
        }
        for (name, a) in &self.answers {
            if a.gold.is_some() == a.labels.is_some() {
                return Err(format!(
                    "answer set `{name}` needs exactly one of `gold` and `labels`"
                ));
            }
        }
        for path in self.path.paths() {
            self.format_of(path)?;
        }
        Ok(())
    }

    fn format_of(&self, path: &str) -> std::result::Result<Format, String> {
        if let Some(f) = self.format {
            return Ok(f);
        }
        let ext = path.rsplit('.').next().unwrap_or_default();
        match ext.to_ascii_lowercase().as_str() {
            "jsonl" => Ok(Format::Jsonl),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "tsv" => Ok(Format::Tsv),
            _ => Err(format!(
                "cannot tell the format of {path:?}: set `format` (jsonl, json, csv, tsv)"
            )),
        }
    }
}

/// Reads every file of `spec` under `root` into documents, in file and record order.
pub fn load(
    root: &Path,
    spec: &SourceSpec,
    derive: &BTreeMap<String, DeriveSpec>,
) -> Result<(Vec<Doc>, Vec<DataFile>)> {
    let mut docs = Vec::new();
    let mut files = Vec::new();
    let archive = match &spec.archive {
        Some(a) => {
            let path = root.join(a);
            let bytes = std::fs::read(&path).map_err(|e| EvalError::io(&path, e))?;
            files.push(DataFile {
                path: a.clone(),
                sha256: hex::encode(Sha256::digest(&bytes)),
            });
            Some((path, bytes))
        }
        None => None,
    };
    for rel in spec.path.paths() {
        let (shown, bytes) = match &archive {
            Some((apath, abytes)) => (apath.join(rel), archive_member(apath, abytes, rel)?),
            None => {
                let path = root.join(rel);
                let bytes = std::fs::read(&path).map_err(|e| EvalError::io(&path, e))?;
                files.push(DataFile {
                    path: rel.to_string(),
                    sha256: hex::encode(Sha256::digest(&bytes)),
                });
                (path, bytes)
            }
        };
        let format = spec
            .format_of(rel)
            .map_err(|e| EvalError::data(&shown, e))?;
        let records = parse_records(&shown, &bytes, format)?;
        for (row, mut record) in records.into_iter().enumerate() {
            let doc = normalize(spec, derive, &mut record, docs.len(), row)
                .map_err(|e| EvalError::data(&shown, format!("record {}: {e}", row + 1)))?;
            docs.push(doc);
        }
    }
    Ok((docs, files))
}

fn archive_member(archive: &Path, bytes: &[u8], member: &str) -> Result<Vec<u8>> {
    let gz = flate2::read::GzDecoder::new(bytes);
    let mut tar = tar::Archive::new(gz);
    let entries = tar.entries().map_err(|e| EvalError::io(archive, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| EvalError::io(archive, e))?;
        let name = entry.path().map_err(|e| EvalError::io(archive, e))?;
        if name.as_ref() == Path::new(member) {
            let mut out = Vec::new();
            entry
                .read_to_end(&mut out)
                .map_err(|e| EvalError::io(archive, e))?;
            return Ok(out);
        }
    }
    Err(EvalError::data(archive, format!("no member {member:?}")))
}

fn parse_records(path: &Path, bytes: &[u8], format: Format) -> Result<Vec<Map<String, Value>>> {
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| EvalError::data(path, e))?;
    match format {
        Format::Jsonl => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, line)| {
                serde_json::from_str(line)
                    .map_err(|e| EvalError::data(path, format!("line {}: {e}", i + 1)))
            })
            .collect(),
        Format::Json => serde_json::from_str::<Vec<Map<String, Value>>>(text)
            .map_err(|e| EvalError::data(path, format!("expected a JSON array of objects: {e}"))),
        Format::Csv | Format::Tsv => {
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(if format == Format::Tsv { b'\t' } else { b',' })
                .from_reader(text.as_bytes());
            let headers = reader
                .headers()
                .map_err(|e| EvalError::data(path, e))?
                .clone();
            reader
                .records()
                .map(|row| {
                    let row = row.map_err(|e| EvalError::data(path, e))?;
                    Ok(headers
                        .iter()
                        .zip(row.iter())
                        .map(|(h, v)| (h.to_string(), Value::String(v.to_string())))
                        .collect())
                })
                .collect()
        }
    }
}

fn normalize(
    spec: &SourceSpec,
    derive: &BTreeMap<String, DeriveSpec>,
    record: &mut Map<String, Value>,
    index: usize,
    row: usize,
) -> std::result::Result<Doc, String> {
    for (ours, theirs) in &spec.fields {
        let value = record
            .get(theirs)
            .cloned()
            .ok_or_else(|| format!("no column `{theirs}` (renamed to `{ours}`)"))?;
        record.insert(ours.clone(), value);
    }
    for (name, d) in derive {
        let source = lookup_path(record, &d.from)
            .and_then(scalar_text)
            .ok_or_else(|| format!("no text field `{}` to derive `{name}` from", d.from))?;
        let mut value = match &d.map {
            Some(map) => map.get(source.trim()).cloned().ok_or_else(|| {
                format!("`{}` = {source:?} is not in the map of `{name}`", d.from)
            })?,
            None => source,
        };
        if let Some((pattern, replacement)) = &d.replace {
            value = value.replace(pattern.as_str(), replacement);
        }
        record.insert(name.clone(), Value::String(value));
    }
    let mut answers = Vec::new();
    if let (Some(options), Some(gold)) = (&spec.options, &spec.gold) {
        let options = read_options(record, options)?;
        let g = read_gold(record, gold, &options)?;
        let correct = (0..options.len()).map(|i| i == g).collect();
        answers.push(AnswerSet {
            name: MAIN.to_string(),
            options,
            correct,
        });
    }
    for (name, a) in &spec.answers {
        let options = read_options(record, &a.options)?;
        let correct = match (&a.gold, &a.labels) {
            (Some(gold), _) => {
                let g = read_gold(record, gold, &options)?;
                (0..options.len()).map(|i| i == g).collect()
            }
            (None, Some(field)) => read_labels(record, field, options.len())?,
            (None, None) => return Err(format!("answer set `{name}` has no gold")),
        };
        if !correct.iter().any(|c| *c) {
            return Err(format!("answer set `{name}` has no correct option"));
        }
        answers.push(AnswerSet {
            name: name.clone(),
            options,
            correct,
        });
    }
    let id = lookup_path(record, &spec.id_field)
        .and_then(scalar_text)
        .unwrap_or_else(|| format!("{}-{row}", spec.split));
    Ok(Doc {
        id,
        source_index: index,
        fields: std::mem::take(record),
        answers,
    })
}

fn read_options(
    record: &Map<String, Value>,
    spec: &OptionsSpec,
) -> std::result::Result<Vec<String>, String> {
    let options = match spec {
        OptionsSpec::Fixed(options) => options.clone(),
        OptionsSpec::Fields(fields) => fields
            .iter()
            .map(|f| {
                lookup_path(record, f)
                    .and_then(scalar_text)
                    .ok_or_else(|| format!("no text field `{f}` for an option"))
            })
            .collect::<std::result::Result<_, _>>()?,
        OptionsSpec::Field(field) => match lookup_path(record, field) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("`{field}` holds a non-text option"))
                })
                .collect::<std::result::Result<_, _>>()?,
            _ => return Err(format!("no list field `{field}` for the options")),
        },
    };
    if options.is_empty() {
        return Err("no options".into());
    }
    Ok(options)
}

fn read_gold(
    record: &Map<String, Value>,
    spec: &GoldSpec,
    options: &[String],
) -> std::result::Result<usize, String> {
    let value = lookup_path(record, &spec.field)
        .ok_or_else(|| format!("no gold field `{}`", spec.field))?;
    let text = scalar_text(value).ok_or_else(|| format!("gold `{}` is not text", spec.field))?;
    let t = text.trim();
    let index = match spec.kind {
        GoldKind::Index | GoldKind::Index1 => {
            let n: i64 = t
                .parse()
                .or_else(|_| {
                    t.parse::<f64>()
                        .ok()
                        .filter(|f| f.fract() == 0.0)
                        .map(|f| f as i64)
                        .ok_or(())
                })
                .map_err(|_| format!("gold {t:?} is not an index"))?;
            let n = if spec.kind == GoldKind::Index1 {
                n - 1
            } else {
                n
            };
            usize::try_from(n).map_err(|_| format!("gold {t:?} is out of range"))?
        }
        GoldKind::Bool => match t.to_ascii_lowercase().as_str() {
            "true" => 1,
            "false" => 0,
            _ => return Err(format!("gold {t:?} is not true/false")),
        },
        GoldKind::Text => options
            .iter()
            .position(|o| o == &text)
            .ok_or_else(|| format!("gold {text:?} is none of the options"))?,
        GoldKind::Letter => {
            let letter = t.trim_start_matches('(').trim_end_matches(')');
            match letter.chars().collect::<Vec<_>>()[..] {
                [c] if c.is_ascii_alphabetic() => (c.to_ascii_uppercase() as u8 - b'A') as usize,
                _ => return Err(format!("gold {t:?} is not a letter")),
            }
        }
    };
    if index >= options.len() {
        return Err(format!(
            "gold {t:?} points past the {} options",
            options.len()
        ));
    }
    Ok(index)
}

fn read_labels(
    record: &Map<String, Value>,
    field: &str,
    n: usize,
) -> std::result::Result<Vec<bool>, String> {
    let Some(Value::Array(items)) = lookup_path(record, field) else {
        return Err(format!("no list field `{field}` for the labels"));
    };
    if items.len() != n {
        return Err(format!("{} labels for {n} options", items.len()));
    }
    items
        .iter()
        .map(|v| match v {
            Value::Bool(b) => Ok(*b),
            Value::Number(x) if x.as_i64() == Some(0) => Ok(false),
            Value::Number(x) if x.as_i64() == Some(1) => Ok(true),
            other => Err(format!("label {other} is not 0/1")),
        })
        .collect()
}

/// A field by exact name first (column names may contain dots), else by a dotted path
/// through tables and list indices.
pub(crate) fn lookup_path<'a>(record: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = record.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut current = record.get(parts.next()?)?;
    for part in parts {
        current = match current {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// Rotates the main answer set like KoBBQ's evaluation (`scipy.linalg.circulant`): for
/// `n` options, variant `k` puts option `(k - j) mod n` at position `j`, so every option
/// appears once in every position. Variant ids get `-k` appended.
pub fn circulant_variants(doc: &Doc) -> std::result::Result<Vec<Doc>, String> {
    let main = doc
        .answer_set(MAIN)
        .ok_or("permutation needs the main answer set")?;
    if doc.answers.len() != 1 {
        return Err("permutation works on tasks with one answer set only".into());
    }
    let n = main.options.len();
    Ok((0..n)
        .map(|k| {
            let order: Vec<usize> = (0..n).map(|j| (k + n - j) % n).collect();
            let mut variant = doc.clone();
            variant.id = format!("{}-{k}", doc.id);
            variant.answers = vec![AnswerSet {
                name: MAIN.to_string(),
                options: order.iter().map(|&i| main.options[i].clone()).collect(),
                correct: order.iter().map(|&i| main.correct[i]).collect(),
            }];
            variant
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_text: &str) -> SourceSpec {
        toml::from_str(toml_text).unwrap()
    }

    fn record(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn gold_kinds_read_their_forms() {
        let options: Vec<String> = ["가", "나", "다"].iter().map(|s| s.to_string()).collect();
        let r = record(r#"{"i": 2, "i1": "2", "b": "TRUE", "t": "다", "l": "(b)", "f": "1.0"}"#);
        let g = |field: &str, kind| {
            read_gold(
                &r,
                &GoldSpec {
                    field: field.into(),
                    kind,
                },
                &options,
            )
        };
        assert_eq!(g("i", GoldKind::Index), Ok(2));
        assert_eq!(g("i1", GoldKind::Index1), Ok(1));
        assert_eq!(g("f", GoldKind::Index), Ok(1));
        assert_eq!(g("b", GoldKind::Bool), Ok(1));
        assert_eq!(g("t", GoldKind::Text), Ok(2));
        assert_eq!(g("l", GoldKind::Letter), Ok(1));
        assert!(g("i1", GoldKind::Bool).is_err());
        assert!(g("missing", GoldKind::Index).is_err());
        let past = record(r#"{"i": 3}"#);
        assert!(read_gold(
            &past,
            &GoldSpec {
                field: "i".into(),
                kind: GoldKind::Index
            },
            &options
        )
        .is_err());
    }

    #[test]
    fn renames_derivations_and_labels() {
        let s = spec(
            r#"
            path = "x.jsonl"
            split = "test"
            fields = { premise = "sentence" }
            [answers.mc2]
            options = { field = "t.choices" }
            labels = "t.labels"
            "#,
        );
        let derive: BTreeMap<String, DeriveSpec> = toml::from_str(
            r##"
            connector = { from = "question", map = { "원인" = "왜냐하면" } }
            concepts = { from = "set", replace = ["#", ", "] }
            "##,
        )
        .unwrap();
        let mut r = record(
            r##"{"sentence": "s", "question": "원인", "set": "a#b",
                 "t": {"choices": ["x", "y"], "labels": [0, 1]}}"##,
        );
        let doc = normalize(&s, &derive, &mut r, 0, 7).unwrap();
        assert_eq!(doc.id, "test-7");
        assert_eq!(doc.text("premise"), Ok(Some("s".into())));
        assert_eq!(doc.text("connector"), Ok(Some("왜냐하면".into())));
        assert_eq!(doc.text("concepts"), Ok(Some("a, b".into())));
        assert_eq!(doc.text("t.choices.1"), Ok(Some("y".into())));
        assert!(doc.text("t.choices").is_err());
        let mc2 = doc.answer_set("mc2").unwrap();
        assert_eq!(mc2.correct, vec![false, true]);
        assert_eq!(mc2.gold(), Some(1));
    }

    #[test]
    fn validation_rejects_half_answers() {
        let half = spec("path = \"x.jsonl\"\nsplit = \"t\"\noptions = { fixed = [\"a\"] }");
        assert!(half.validate().is_err());
        let unknown = spec("path = \"x.parquet\"\nsplit = \"t\"\noptions = { fixed = [\"a\"] }\ngold = { field = \"g\" }");
        assert!(unknown.validate().is_err());
    }

    #[test]
    fn circulant_matches_scipy() {
        // scipy.linalg.circulant(["a", "b", "c"]) rows: [a c b], [b a c], [c b a]
        let doc = Doc {
            id: "q".into(),
            source_index: 0,
            fields: Map::new(),
            answers: vec![AnswerSet {
                name: MAIN.into(),
                options: vec!["a".into(), "b".into(), "c".into()],
                correct: vec![false, false, true],
            }],
        };
        let v = circulant_variants(&doc).unwrap();
        let orders: Vec<Vec<&str>> = v
            .iter()
            .map(|d| d.answers[0].options.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            orders,
            vec![
                vec!["a", "c", "b"],
                vec!["b", "a", "c"],
                vec!["c", "b", "a"]
            ]
        );
        assert_eq!(v[1].answers[0].gold(), Some(2));
        assert_eq!(v[2].id, "q-2");
    }

    #[test]
    fn csv_with_bom_and_quotes() {
        let bytes = "\u{feff}a,b\n\"x, y\",2\n".as_bytes();
        let rows = parse_records(Path::new("t.csv"), bytes, Format::Csv).unwrap();
        assert_eq!(rows[0]["a"], Value::String("x, y".into()));
    }
}
