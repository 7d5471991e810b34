//! CI gates: per-task metric thresholds in TOML, checked against a run's results, so a
//! deployment is blocked when a model or prompt change makes a score fall short.
//!
//! One table per task; a metric is a bare number (a minimum) or `{ min = …, max = … }`:
//! `[kobest_copa]` `acc = 0.5`, `[rag]` `hallucination_rate = { max = 0.02 }`.

use crate::error::{EvalError, Result};
use crate::runner::Results;
use std::fmt;
use std::path::{Path, PathBuf};

/// A parsed gate file.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub path: PathBuf,
    pub thresholds: Vec<Threshold>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub task: String,
    pub metric: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// The verdict on one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    /// The task ran but did not report the metric: the gate names something not measured.
    Missing,
    /// The task was not part of this run; not a failure.
    NotRun,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub threshold: Threshold,
    pub value: Option<f64>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GateReport {
    pub checks: Vec<Check>,
}

impl GateReport {
    /// True when no threshold failed and none named a metric the run lacks.
    pub fn passed(&self) -> bool {
        self.shortfalls().next().is_none()
    }

    /// The checks that block: failed or missing.
    pub fn shortfalls(&self) -> impl Iterator<Item = &Check> {
        self.checks
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Fail | Outcome::Missing))
    }
}

impl Threshold {
    /// What the threshold wants, as people read it: `>= 0.5`, `<= 0.02`, `in [0.1, 0.9]`.
    pub fn bound(&self) -> String {
        match (self.min, self.max) {
            (Some(lo), Some(hi)) => format!("in [{lo}, {hi}]"),
            (Some(lo), None) => format!(">= {lo}"),
            (None, Some(hi)) => format!("<= {hi}"),
            (None, None) => String::new(),
        }
    }
}

impl Gate {
    pub fn load(path: &Path) -> Result<Gate> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        Gate::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Gate> {
        let bad = |detail: String| EvalError::Gate {
            path: path.to_path_buf(),
            detail,
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut thresholds = Vec::new();
        for (task, metrics) in &table {
            let metrics = metrics
                .as_table()
                .ok_or_else(|| bad(format!("`{task}` must be a table of metric thresholds")))?;
            for (metric, bound) in metrics {
                let at = format!("{task}.{metric}");
                let (min, max) = match bound {
                    toml::Value::Table(t) => {
                        if let Some(k) = t.keys().find(|k| *k != "min" && *k != "max") {
                            return Err(bad(format!("{at}: unknown key `{k}` (min, max)")));
                        }
                        let get = |k: &str| t.get(k).map(|v| number(v, &at)).transpose();
                        (get("min").map_err(&bad)?, get("max").map_err(&bad)?)
                    }
                    v => (Some(number(v, &at).map_err(&bad)?), None),
                };
                match (min, max) {
                    (None, None) => return Err(bad(format!("{at}: give `min` or `max`"))),
                    (Some(lo), Some(hi)) if lo > hi => {
                        return Err(bad(format!("{at}: min {lo} is above max {hi}")))
                    }
                    _ => {}
                }
                thresholds.push(Threshold {
                    task: task.clone(),
                    metric: metric.clone(),
                    min,
                    max,
                });
            }
        }
        Ok(Gate {
            path: path.to_path_buf(),
            thresholds,
        })
    }

    pub fn check(&self, results: &Results) -> GateReport {
        let checks = self
            .thresholds
            .iter()
            .map(|t| {
                let value = results.metric(&t.task, &t.metric);
                let outcome = match value {
                    _ if !results.results.contains_key(&t.task) => Outcome::NotRun,
                    None => Outcome::Missing,
                    Some(v) if t.min.is_some_and(|lo| v < lo) || t.max.is_some_and(|hi| v > hi) => {
                        Outcome::Fail
                    }
                    Some(_) => Outcome::Pass,
                };
                Check {
                    threshold: t.clone(),
                    value,
                    outcome,
                }
            })
            .collect();
        GateReport { checks }
    }
}

fn number(v: &toml::Value, at: &str) -> std::result::Result<f64, String> {
    let x = match v {
        toml::Value::Float(f) => *f,
        toml::Value::Integer(i) => *i as f64,
        _ => return Err(format!("{at}: {v} is not a number")),
    };
    if x.is_nan() {
        return Err(format!("{at}: NaN is not a threshold"));
    }
    Ok(x)
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.threshold;
        let bound = t.bound();
        let verdict = match self.outcome {
            Outcome::Pass => "ok",
            Outcome::Fail => "FAIL",
            Outcome::Missing => "MISSING",
            Outcome::NotRun => "not run",
        };
        match self.value {
            Some(v) => write!(
                f,
                "{verdict}: {}.{} = {v:.4}, want {bound}",
                t.task, t.metric
            ),
            None => write!(f, "{verdict}: {}.{} (want {bound})", t.task, t.metric),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::ModelInfo;
    use serde_json::Value;

    fn results(pairs: &[(&str, &str, f64)]) -> Results {
        let mut r = Results::new(ModelInfo {
            id: "m".into(),
            sha256: None,
        });
        for (task, metric, v) in pairs {
            r.results
                .entry(task.to_string())
                .or_default()
                .insert(metric.to_string(), Value::from(*v));
        }
        r
    }

    fn gate(text: &str) -> Result<Gate> {
        Gate::parse(text, Path::new("gate.toml"))
    }

    #[test]
    fn passes_and_fails_by_bound() {
        let g = gate(
            "[kobest_copa]\nacc = 0.5\n[truthfulqa_mc]\nmc2 = { min = 0.30 }\n\
             [rag]\nhallucination_rate = { max = 0.02 }\nleaks = { max = 0 }\n",
        )
        .unwrap();
        let ok = results(&[
            ("kobest_copa", "acc", 0.5),
            ("truthfulqa_mc", "mc2", 0.41),
            ("rag", "hallucination_rate", 0.01),
            ("rag", "leaks", 0.0),
        ]);
        assert!(g.check(&ok).passed());
        let bad = results(&[
            ("kobest_copa", "acc", 0.49),
            ("truthfulqa_mc", "mc2", 0.41),
            ("rag", "hallucination_rate", 0.05),
            ("rag", "leaks", 0.0),
        ]);
        let report = g.check(&bad);
        assert!(!report.passed());
        let short: Vec<String> = report.shortfalls().map(|c| c.to_string()).collect();
        assert_eq!(
            short,
            vec![
                "FAIL: kobest_copa.acc = 0.4900, want >= 0.5",
                "FAIL: rag.hallucination_rate = 0.0500, want <= 0.02",
            ]
        );
    }

    #[test]
    fn tasks_not_run_are_skipped_but_missing_metrics_block() {
        let g = gate("[kobest_copa]\nacc = 0.5\n[kobest_wic]\nacc = 0.5\n").unwrap();
        let r = results(&[("kobest_copa", "acc_norm", 0.9)]);
        let report = g.check(&r);
        let outcomes: Vec<Outcome> = report.checks.iter().map(|c| c.outcome).collect();
        assert_eq!(outcomes, vec![Outcome::Missing, Outcome::NotRun]);
        assert!(!report.passed());
    }

    #[test]
    fn malformed_gates_are_errors() {
        for text in [
            "acc = 0.5",
            "[t]\nacc = \"high\"",
            "[t]\nacc = { least = 0.5 }",
            "[t]\nacc = {}",
            "[t]\nacc = { min = 0.9, max = 0.1 }",
            "[t]\nacc = nan",
            "[t\nacc = 1",
        ] {
            assert!(
                matches!(gate(text), Err(EvalError::Gate { .. })),
                "{text:?} should be rejected"
            );
        }
    }
}
