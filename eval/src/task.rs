//! Task definitions: one TOML file per benchmark (`eval/tasks/*.toml`) says where the data
//! is, how a prompt and its choices are written, where few-shot examples come from, and the metrics.
//!
//! The files are data, so a new benchmark needs no code; the built-in ones are compiled in
//! and a user's own folder of task files can be loaded beside them.

use crate::dataset::{self, DataFile, DeriveSpec, Doc, SourceSpec, MAIN};
use crate::error::{EvalError, Result};
use crate::score::Metric;
use crate::template::Template;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The task files shipped in `eval/tasks/`, compiled in so the binary runs anywhere.
const BUILTIN: &[(&str, &str)] = &[
    ("click.toml", include_str!("../tasks/click.toml")),
    ("haerae.toml", include_str!("../tasks/haerae.toml")),
    (
        "kmmlu_food_health_safety.toml",
        include_str!("../tasks/kmmlu_food_health_safety.toml"),
    ),
    (
        "ko_commongen_v2.toml",
        include_str!("../tasks/ko_commongen_v2.toml"),
    ),
    (
        "ko_truthfulqa_mc.toml",
        include_str!("../tasks/ko_truthfulqa_mc.toml"),
    ),
    ("kobbq.toml", include_str!("../tasks/kobbq.toml")),
    (
        "kobest_boolq.toml",
        include_str!("../tasks/kobest_boolq.toml"),
    ),
    (
        "kobest_copa.toml",
        include_str!("../tasks/kobest_copa.toml"),
    ),
    (
        "kobest_hellaswag.toml",
        include_str!("../tasks/kobest_hellaswag.toml"),
    ),
    (
        "kobest_sentineg.toml",
        include_str!("../tasks/kobest_sentineg.toml"),
    ),
    ("kobest_wic.toml", include_str!("../tasks/kobest_wic.toml")),
    (
        "truthfulqa_mc.toml",
        include_str!("../tasks/truthfulqa_mc.toml"),
    ),
];

/// The file names of the built-in task definitions.
pub fn builtin_files() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(f, _)| *f)
}

/// Every built-in task, sorted by name.
pub fn builtin_tasks() -> Result<Vec<Task>> {
    let mut tasks = BUILTIN
        .iter()
        .map(|(file, text)| Task::parse(text, Path::new("eval/tasks").join(file)))
        .collect::<Result<Vec<_>>>()?;
    tasks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tasks)
}

/// Every `*.toml` task file in `dir`, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<Task>> {
    let entries = std::fs::read_dir(dir).map_err(|e| EvalError::io(dir, e))?;
    let mut tasks = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| EvalError::io(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            tasks.push(Task::load(&path)?);
        }
    }
    tasks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tasks)
}

/// Picks tasks by name, keeping the order asked for.
pub fn select(tasks: &[Task], names: &[&str]) -> Result<Vec<Task>> {
    names
        .iter()
        .map(|n| {
            tasks
                .iter()
                .find(|t| t.name == *n)
                .cloned()
                .ok_or_else(|| EvalError::UnknownTask(n.to_string()))
        })
        .collect()
}

/// A parsed, checked task definition.
#[derive(Debug, Clone)]
pub struct Task {
    pub name: String,
    /// What the benchmark measures, for people.
    pub about: String,
    /// The definition this one follows (an lm-evaluation-harness task, a paper's script).
    pub reference: String,
    /// Suites the task belongs to (`leaderboard`, …).
    pub tags: Vec<String>,
    /// Where the definition was read from.
    pub definition: PathBuf,
    /// sha256 of the definition file, recorded with every result.
    pub hash: String,
    /// Each metric with the answer set it reads.
    pub metrics: Vec<(Metric, String)>,
    /// Few-shot examples per prompt unless the run overrides it.
    pub num_fewshot: usize,
    /// Documents in a quick run (spread evenly over the data).
    pub quick_limit: Option<usize>,
    pub(crate) data: SourceSpec,
    pub(crate) fewshot: Option<Fewshot>,
    pub(crate) derive: BTreeMap<String, DeriveSpec>,
    pub(crate) prompt: Template,
    pub(crate) description: Option<String>,
    pub(crate) target_delimiter: String,
    pub(crate) continuation: Template,
    pub(crate) labels: Vec<String>,
    pub(crate) list_item: Template,
    pub(crate) list_separator: String,
    pub(crate) permute: Option<Permute>,
}

#[derive(Debug, Clone)]
pub(crate) struct Fewshot {
    pub separator: String,
    pub seed: u64,
    pub match_field: Option<String>,
    /// `None`: examples come from the task's own documents, never the one being asked.
    pub data: Option<SourceSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Permute {
    Circulant,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskFile {
    name: String,
    #[serde(default)]
    about: String,
    #[serde(default)]
    reference: String,
    #[serde(default)]
    tags: Vec<String>,
    metrics: Vec<MetricEntry>,
    #[serde(default)]
    num_fewshot: usize,
    #[serde(default)]
    quick_limit: Option<usize>,
    data: SourceSpec,
    #[serde(default)]
    fewshot: Option<FewshotFile>,
    #[serde(default)]
    derive: BTreeMap<String, DeriveSpec>,
    prompt: PromptFile,
    #[serde(default)]
    choices: ChoicesFile,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MetricEntry {
    Name(String),
    Table(MetricTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricTable {
    metric: String,
    answers: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptFile {
    template: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default = "default_target_delimiter")]
    target_delimiter: String,
}

fn default_target_delimiter() -> String {
    " ".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChoicesFile {
    #[serde(default = "default_continuation")]
    continuation: String,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default = "default_list_item")]
    list_item: String,
    #[serde(default = "default_list_separator")]
    list_separator: String,
    #[serde(default)]
    permute: Option<Permute>,
}

impl Default for ChoicesFile {
    fn default() -> Self {
        ChoicesFile {
            continuation: default_continuation(),
            labels: Vec::new(),
            list_item: default_list_item(),
            list_separator: default_list_separator(),
            permute: None,
        }
    }
}

fn default_continuation() -> String {
    "{text}".to_string()
}
fn default_list_item() -> String {
    "{label}. {text}".to_string()
}
fn default_list_separator() -> String {
    "\n".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FewshotFile {
    #[serde(default = "default_fewshot_separator")]
    separator: String,
    /// lm-evaluation-harness's default `fewshot_seed`.
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default)]
    match_field: Option<String>,
    #[serde(default)]
    data: Option<SourceSpec>,
}

fn default_fewshot_separator() -> String {
    "\n\n".to_string()
}
fn default_seed() -> u64 {
    1234
}

/// A task's documents, its few-shot pool and the files they came from.
#[derive(Debug, Clone)]
pub struct TaskData {
    pub docs: Vec<Doc>,
    /// Documents few-shot examples are drawn from; empty for a zero-shot-only task.
    pub fewshot_pool: Vec<Doc>,
    /// Whether the pool is the task's own documents (then a document never shows itself).
    pub pool_is_test: bool,
    pub files: Vec<DataFile>,
}

impl Task {
    pub fn load(path: &Path) -> Result<Task> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        Task::parse(&text, path.to_path_buf())
    }

    pub fn parse(text: &str, definition: PathBuf) -> Result<Task> {
        let bad = |detail: String| EvalError::TaskDefinition {
            path: definition.clone(),
            detail,
        };
        let file: TaskFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if file.name.is_empty()
            || !file
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(bad(format!(
                "name {:?} must be lower-case letters, digits and `_`",
                file.name
            )));
        }
        file.data
            .validate()
            .map_err(|e| bad(format!("[data]: {e}")))?;
        let has_set = |name: &str| {
            (name == MAIN && file.data.options.is_some()) || file.data.answers.contains_key(name)
        };
        let mut metrics = Vec::new();
        for entry in &file.metrics {
            let (metric, set) = match entry {
                MetricEntry::Name(n) => {
                    let m: Metric = n.parse().map_err(&bad)?;
                    (m, m.default_answer_set().to_string())
                }
                MetricEntry::Table(t) => (t.metric.parse().map_err(&bad)?, t.answers.clone()),
            };
            if !has_set(&set) {
                return Err(bad(format!(
                    "metric {metric} reads answer set `{set}`, which [data] does not define"
                )));
            }
            metrics.push((metric, set));
        }
        if metrics.is_empty() {
            return Err(bad("no metrics".into()));
        }
        let template = |what: &str, source: &str| {
            Template::parse(source).map_err(|e| bad(format!("{what}: {e}")))
        };
        let prompt = template("prompt.template", &file.prompt.template)?;
        let continuation = template("choices.continuation", &file.choices.continuation)?;
        let list_item = template("choices.list_item", &file.choices.list_item)?;
        let uses_labels = continuation.mentions("label")
            || (prompt.mentions("@options") && list_item.mentions("label"));
        if uses_labels && file.choices.labels.is_empty() {
            return Err(bad(
                "choices name `{label}` but `choices.labels` is empty".into()
            ));
        }
        if prompt.mentions("@options") && !has_set(MAIN) {
            return Err(bad(
                "`{@options}` lists the main answer set, which [data] lacks".into(),
            ));
        }
        let fewshot = match file.fewshot {
            None => None,
            Some(f) => {
                if !has_set(MAIN) {
                    return Err(bad(
                        "[fewshot] needs the main answer set (`options` and `gold`) for its targets"
                            .into(),
                    ));
                }
                if let Some(d) = &f.data {
                    d.validate()
                        .map_err(|e| bad(format!("[fewshot.data]: {e}")))?;
                    if d.options.is_none() {
                        return Err(bad("[fewshot.data] needs `options` and `gold`".into()));
                    }
                }
                Some(Fewshot {
                    separator: f.separator,
                    seed: f.seed,
                    match_field: f.match_field,
                    data: f.data,
                })
            }
        };
        if file.choices.permute.is_some() && (!has_set(MAIN) || !file.data.answers.is_empty()) {
            return Err(bad(
                "`choices.permute` needs exactly one answer set, the main one".into(),
            ));
        }
        Ok(Task {
            name: file.name,
            about: file.about,
            reference: file.reference,
            tags: file.tags,
            hash: hex::encode(Sha256::digest(text.as_bytes())),
            definition,
            metrics,
            num_fewshot: file.num_fewshot,
            quick_limit: file.quick_limit,
            data: file.data,
            fewshot,
            derive: file.derive,
            prompt,
            description: file.prompt.description,
            target_delimiter: file.prompt.target_delimiter,
            continuation,
            labels: file.choices.labels,
            list_item,
            list_separator: file.choices.list_separator,
            permute: file.choices.permute,
        })
    }

    /// Whether few-shot examples can be drawn at all.
    pub fn has_fewshot(&self) -> bool {
        self.fewshot.is_some()
    }

    /// The number of examples a run uses: the override if the task has a few-shot source,
    /// else the task's own number; always 0 for a task without one.
    pub fn effective_fewshot(&self, requested: Option<usize>) -> usize {
        match (&self.fewshot, requested) {
            (None, _) => 0,
            (Some(_), Some(k)) => k,
            (Some(_), None) => self.num_fewshot,
        }
    }

    /// Text put before every context (and its few-shot examples), if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The few-shot seed (recorded in results).
    pub fn fewshot_seed(&self) -> Option<u64> {
        self.fewshot.as_ref().map(|f| f.seed)
    }

    /// Reads the task's documents and few-shot pool from under `root`.
    pub fn load_data(&self, root: &Path) -> Result<TaskData> {
        let (docs, mut files) = dataset::load(root, &self.data, &self.derive)?;
        if docs.is_empty() {
            return Err(EvalError::task(
                &self.name,
                "the data files hold no records",
            ));
        }
        let (fewshot_pool, pool_is_test) = match &self.fewshot {
            None => (Vec::new(), false),
            Some(Fewshot { data: None, .. }) => (docs.clone(), true),
            Some(Fewshot {
                data: Some(spec), ..
            }) => {
                let (pool, more) = dataset::load(root, spec, &self.derive)?;
                files.extend(more);
                (pool, false)
            }
        };
        let docs = match self.permute {
            None => docs,
            Some(Permute::Circulant) => {
                let mut out = Vec::with_capacity(docs.len() * 3);
                for doc in &docs {
                    out.extend(
                        dataset::circulant_variants(doc)
                            .map_err(|e| EvalError::task(&self.name, e))?,
                    );
                }
                out
            }
        };
        Ok(TaskData {
            docs,
            fewshot_pool,
            pool_is_test,
            files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Task> {
        Task::parse(text, PathBuf::from("t.toml"))
    }

    const MINIMAL: &str = r#"
        name = "t"
        metrics = ["acc"]
        [data]
        path = "x.jsonl"
        split = "test"
        options = { field = "choices" }
        gold = { field = "gold" }
        [prompt]
        template = "{question}"
    "#;

    #[test]
    fn minimal_task_has_defaults() {
        let t = parse(MINIMAL).unwrap();
        assert_eq!(t.metrics, vec![(Metric::Acc, MAIN.to_string())]);
        assert_eq!(t.target_delimiter, " ");
        assert_eq!(
            t.effective_fewshot(Some(5)),
            0,
            "no [fewshot]: zero-shot only"
        );
        assert_eq!(t.hash.len(), 64);
    }

    #[test]
    fn inconsistent_definitions_are_rejected() {
        let cases = [
            MINIMAL.replace("[\"acc\"]", "[\"mc2\"]"),
            MINIMAL.replace("[\"acc\"]", "[\"f1\"]"),
            MINIMAL.replace("name = \"t\"", "name = \"T-1\""),
            MINIMAL.replace("{question}", "{question"),
            MINIMAL.replace("{question}", "{@options}"),
            MINIMAL.replace("split = \"test\"", "split = \"test\"\nextra = 1"),
            MINIMAL.to_string() + "[choices]\ncontinuation = \"{label}\"\n",
        ];
        for text in cases {
            assert!(parse(&text).is_err(), "should be rejected:\n{text}");
        }
    }

    #[test]
    fn fewshot_override_applies_only_with_a_source() {
        let t = parse(&(MINIMAL.to_string() + "[fewshot]\n")).unwrap();
        assert_eq!(t.effective_fewshot(None), 0);
        assert_eq!(t.effective_fewshot(Some(3)), 3);
        assert_eq!(t.fewshot_seed(), Some(1234));
    }
}
