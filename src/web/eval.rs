//! The eval report (`/eval`): runs found under `web.eval_dir` (folders written by `anjeon
//! eval --out DIR`), each task's metrics as bars with 95% intervals, the gate's verdict,
//! two runs side by side (`?a=RUN&b=RUN`), and each task's items (`/eval/{run}/{task}`).

use super::{render, HtmlError, Layout, PageCaller};
use crate::error::{Error, Result};
use crate::server::AppState;
use anjeon_eval::chart::{chart_svg_with, number, Bar, Layout as ChartLayout, Status};
use anjeon_eval::{Gate, Outcome, Results, SampleRecord};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

/// Runs listed on the report, newest first.
const MAX_RUNS: usize = 20;
/// Items per page of a task's drill-down.
const ITEMS_PER_PAGE: usize = 50;

/// The repository's CI gate, used when no gate is configured or found beside the runs.
const BUILTIN_GATE: &str = include_str!("../../eval/gate.toml");

/// One run folder with its results.
struct Run {
    name: String,
    results: Results,
}

/// The runs under `dir`, newest first; folders without a readable `results.json` are
/// left out.
fn load_runs(dir: &std::path::Path) -> Vec<Run> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut runs: Vec<Run> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("results.json").is_file())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let results = Results::load(&e.path().join("results.json")).ok()?;
            Some(Run { name, results })
        })
        .collect();
    runs.sort_by(|a, b| {
        b.results
            .date
            .cmp(&a.results.date)
            .then(a.name.cmp(&b.name))
    });
    runs
}

fn gate(state: &AppState, eval_dir: &std::path::Path) -> Result<Gate> {
    let configured = &state.web.config.eval_gate;
    if !configured.is_empty() {
        return Ok(Gate::load(std::path::Path::new(configured))?);
    }
    let beside = eval_dir.join("gate.toml");
    if beside.is_file() {
        return Ok(Gate::load(&beside)?);
    }
    Ok(Gate::parse(
        BUILTIN_GATE,
        std::path::Path::new("eval/gate.toml"),
    )?)
}

/// A metric of a task: the value, its interval, and the gate's say.
struct MetricRow {
    task: String,
    metric: String,
    value: f64,
    ci95: Option<(f64, f64)>,
    stderr: Option<f64>,
    n: usize,
    bound: String,
    outcome: &'static str,
    outcome_class: &'static str,
    href: String,
}

impl MetricRow {
    fn value_text(&self) -> String {
        number(self.value)
    }

    fn ci_text(&self) -> String {
        self.ci95
            .map(|(a, b)| format!("{}–{}", number(a), number(b)))
            .unwrap_or_else(|| "–".into())
    }

    fn stderr_text(&self) -> String {
        self.stderr.map(number).unwrap_or_else(|| "–".into())
    }
}

/// The metric rows of a run (every metric the tasks reported, not their stderr or ci95).
fn metric_rows(run: &Run, gate: &Gate) -> Vec<MetricRow> {
    let mut rows = Vec::new();
    let report = gate.check(&run.results);
    for (task, metrics) in &run.results.results {
        for (metric, value) in metrics {
            if metric.ends_with("_stderr") || metric.ends_with("_ci95") {
                continue;
            }
            let Some(value) = value.as_f64() else {
                continue;
            };
            let ci95 = metrics
                .get(&format!("{metric}_ci95"))
                .and_then(|v| v.as_array())
                .and_then(|a| Some((a.first()?.as_f64()?, a.get(1)?.as_f64()?)))
                // runs written before intervals were cut to [0, 1]
                .map(|(lo, hi)| (lo.clamp(0.0, 1.0), hi.clamp(0.0, 1.0)));
            let stderr = metrics
                .get(&format!("{metric}_stderr"))
                .and_then(|v| v.as_f64());
            let check = report
                .checks
                .iter()
                .find(|c| c.threshold.task == *task && c.threshold.metric == *metric);
            let (outcome, outcome_class) = match check.map(|c| c.outcome) {
                Some(Outcome::Pass) => ("통과", "pass"),
                Some(Outcome::Fail) => ("미달", "fail"),
                Some(Outcome::Missing) => ("값 없음", "fail"),
                Some(Outcome::NotRun) | None => ("기준 없음", "none"),
            };
            let bound = check
                .map(|c| match (c.threshold.min, c.threshold.max) {
                    (Some(lo), Some(hi)) => format!("{}–{}", number(lo), number(hi)),
                    (Some(lo), None) => format!("≥ {}", number(lo)),
                    (None, Some(hi)) => format!("≤ {}", number(hi)),
                    (None, None) => String::new(),
                })
                .unwrap_or_default();
            rows.push(MetricRow {
                task: task.clone(),
                metric: metric.clone(),
                value,
                ci95,
                stderr,
                n: run.results.n_samples.get(task).map_or(0, |n| n.effective),
                bound,
                outcome,
                outcome_class,
                href: format!(
                    "/eval/{}/{}",
                    super::percent_encode(&run.name),
                    super::percent_encode(task)
                ),
            });
        }
    }
    rows
}

fn bars(rows: &[MetricRow], gate: &Gate, suffix: &str) -> Vec<Bar> {
    rows.iter()
        .map(|r| {
            let t = gate
                .thresholds
                .iter()
                .find(|t| t.task == r.task && t.metric == r.metric);
            Bar {
                label: format!("{} {}{suffix}", r.task, r.metric),
                value: r.value,
                ci95: r.ci95,
                min: t.and_then(|t| t.min),
                max: t.and_then(|t| t.max),
                status: match r.outcome_class {
                    "pass" => Status::Pass,
                    "fail" => Status::Fail,
                    _ => Status::Neutral,
                },
            }
        })
        .collect()
}

struct RunView {
    name: String,
    model: String,
    date: String,
    gate: &'static str,
    gate_class: &'static str,
    rows: Vec<MetricRow>,
    chart: String,
}

struct CompareRow {
    task: String,
    metric: String,
    a: String,
    a_ci: String,
    b: String,
    b_ci: String,
    delta: String,
    /// Whether the two 95% intervals do not overlap.
    clear: bool,
}

struct Comparison {
    a: String,
    b: String,
    a_model: String,
    b_model: String,
    rows: Vec<CompareRow>,
    chart: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EvalParams {
    a: String,
    b: String,
}

#[derive(Template)]
#[template(path = "eval.html")]
struct EvalPage {
    layout: Layout,
    /// The runs folder and the gate file, for admins.
    folders: Option<(String, String)>,
    runs: Vec<RunView>,
    names: Vec<String>,
    comparison: Option<Comparison>,
    params: EvalParams,
}

fn run_view(run: &Run, gate: &Gate) -> RunView {
    let rows = metric_rows(run, gate);
    let judged: Vec<&MetricRow> = rows.iter().filter(|r| r.outcome_class != "none").collect();
    let (g, class) = if judged.is_empty() {
        ("기준 없음", "none")
    } else if judged.iter().all(|r| r.outcome_class == "pass") {
        ("통과", "pass")
    } else {
        ("미달", "fail")
    };
    let chart = chart(
        &format!("{} 과제별 점수와 95% 신뢰구간", run.name),
        &bars(&rows, gate, ""),
    );
    RunView {
        name: run.name.clone(),
        model: run.results.model.id.clone(),
        date: run
            .results
            .date
            .chars()
            .take(19)
            .collect::<String>()
            .replace('T', " "),
        gate: g,
        gate_class: class,
        rows,
        chart,
    }
}

fn compare(a: &Run, b: &Run, gate: &Gate) -> Comparison {
    let ra = metric_rows(a, gate);
    let rb = metric_rows(b, gate);
    let mut rows = Vec::new();
    let mut chart_bars = Vec::new();
    let mut keys: Vec<(String, String)> = ra
        .iter()
        .chain(&rb)
        .map(|r| (r.task.clone(), r.metric.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    for (task, metric) in keys {
        let find = |rows: &[MetricRow]| {
            rows.iter()
                .position(|r| r.task == task && r.metric == metric)
        };
        let (ia, ib) = (find(&ra), find(&rb));
        let (va, vb) = (ia.map(|i| &ra[i]), ib.map(|i| &rb[i]));
        let clear = match (va.and_then(|r| r.ci95), vb.and_then(|r| r.ci95)) {
            (Some((a0, a1)), Some((b0, b1))) => a1 < b0 || b1 < a0,
            _ => false,
        };
        rows.push(CompareRow {
            task: task.clone(),
            metric: metric.clone(),
            a: va.map(MetricRow::value_text).unwrap_or_else(|| "–".into()),
            a_ci: va.map(MetricRow::ci_text).unwrap_or_default(),
            b: vb.map(MetricRow::value_text).unwrap_or_else(|| "–".into()),
            b_ci: vb.map(MetricRow::ci_text).unwrap_or_default(),
            delta: match (va, vb) {
                (Some(x), Some(y)) => {
                    let d = y.value - x.value;
                    format!("{}{}", if d > 0.0 { "+" } else { "" }, number(d))
                }
                _ => "–".into(),
            },
            clear,
        });
        if let Some(i) = ia {
            chart_bars.extend(bars(&ra[i..=i], gate, " (A)"));
        }
        if let Some(i) = ib {
            chart_bars.extend(bars(&rb[i..=i], gate, " (B)"));
        }
    }
    Comparison {
        a: a.name.clone(),
        b: b.name.clone(),
        a_model: a.results.model.id.clone(),
        b_model: b.results.model.id.clone(),
        chart: chart(
            &format!("{} (A)와 {} (B) 비교", a.name, b.name),
            &chart_bars,
        ),
        rows,
    }
}

/// The chart twice: labels beside the bars for wide screens, above them for phones (the
/// stylesheet shows one).
fn chart(title: &str, bars: &[Bar]) -> String {
    format!(
        r#"<div class="chart-wide">{}</div><div class="chart-narrow">{}</div>"#,
        chart_svg_with(ChartLayout::Wide, title, bars, None),
        chart_svg_with(ChartLayout::Narrow, title, bars, None)
    )
}

fn eval_dir(state: &AppState) -> PathBuf {
    state.web.config.eval_path(&state.web.data_dir)
}

/// `GET /eval` and `GET /eval?a=RUN&b=RUN`.
pub async fn index(
    State(state): State<Arc<AppState>>,
    PageCaller(caller): PageCaller,
    Query(params): Query<EvalParams>,
) -> Result<Response, HtmlError> {
    let dir = eval_dir(&state);
    let gate = gate(&state, &dir)?;
    let worker_dir = dir.clone();
    let runs = tokio::task::spawn_blocking(move || load_runs(&worker_dir))
        .await
        .map_err(|e| Error::Config(format!("eval listing failed: {e}")))?;
    let names = runs.iter().map(|r| r.name.clone()).collect();
    let comparison = if !params.a.is_empty() && !params.b.is_empty() {
        let find = |n: &str| {
            runs.iter()
                .find(|r| r.name == n)
                .ok_or_else(|| Error::NotFound(format!("평가 실행 '{n}'이(가) 없습니다")))
        };
        Some(compare(find(&params.a)?, find(&params.b)?, &gate))
    } else {
        None
    };
    let views = runs
        .iter()
        .take(MAX_RUNS)
        .map(|r| run_view(r, &gate))
        .collect();
    let admin = caller.role == crate::auth::Role::Admin;
    Ok(render(&EvalPage {
        layout: Layout::of(&caller, "eval"),
        // the server's folders are shown to admins only
        folders: admin.then(|| (dir.display().to_string(), gate.path.display().to_string())),
        runs: views,
        names,
        comparison,
        params,
    }))
}

struct Choice {
    text: String,
    logprob: String,
    greedy: bool,
    gold: bool,
    predicted: bool,
}

struct AnswerSet {
    name: String,
    choices: Vec<Choice>,
    correct: bool,
}

struct Item {
    id: String,
    prompt: String,
    sets: Vec<AnswerSet>,
    metrics: String,
}

#[derive(Template)]
#[template(path = "eval_task.html")]
struct TaskPage {
    layout: Layout,
    run: String,
    task: String,
    items: Vec<Item>,
    total: usize,
    page: usize,
    pages: usize,
    prev: String,
    next: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TaskParams {
    page: String,
}

/// A run or task name taken from the URL: a plain folder or file name.
fn plain_name(s: &str) -> Result<&str> {
    if s.is_empty() || s.starts_with('.') || s.contains(['/', '\\']) {
        return Err(Error::NotFound(format!("'{s}'을(를) 찾을 수 없습니다")));
    }
    Ok(s)
}

/// `GET /eval/{run}/{task}`: the task's items with their prompt, options, scores,
/// prediction and gold answer.
pub async fn task(
    State(state): State<Arc<AppState>>,
    PageCaller(caller): PageCaller,
    Path((run, task)): Path<(String, String)>,
    Query(params): Query<TaskParams>,
) -> Result<Response, HtmlError> {
    let path = eval_dir(&state)
        .join(plain_name(&run)?)
        .join("samples")
        .join(format!("{}.jsonl", plain_name(&task)?));
    let text = tokio::fs::read_to_string(&path).await.map_err(|_| {
        Error::NotFound(format!(
            "평가 실행 '{run}'에 과제 '{task}'의 기록이 없습니다"
        ))
    })?;
    let records: Vec<SampleRecord> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let total = records.len();
    let pages = total.div_ceil(ITEMS_PER_PAGE).max(1);
    let page = params.page.parse::<usize>().unwrap_or(1).clamp(1, pages);
    let items = records
        .into_iter()
        .skip((page - 1) * ITEMS_PER_PAGE)
        .take(ITEMS_PER_PAGE)
        .map(|r| Item {
            id: if r.doc_id.is_empty() {
                r.doc_index.to_string()
            } else {
                r.doc_id.clone()
            },
            sets: r
                .answers
                .iter()
                .map(|a| AnswerSet {
                    name: a.name.clone(),
                    correct: a.prediction.is_some_and(|p| a.gold.contains(&p)),
                    choices: a
                        .continuations
                        .iter()
                        .enumerate()
                        .filter_map(|(pos, &ci)| {
                            let c = r.continuations.get(ci)?;
                            Some(Choice {
                                text: c.choice.clone(),
                                logprob: format!("{:.3}", c.logprob),
                                greedy: c.is_greedy,
                                gold: a.gold.contains(&pos),
                                predicted: a.prediction == Some(pos),
                            })
                        })
                        .collect(),
                })
                .collect(),
            metrics: r
                .metrics
                .iter()
                .map(|(k, v)| format!("{k} {}", number(*v)))
                .collect::<Vec<_>>()
                .join(" · "),
            prompt: r.context,
        })
        .collect();
    let link = |p: usize| {
        format!(
            "/eval/{}/{}?page={p}",
            super::percent_encode(&run),
            super::percent_encode(&task)
        )
    };
    Ok(render(&TaskPage {
        layout: Layout::of(&caller, "eval"),
        prev: if page > 1 {
            link(page - 1)
        } else {
            String::new()
        },
        next: if page < pages {
            link(page + 1)
        } else {
            String::new()
        },
        run,
        task,
        items,
        total,
        page,
        pages,
    }))
}
