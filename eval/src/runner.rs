//! Runs tasks against a [`LogLikelihood`] engine: documents in file order, one record per
//! document appended to `samples/<task>.jsonl` as it is scored, then `results.json`.
//!
//! A killed run resumes from its records: a document already recorded with the same context
//! and continuations is not scored again, and a half-written last line is dropped.

use crate::dataset::DataFile;
use crate::engine::{LogLikelihood, Scored};
use crate::error::{EvalError, Result};
use crate::request::Request;
use crate::score::{argmax, Summary};
use crate::task::Task;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Which documents of each task a run scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    All,
    /// The first `n` documents, like the harness's `--limit`.
    First(usize),
    /// The task's `quick_limit` documents, spread evenly over its data (all without one).
    Quick,
}

/// The model a run scores, as recorded in `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Folder the task files' data paths are relative to (`../shared/bench` in tests).
    pub data_root: PathBuf,
    /// Folder for `samples/` and `results.json`; reusing it resumes the run.
    pub out_dir: PathBuf,
    pub model: ModelInfo,
    pub limit: Limit,
    /// Few-shot examples for every task that has a few-shot source; `None`: each task's own.
    pub num_fewshot: Option<usize>,
}

/// Where a run stands, reported after each document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress<'a> {
    pub task: &'a str,
    pub done: usize,
    pub total: usize,
    /// Documents taken from an earlier run's records.
    pub resumed: usize,
}

/// One document's record: everything needed to recompute its scores with another engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    pub doc_index: usize,
    pub doc_id: String,
    pub context: String,
    pub continuations: Vec<ScoredContinuation>,
    pub answers: Vec<AnswerRecord>,
    pub metrics: BTreeMap<String, f64>,
    /// Engine time spent scoring this document, in seconds (0 in records written before
    /// this was kept).
    #[serde(default)]
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredContinuation {
    /// The exact string scored after the context (target delimiter included).
    pub continuation: String,
    /// The same without the delimiter; its length normalises `acc_norm`/`acc_bytes`.
    pub choice: String,
    pub logprob: f64,
    pub is_greedy: bool,
    /// Tokens the engine scored (0 in records written before this was kept).
    #[serde(default)]
    pub tokens: usize,
}

/// One answer set of a record: its options as continuation indices, the prediction by
/// summed log-likelihood and the correct options, both as option positions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerRecord {
    pub name: String,
    pub continuations: Vec<usize>,
    pub prediction: Option<usize>,
    pub gold: Vec<usize>,
}

/// `results.json`, shaped like lm-evaluation-harness's: `results → task → metric`,
/// `metric_stderr` and `metric_ci95`, with the configuration that produced them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub results: BTreeMap<String, BTreeMap<String, Value>>,
    pub configs: BTreeMap<String, TaskConfig>,
    #[serde(rename = "n-samples")]
    pub n_samples: BTreeMap<String, NSamples>,
    pub model: ModelInfo,
    /// UTC, RFC 3339.
    pub date: String,
    pub eval_version: String,
    /// How the RAG suite ran (question set, probes, answer settings), when it did; its
    /// figures are `results.rag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rag_config: Option<crate::rag::RagConfig>,
    /// Engine time spent scoring each task's documents, in seconds, summed over its records:
    /// a resumed run includes the time of the runs it continues, so a long run split over
    /// several sittings still has its full scoring time.
    #[serde(default)]
    pub scoring_seconds: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskConfig {
    pub definition: String,
    pub task_hash: String,
    pub reference: String,
    pub num_fewshot: usize,
    pub fewshot_seed: Option<u64>,
    pub limit: Option<usize>,
    pub metrics: Vec<String>,
    pub data_files: Vec<DataFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NSamples {
    pub original: usize,
    pub effective: usize,
}

impl Results {
    /// No results yet, for `model`, dated now.
    pub fn new(model: ModelInfo) -> Results {
        Results {
            results: BTreeMap::new(),
            configs: BTreeMap::new(),
            n_samples: BTreeMap::new(),
            model,
            date: rfc3339_now(),
            eval_version: env!("CARGO_PKG_VERSION").to_string(),
            rag_config: None,
            scoring_seconds: BTreeMap::new(),
        }
    }

    /// A metric's mean for a task, if that task reported it.
    pub fn metric(&self, task: &str, metric: &str) -> Option<f64> {
        self.results.get(task)?.get(metric)?.as_f64()
    }

    pub fn load(path: &Path) -> Result<Results> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| EvalError::Records {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
    }

    /// Writes through a temporary file and a rename, so a reader never sees half a file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| EvalError::Records {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        std::fs::write(&tmp, text + "\n").map_err(|e| EvalError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| EvalError::io(path, e))
    }
}

/// Runs `tasks` in order and writes `samples/<task>.jsonl` and `results.json` under
/// `config.out_dir`.
pub fn run<E: LogLikelihood + ?Sized>(
    engine: &mut E,
    tasks: &[Task],
    config: &RunConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Results> {
    let samples_dir = config.out_dir.join("samples");
    std::fs::create_dir_all(&samples_dir).map_err(|e| EvalError::io(&samples_dir, e))?;
    let mut results = Results::new(config.model.clone());
    for task in tasks {
        let data = task.load_data(&config.data_root)?;
        let selection = select(task, data.docs.len(), config.limit);
        let k = task.effective_fewshot(config.num_fewshot);
        let path = samples_dir.join(format!("{}.jsonl", task.name));
        let mut samples = SamplesFile::open(&path)?;
        let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut seconds = 0.0;
        let mut state = Progress {
            task: &task.name,
            done: 0,
            total: selection.len(),
            resumed: 0,
        };
        progress(&state);
        for &index in &selection {
            let request = task.request(&data, index, k)?;
            let scored = match samples.recorded(&request)? {
                Some((scored, took)) => {
                    state.resumed += 1;
                    seconds += took;
                    scored
                }
                None => {
                    let started = std::time::Instant::now();
                    let scored = score(engine, &request)?;
                    let took = started.elapsed().as_secs_f64();
                    seconds += took;
                    samples.append(&record(task, &request, &scored, took))?;
                    scored
                }
            };
            for (name, value) in metric_values(task, &request, &scored) {
                values.entry(name).or_default().push(value);
            }
            state.done += 1;
            progress(&state);
        }
        let mut summary = BTreeMap::new();
        for (metric, _) in &task.metrics {
            let name = metric.name();
            if let Some(s) = values.get(name).and_then(|v| Summary::of(v)) {
                s.insert_into(&mut summary, name);
            }
        }
        results.results.insert(task.name.clone(), summary);
        results.scoring_seconds.insert(task.name.clone(), seconds);
        results.n_samples.insert(
            task.name.clone(),
            NSamples {
                original: data.docs.len(),
                effective: selection.len(),
            },
        );
        results.configs.insert(
            task.name.clone(),
            TaskConfig {
                definition: task.definition.to_string_lossy().into_owned(),
                task_hash: task.hash.clone(),
                reference: task.reference.clone(),
                num_fewshot: k,
                fewshot_seed: task.fewshot_seed(),
                limit: (selection.len() < data.docs.len()).then_some(selection.len()),
                metrics: task
                    .metrics
                    .iter()
                    .map(|(m, _)| m.name().to_string())
                    .collect(),
                data_files: data.files.clone(),
            },
        );
    }
    results.date = rfc3339_now();
    results.write(&config.out_dir.join("results.json"))?;
    Ok(results)
}

/// Document indices a run scores, in order.
fn select(task: &Task, total: usize, limit: Limit) -> Vec<usize> {
    match limit {
        Limit::All => (0..total).collect(),
        Limit::First(n) => (0..total.min(n)).collect(),
        Limit::Quick => match task.quick_limit {
            Some(q) if q < total => (0..q).map(|i| i * total / q).collect(),
            _ => (0..total).collect(),
        },
    }
}

fn score<E: LogLikelihood + ?Sized>(engine: &mut E, request: &Request) -> Result<Vec<Scored>> {
    let scored = engine.loglikelihood(&request.context, &request.continuations)?;
    if scored.len() != request.continuations.len() {
        return Err(EvalError::Engine(
            format!(
                "{} scores for {} continuations (task {}, document {:?})",
                scored.len(),
                request.continuations.len(),
                request.task,
                request.doc_id
            )
            .into(),
        ));
    }
    if let Some(bad) = scored
        .iter()
        .find(|s| s.logprob.is_nan() || s.logprob > 1e-9)
    {
        return Err(EvalError::Engine(
            format!(
                "log-likelihood {} is not a log-probability (task {}, document {:?})",
                bad.logprob, request.task, request.doc_id
            )
            .into(),
        ));
    }
    Ok(scored)
}

/// Each of the task's metrics for one document.
fn metric_values(task: &Task, request: &Request, scored: &[Scored]) -> Vec<(String, f64)> {
    task.metrics
        .iter()
        .filter_map(|(metric, set_name)| {
            let set = request.answers.iter().find(|a| &a.name == set_name)?;
            let logprobs: Vec<f64> = set
                .continuations
                .iter()
                .map(|&i| scored[i].logprob)
                .collect();
            let choices: Vec<&str> = set
                .continuations
                .iter()
                .map(|&i| request.choices[i].as_str())
                .collect();
            Some((
                metric.name().to_string(),
                metric.score(&logprobs, &choices, &set.correct),
            ))
        })
        .collect()
}

fn record(task: &Task, request: &Request, scored: &[Scored], seconds: f64) -> SampleRecord {
    SampleRecord {
        seconds,
        doc_index: request.doc_index,
        doc_id: request.doc_id.clone(),
        context: request.context.clone(),
        continuations: request
            .continuations
            .iter()
            .zip(&request.choices)
            .zip(scored)
            .map(|((continuation, choice), s)| ScoredContinuation {
                continuation: continuation.clone(),
                choice: choice.clone(),
                logprob: s.logprob,
                is_greedy: s.is_greedy,
                tokens: s.tokens,
            })
            .collect(),
        answers: request
            .answers
            .iter()
            .map(|set| {
                let logprobs: Vec<f64> = set
                    .continuations
                    .iter()
                    .map(|&i| scored[i].logprob)
                    .collect();
                AnswerRecord {
                    name: set.name.clone(),
                    continuations: set.continuations.clone(),
                    prediction: argmax(&logprobs),
                    gold: (0..set.correct.len()).filter(|&i| set.correct[i]).collect(),
                }
            })
            .collect(),
        metrics: metric_values(task, request, scored).into_iter().collect(),
    }
}

/// A task's samples file: the records of earlier runs, and an appender for new ones.
struct SamplesFile {
    path: PathBuf,
    recorded: BTreeMap<usize, SampleRecord>,
    file: std::fs::File,
}

impl SamplesFile {
    fn open(path: &Path) -> Result<SamplesFile> {
        let corrupt = |detail: String| EvalError::Records {
            path: path.to_path_buf(),
            detail,
        };
        let mut recorded = BTreeMap::new();
        let mut keep = 0;
        if path.exists() {
            let bytes = std::fs::read(path).map_err(|e| EvalError::io(path, e))?;
            let mut start = 0;
            let mut line_no = 0;
            while start < bytes.len() {
                line_no += 1;
                let (end, complete) = match bytes[start..].iter().position(|b| *b == b'\n') {
                    Some(n) => (start + n, true),
                    None => (bytes.len(), false),
                };
                let line = &bytes[start..end];
                // A last line cut off by a killed run: dropped, its document is redone.
                if !complete {
                    break;
                }
                if !line.iter().all(u8::is_ascii_whitespace) {
                    let r: SampleRecord = serde_json::from_slice(line).map_err(|e| {
                        corrupt(format!(
                            "line {line_no} is not a record ({e}); was the file written by two runs at once?"
                        ))
                    })?;
                    recorded.entry(r.doc_index).or_insert(r);
                }
                keep = end + 1;
                start = end + 1;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .map_err(|e| EvalError::io(path, e))?;
        file.set_len(keep as u64)
            .map_err(|e| EvalError::io(path, e))?;
        let mut file = file;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))
            .map_err(|e| EvalError::io(path, e))?;
        Ok(SamplesFile {
            path: path.to_path_buf(),
            recorded,
            file,
        })
    }

    /// The scores of an earlier run for this request, and the seconds they took, if it asked
    /// exactly the same.
    fn recorded(&self, request: &Request) -> Result<Option<(Vec<Scored>, f64)>> {
        let Some(r) = self.recorded.get(&request.doc_index) else {
            return Ok(None);
        };
        let same = r.doc_id == request.doc_id
            && r.context == request.context
            && r.continuations.len() == request.continuations.len()
            && r.continuations
                .iter()
                .zip(&request.continuations)
                .all(|(a, b)| &a.continuation == b);
        if !same {
            return Err(EvalError::Records {
                path: self.path.clone(),
                detail: format!(
                    "document {} ({:?}) was recorded with another prompt (task file, data or \
                     few-shot setting changed); use another output folder or delete this file",
                    request.doc_index, request.doc_id
                ),
            });
        }
        Ok(Some((
            r.continuations
                .iter()
                .map(|c| Scored {
                    logprob: c.logprob,
                    is_greedy: c.is_greedy,
                    tokens: c.tokens,
                })
                .collect(),
            r.seconds,
        )))
    }

    /// One line per record, written with a single call and flushed, so a killed run leaves
    /// at most one partial line.
    fn append(&mut self, record: &SampleRecord) -> Result<()> {
        let mut line = serde_json::to_string(record).map_err(|e| EvalError::Records {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| EvalError::io(&self.path, e))
    }
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Days to a civil date by Howard Hinnant's algorithm, so no date library is needed.
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::NegativeLengthScorer;
    use std::path::PathBuf;

    /// A task over a small file written by the test, so counts and scores are known.
    fn fixture(dir: &Path, n: usize) -> (Task, RunConfig) {
        let mut lines = String::new();
        for i in 0..n {
            // gold is the shorter option for even i, the longer for odd i
            let gold = i % 2;
            lines.push_str(&format!(
                "{{\"id\": \"d{i}\", \"q\": \"질문 {i}\", \"choices\": [\"짧다\", \"훨씬 더 길다\"], \"gold\": {gold}}}\n"
            ));
        }
        std::fs::write(dir.join("d.jsonl"), lines).unwrap();
        let task = Task::parse(
            r#"
            name = "toy"
            metrics = ["acc", "acc_norm"]
            quick_limit = 3
            [data]
            path = "d.jsonl"
            split = "test"
            options = { field = "choices" }
            gold = { field = "gold" }
            [prompt]
            template = "{q}"
            [fewshot]
            "#,
            PathBuf::from("toy.toml"),
        )
        .unwrap();
        let config = RunConfig {
            data_root: dir.to_path_buf(),
            out_dir: dir.join("out"),
            model: ModelInfo {
                id: "negative-length".into(),
                sha256: None,
            },
            limit: Limit::All,
            num_fewshot: None,
        };
        (task, config)
    }

    /// A run with a new test engine and no progress display.
    fn run_fresh(tasks: &[Task], config: &RunConfig) -> Result<Results> {
        run(
            &mut NegativeLengthScorer::default(),
            tasks,
            config,
            &mut |_| {},
        )
    }

    fn lines(path: &Path) -> Vec<SampleRecord> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn scores_records_and_summarises() {
        let dir = tempfile::tempdir().unwrap();
        let (task, config) = fixture(dir.path(), 10);
        let mut engine = NegativeLengthScorer::default();
        let mut seen = Vec::new();
        let results = run(&mut engine, &[task], &config, &mut |p| seen.push(p.done)).unwrap();
        // The shorter option always wins: right on the 5 even documents.
        assert_eq!(results.metric("toy", "acc"), Some(0.5));
        let se = results.results["toy"]["acc_stderr"].as_f64().unwrap();
        assert!((se - (0.25f64 * 10.0 / 9.0).sqrt() / 10f64.sqrt()).abs() < 1e-12);
        assert_eq!(seen, (0..=10).collect::<Vec<_>>());
        assert_eq!(engine.calls, 10);
        let records = lines(&config.out_dir.join("samples/toy.jsonl"));
        assert_eq!(records.len(), 10);
        assert_eq!(records[1].doc_id, "d1");
        assert_eq!(records[1].continuations[1].continuation, " 훨씬 더 길다");
        assert_eq!(records[1].answers[0].prediction, Some(0));
        assert_eq!(records[1].answers[0].gold, vec![1]);
        assert_eq!(records[1].metrics["acc"], 0.0);
        let saved = Results::load(&config.out_dir.join("results.json")).unwrap();
        assert_eq!(saved, results);
        assert_eq!(saved.n_samples["toy"].effective, 10);
        assert_eq!(saved.configs["toy"].limit, None);
    }

    #[test]
    fn results_reload_bit_for_bit() {
        // The default (fast) float parser reads 1.1630000000000001e-6 back one ulp off.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        let mut results = Results::new(ModelInfo {
            id: "m".into(),
            sha256: None,
        });
        results
            .scoring_seconds
            .insert("toy".into(), 1.163_000_000_000_000_1e-6);
        results.scoring_seconds.insert("other".into(), 0.1 + 0.2);
        results.write(&path).unwrap();
        assert_eq!(Results::load(&path).unwrap(), results);
    }

    #[test]
    fn resumes_without_rescoring_or_duplicating() {
        let dir = tempfile::tempdir().unwrap();
        let (task, config) = fixture(dir.path(), 10);
        let tasks = [task];
        let mut first = NegativeLengthScorer::default();
        let partial = RunConfig {
            limit: Limit::First(4),
            ..config.clone()
        };
        run(&mut first, &tasks, &partial, &mut |_| {}).unwrap();
        assert_eq!(first.calls, 4);
        // A killed run: half of the next record is on disk.
        let samples = config.out_dir.join("samples/toy.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&samples)
            .unwrap();
        f.write_all(br#"{"doc_index": 4, "doc_id": "d4", "cont"#)
            .unwrap();
        drop(f);

        let mut second = NegativeLengthScorer::default();
        let mut resumed = 0;
        let full = run(&mut second, &tasks, &config, &mut |p| resumed = p.resumed).unwrap();
        assert_eq!(
            second.calls, 6,
            "only the six unrecorded documents are scored"
        );
        assert_eq!(resumed, 4);
        let records = lines(&samples);
        let indices: Vec<usize> = records.iter().map(|r| r.doc_index).collect();
        assert_eq!(indices, (0..10).collect::<Vec<_>>());

        // the scoring time counts every record, also those of the run it continued
        let recorded: f64 = records.iter().map(|r| r.seconds).sum();
        assert!(records.iter().all(|r| r.seconds >= 0.0));
        assert!((full.scoring_seconds["toy"] - recorded).abs() < 1e-9);

        let mut third = NegativeLengthScorer::default();
        let again = run(&mut third, &tasks, &config, &mut |_| {}).unwrap();
        assert_eq!(third.calls, 0);
        assert_eq!(again.results, full.results);
        assert_eq!(again.scoring_seconds, full.scoring_seconds);
        assert_eq!(lines(&samples).len(), 10);
    }

    #[test]
    fn a_changed_prompt_is_not_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let (task, config) = fixture(dir.path(), 4);
        let tasks = [task];
        run_fresh(&tasks, &config).unwrap();
        let two_shot = RunConfig {
            num_fewshot: Some(2),
            ..config
        };
        let err = run_fresh(&tasks, &two_shot);
        assert!(matches!(err, Err(EvalError::Records { .. })), "{err:?}");
    }

    #[test]
    fn a_corrupt_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (task, config) = fixture(dir.path(), 3);
        let tasks = [task];
        run_fresh(&tasks, &config).unwrap();
        let samples = config.out_dir.join("samples/toy.jsonl");
        let text = std::fs::read_to_string(&samples).unwrap();
        std::fs::write(&samples, format!("garbage\n{text}")).unwrap();
        let err = run_fresh(&tasks, &config);
        assert!(matches!(err, Err(EvalError::Records { .. })), "{err:?}");
    }

    #[test]
    fn quick_and_first_limits() {
        let dir = tempfile::tempdir().unwrap();
        let (task, _) = fixture(dir.path(), 10);
        assert_eq!(select(&task, 10, Limit::Quick), vec![0, 3, 6]);
        assert_eq!(select(&task, 10, Limit::First(4)), vec![0, 1, 2, 3]);
        assert_eq!(select(&task, 2, Limit::Quick), vec![0, 1]);
        assert_eq!(select(&task, 2, Limit::First(5)), vec![0, 1]);
    }

    #[test]
    fn wrong_engine_answers_are_errors() {
        struct Short;
        impl LogLikelihood for Short {
            fn loglikelihood(&mut self, _: &str, _: &[String]) -> Result<Vec<Scored>> {
                Ok(vec![Scored {
                    logprob: -1.0,
                    is_greedy: false,
                    tokens: 1,
                }])
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let (task, config) = fixture(dir.path(), 2);
        let err = run(&mut Short, &[task], &config, &mut |_| {});
        assert!(matches!(err, Err(EvalError::Engine(_))));
    }

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_451_045), "2026-11-23T16:24:05Z");
    }
}
