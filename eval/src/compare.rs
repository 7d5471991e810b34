//! Two runs side by side (two models, two prompt versions): every task and metric either
//! reports, the difference, and whether it is significant at the 5% level.
//!
//! When both runs kept per-item records (`samples/<task>.jsonl` beside `results.json`) and
//! the metric is a mean of per-item values, the test is paired on the items both scored:
//! McNemar's exact test when every value is 0 or 1 (accuracy on the same documents), else a
//! z-test on the mean of the paired differences. Otherwise it is a two-sample z-test on the
//! two standard errors. A metric without either (latency percentiles, counts) is shown
//! untested.

use crate::error::{EvalError, Result};
use crate::runner::Results;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Significance level of [`Comparison::significant`].
pub const ALPHA: f64 = 0.05;

/// A run as loaded for comparison: its results and, per task, per-item metric values.
#[derive(Debug, Clone)]
pub struct Run {
    pub path: PathBuf,
    pub results: Results,
    /// task → item key → metric → value.
    pub items: BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>,
}

impl Run {
    /// Reads `results.json` and every `samples/<task>.jsonl` next to it that exists.
    pub fn load(results_path: &Path) -> Result<Run> {
        let results = Results::load(results_path)?;
        let samples = results_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("samples");
        let mut items = BTreeMap::new();
        for task in results.results.keys() {
            let path = samples.join(format!("{task}.jsonl"));
            if path.is_file() {
                items.insert(task.clone(), read_items(&path)?);
            }
        }
        Ok(Run {
            path: results_path.to_path_buf(),
            results,
            items,
        })
    }
}

/// Per-item metric values of a samples file: a benchmark's records are keyed by
/// `doc_index/doc_id`, the RAG suite's question records by their `id`; lines without a
/// `metrics` object (probes) are skipped.
fn read_items(path: &Path) -> Result<BTreeMap<String, BTreeMap<String, f64>>> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| EvalError::Records {
            path: path.to_path_buf(),
            detail: format!("line {}: {e}", i + 1),
        })?;
        let Some(metrics) = v.get("metrics").and_then(Value::as_object) else {
            continue;
        };
        let key = match (v.get("doc_index"), v.get("doc_id"), v.get("id")) {
            (Some(index), Some(id), _) => format!("{index}/{}", id.as_str().unwrap_or("")),
            (_, _, Some(Value::String(id))) => id.clone(),
            _ => continue,
        };
        let values = metrics
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect();
        out.insert(key, values);
    }
    Ok(out)
}

/// Which test decided [`Comparison::p_value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    /// Exact McNemar on the items where the runs disagree.
    Mcnemar,
    /// z-test on the mean paired difference.
    PairedZ,
    /// z-test on the difference of means with both standard errors.
    TwoSampleZ,
}

/// One task and metric of the two runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub task: String,
    pub metric: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// `b − a`.
    pub difference: Option<f64>,
    pub test: Option<Test>,
    /// Items both runs scored, for a paired test.
    pub paired: Option<usize>,
    pub p_value: Option<f64>,
    pub significant: bool,
}

/// Every task and metric reported by either run, in order.
pub fn compare(a: &Run, b: &Run) -> Vec<Comparison> {
    let tasks: BTreeSet<&String> = a
        .results
        .results
        .keys()
        .chain(b.results.results.keys())
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        let names: BTreeSet<&String> = [&a.results, &b.results]
            .iter()
            .filter_map(|r| r.results.get(task))
            .flat_map(|m| m.iter())
            .filter(|(k, v)| !k.ends_with("_stderr") && !k.ends_with("_ci95") && v.is_number())
            .map(|(k, _)| k)
            .collect();
        for metric in names {
            let (va, vb) = (
                a.results.metric(task, metric),
                b.results.metric(task, metric),
            );
            let mut c = Comparison {
                task: task.clone(),
                metric: metric.clone(),
                a: va,
                b: vb,
                difference: va.zip(vb).map(|(x, y)| y - x),
                test: None,
                paired: None,
                p_value: None,
                significant: false,
            };
            if let Some((test, n, p)) = paired_test(a, b, task, metric) {
                (c.test, c.paired, c.p_value) = (Some(test), Some(n), Some(p));
            } else if let Some(p) = two_sample(a, b, task, metric) {
                (c.test, c.p_value) = (Some(Test::TwoSampleZ), Some(p));
            }
            c.significant = c.p_value.is_some_and(|p| p < ALPHA);
            out.push(c);
        }
    }
    out
}

/// A paired test on the items both runs recorded the metric for (at least two).
fn paired_test(a: &Run, b: &Run, task: &str, metric: &str) -> Option<(Test, usize, f64)> {
    let (ia, ib) = (a.items.get(task)?, b.items.get(task)?);
    let pairs: Vec<(f64, f64)> = ia
        .iter()
        .filter_map(|(key, ma)| Some((*ma.get(metric)?, *ib.get(key)?.get(metric)?)))
        .collect();
    if pairs.len() < 2 {
        return None;
    }
    let binary = pairs
        .iter()
        .all(|(x, y)| [*x, *y].iter().all(|v| *v == 0.0 || *v == 1.0));
    if binary {
        let only_a = pairs.iter().filter(|(x, y)| *x > *y).count();
        let only_b = pairs.iter().filter(|(x, y)| *y > *x).count();
        return Some((Test::Mcnemar, pairs.len(), mcnemar_exact(only_a, only_b)));
    }
    let diffs: Vec<f64> = pairs.iter().map(|(x, y)| y - x).collect();
    let s = crate::Summary::of(&diffs)?;
    let p = match s.stderr? {
        se if se > 0.0 => two_sided_p(s.mean / se),
        _ if s.mean == 0.0 => 1.0,
        _ => 0.0,
    };
    Some((Test::PairedZ, pairs.len(), p))
}

fn two_sample(a: &Run, b: &Run, task: &str, metric: &str) -> Option<f64> {
    let se = |r: &Results| {
        r.results
            .get(task)?
            .get(&format!("{metric}_stderr"))?
            .as_f64()
    };
    let (sa, sb) = (se(&a.results)?, se(&b.results)?);
    let (va, vb) = (
        a.results.metric(task, metric)?,
        b.results.metric(task, metric)?,
    );
    let se = (sa * sa + sb * sb).sqrt();
    (se > 0.0).then(|| two_sided_p((vb - va) / se))
}

/// Exact two-sided McNemar test: with `b` and `c` items right in only one run each, twice
/// the binomial(b + c, ½) tail at min(b, c), capped at 1.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // Σ_{i≤k} C(n, i) / 2ⁿ, in logarithms so large n does not underflow.
    let mut log_c = 0.0; // ln C(n, 0)
    let mut tail = 0.0;
    let ln_half_n = n as f64 * 0.5f64.ln();
    for i in 0..=k {
        if i > 0 {
            log_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (log_c + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// Two-sided p-value of a standard normal statistic.
pub fn two_sided_p(z: f64) -> f64 {
    erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0)
}

/// The complementary error function by Numerical Recipes' Chebyshev fit (`erfcc`),
/// fractional error below 1.2e-7 everywhere — ample for a p-value.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::ModelInfo;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() < tol
    }

    #[test]
    fn normal_tails_match_tables() {
        assert!(close(two_sided_p(1.959_964), 0.05, 1e-6));
        assert!(close(two_sided_p(0.0), 1.0, 1e-6));
        assert!(close(two_sided_p(-2.575_829), 0.01, 1e-6));
        assert!(close(two_sided_p(3.290_527), 0.001, 1e-6));
    }

    #[test]
    fn mcnemar_by_hand() {
        // 1 vs 9 discordant: 2 · (1 + 10) / 1024.
        assert!(close(mcnemar_exact(1, 9), 22.0 / 1024.0, 1e-12));
        assert_eq!(mcnemar_exact(5, 5), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // 0 vs 6: 2 / 64.
        assert!(close(mcnemar_exact(6, 0), 2.0 / 64.0, 1e-12));
        // Large n does not underflow: 480 vs 520 is not significant, 400 vs 600 is.
        assert!(mcnemar_exact(480, 520) > 0.2);
        assert!(mcnemar_exact(400, 600) < 1e-9);
    }

    /// A run of one task whose items score `values` (keys d0, d1, …).
    fn run(task: &str, metric: &str, values: &[f64], with_items: bool) -> Run {
        let mut results = Results::new(ModelInfo {
            id: "m".into(),
            sha256: None,
        });
        let mut m = BTreeMap::new();
        crate::Summary::of(values)
            .unwrap()
            .insert_into(&mut m, metric);
        m.insert("latency_ms_p50".into(), Value::from(10.0));
        results.results.insert(task.into(), m);
        let items = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("d{i}"), BTreeMap::from([(metric.to_string(), *v)])))
            .collect();
        Run {
            path: PathBuf::from("results.json"),
            results,
            items: if with_items {
                BTreeMap::from([(task.to_string(), items)])
            } else {
                BTreeMap::new()
            },
        }
    }

    #[test]
    fn paired_when_items_exist_else_two_sample() {
        let mut a_vals = vec![0.0; 20];
        let mut b_vals = vec![1.0; 20];
        a_vals[0] = 1.0;
        b_vals[19] = 0.0;
        let (a, b) = (
            run("t", "acc", &a_vals, true),
            run("t", "acc", &b_vals, true),
        );
        let out = compare(&a, &b);
        let acc = out.iter().find(|c| c.metric == "acc").unwrap();
        assert_eq!(acc.test, Some(Test::Mcnemar));
        assert_eq!(acc.paired, Some(20));
        assert!(close(acc.difference.unwrap(), 0.9, 1e-12));
        assert!(acc.significant, "{acc:?}");
        let latency = out.iter().find(|c| c.metric == "latency_ms_p50").unwrap();
        assert_eq!((latency.test, latency.significant), (None, false));
        assert_eq!(latency.difference, Some(0.0));

        let (a, b) = (
            run("t", "acc", &a_vals, false),
            run("t", "acc", &b_vals, true),
        );
        let acc = compare(&a, &b)
            .into_iter()
            .find(|c| c.metric == "acc")
            .unwrap();
        assert_eq!(acc.test, Some(Test::TwoSampleZ));
        assert!(acc.significant);

        // Continuous values: paired z on the differences.
        let a = run("t", "mc2", &[0.2, 0.4, 0.6, 0.5], true);
        let b = run("t", "mc2", &[0.21, 0.4, 0.62, 0.5], true);
        let mc2 = compare(&a, &b)
            .into_iter()
            .find(|c| c.metric == "mc2")
            .unwrap();
        assert_eq!(mc2.test, Some(Test::PairedZ));
        assert!(!mc2.significant);
        // A task only one run has: shown, untested.
        let other = run("u", "acc", &[1.0, 0.0], false);
        let out = compare(&a, &other);
        let t = out
            .iter()
            .find(|c| c.task == "t" && c.metric == "mc2")
            .unwrap();
        assert_eq!((t.b, t.difference, t.test), (None, None, None));
    }

    #[test]
    fn runs_load_with_their_samples() {
        let dir = tempfile::tempdir().unwrap();
        let r = run("rag", "coverage", &[1.0, 0.0], false);
        r.results.write(&dir.path().join("results.json")).unwrap();
        std::fs::create_dir_all(dir.path().join("samples")).unwrap();
        std::fs::write(
            dir.path().join("samples/rag.jsonl"),
            "{\"kind\":\"question\",\"id\":\"q1\",\"metrics\":{\"coverage\":1.0}}\n\
             {\"kind\":\"probe\",\"id\":\"p1\",\"leaks\":[]}\n",
        )
        .unwrap();
        let loaded = Run::load(&dir.path().join("results.json")).unwrap();
        assert_eq!(loaded.items["rag"].len(), 1);
        assert_eq!(loaded.items["rag"]["q1"]["coverage"], 1.0);
        assert!(Run::load(&dir.path().join("missing.json")).is_err());
    }
}
