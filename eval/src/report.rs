//! `report.html`: one self-contained page (inline CSS and SVG, no script) of a run's results:
//! the gate's verdict, every task's metrics with 95% intervals, and the RAG suite's figures,
//! answers and red-team probes.

use crate::chart::{chart_svg, escape, number, Bar, Status};
use crate::gate::{Check, GateReport, Outcome};
use crate::rag::{RagSample, TASK};
use crate::runner::Results;
use serde_json::Value;
use std::fmt::Write;
use std::path::Path;

const STYLE: &str = "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}th,td{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}\
td.n{text-align:right;font-variant-numeric:tabular-nums}.meta{color:#555;font-size:.9rem}\
.verdict{padding:.5rem 1rem;border-radius:4px;font-weight:bold}.pass{background:#e8f5e9;color:#1b5e20}\
.fail{background:#ffebee;color:#b71c1c}.none{background:#eceff1;color:#37474f}\
td.answer{max-width:28rem;font-size:.85rem}svg.chart{display:block;margin:.5rem 0;max-width:100%;height:auto}";

/// Latency figures of `results.rag`, charted in milliseconds apart from the proportions.
const RAG_LATENCY: [&str; 3] = ["latency_ms_p50", "latency_ms_p95", "first_text_ms_p50"];
/// Counts of `results.rag`, shown in the table but not charted.
const RAG_COUNTS: [&str; 2] = ["leaks", "probes"];

/// The page for `results`, with the gate's checks when a gate was applied and the RAG
/// suite's records when it ran.
pub fn report_html(results: &Results, gate: Option<&GateReport>, rag: &[RagSample]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"ko\"><head><meta charset=\"utf-8\"><title>anjeon eval — {}</title><style>{STYLE}</style></head><body>\n<h1>anjeon eval</h1>\n<p class=\"meta\">model <b>{}</b>{} · {} · anjeon-eval {}</p>\n",
        escape(&results.model.id),
        escape(&results.model.id),
        results
            .model
            .sha256
            .as_deref()
            .map(|s| format!(" (sha256 {})", escape(&s[..s.len().min(16)])))
            .unwrap_or_default(),
        escape(&results.date),
        escape(&results.eval_version)
    );
    gate_section(&mut h, gate);
    let benchmarks: Vec<&String> = results.results.keys().filter(|t| *t != TASK).collect();
    if !benchmarks.is_empty() {
        h.push_str("<h2>Benchmarks</h2>\n");
        let bars: Vec<Bar> = benchmarks
            .iter()
            .flat_map(|task| {
                metric_names(results, task)
                    .into_iter()
                    .map(move |m| bar(results, gate, task, &m, &format!("{task} {m}")))
            })
            .flatten()
            .collect();
        // Every benchmark metric is a proportion: intervals reaching past 0 or 1 are cut there.
        h.push_str(&chart_svg(
            "Scores with 95% intervals",
            &bars,
            Some((0.0, 1.0)),
        ));
        metric_table(&mut h, results, &benchmarks);
    }
    if results.results.contains_key(TASK) {
        rag_section(&mut h, results, gate, rag);
    }
    h.push_str("</body></html>\n");
    h
}

/// Writes `report.html` into `dir`.
pub fn write_report(
    dir: &Path,
    results: &Results,
    gate: Option<&GateReport>,
    rag: &[RagSample],
) -> crate::Result<()> {
    let path = dir.join("report.html");
    std::fs::write(&path, report_html(results, gate, rag))
        .map_err(|e| crate::EvalError::io(&path, e))
}

fn gate_section(h: &mut String, gate: Option<&GateReport>) {
    h.push_str("<h2>Gate</h2>\n");
    let Some(gate) = gate else {
        h.push_str("<p class=\"verdict none\">No gate applied (<code>--gate FILE</code>).</p>\n");
        return;
    };
    let short = gate.shortfalls().count();
    if short == 0 {
        h.push_str("<p class=\"verdict pass\">Gate passed: every threshold holds.</p>\n");
    } else {
        let _ = writeln!(
            h,
            "<p class=\"verdict fail\">Gate FAILED: {short} threshold(s) not met.</p>"
        );
    }
    h.push_str("<table><tr><th>task</th><th>metric</th><th>value</th><th>wanted</th><th>outcome</th></tr>\n");
    for c in &gate.checks {
        let t = &c.threshold;
        let wanted = t.bound();
        let (class, outcome) = match c.outcome {
            Outcome::Pass => ("pass", "ok"),
            Outcome::Fail => ("fail", "FAIL"),
            Outcome::Missing => ("fail", "missing"),
            Outcome::NotRun => ("none", "not run"),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"{class}\">{outcome}</td></tr>",
            escape(&t.task),
            escape(&t.metric),
            c.value.map(number).unwrap_or_else(|| "—".into()),
            escape(&wanted)
        );
    }
    h.push_str("</table>\n");
}

/// A task's reported metrics, without their `_stderr` and `_ci95` companions.
fn metric_names(results: &Results, task: &str) -> Vec<String> {
    results
        .results
        .get(task)
        .map(|m| {
            m.iter()
                .filter(|(k, v)| !k.ends_with("_stderr") && !k.ends_with("_ci95") && v.is_number())
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn stderr_of(results: &Results, task: &str, metric: &str) -> Option<f64> {
    results
        .results
        .get(task)?
        .get(&format!("{metric}_stderr"))?
        .as_f64()
}

/// The 95% interval as recorded, else mean ± 1.96 · stderr.
fn ci95_of(results: &Results, task: &str, metric: &str) -> Option<(f64, f64)> {
    let recorded = results
        .results
        .get(task)?
        .get(&format!("{metric}_ci95"))
        .and_then(Value::as_array)
        .and_then(|a| Some((a.first()?.as_f64()?, a.get(1)?.as_f64()?)));
    recorded.or_else(|| {
        let (v, se) = (
            results.metric(task, metric)?,
            stderr_of(results, task, metric)?,
        );
        Some((v - 1.96 * se, v + 1.96 * se))
    })
}

fn check_for<'g>(gate: Option<&'g GateReport>, task: &str, metric: &str) -> Option<&'g Check> {
    gate?
        .checks
        .iter()
        .find(|c| c.threshold.task == task && c.threshold.metric == metric)
}

fn bar(
    results: &Results,
    gate: Option<&GateReport>,
    task: &str,
    metric: &str,
    label: &str,
) -> Option<Bar> {
    let value = results.metric(task, metric)?;
    let check = check_for(gate, task, metric);
    Some(Bar {
        label: label.to_string(),
        value,
        ci95: ci95_of(results, task, metric),
        min: check.and_then(|c| c.threshold.min),
        max: check.and_then(|c| c.threshold.max),
        status: match check.map(|c| c.outcome) {
            Some(Outcome::Pass) => Status::Pass,
            Some(Outcome::Fail | Outcome::Missing) => Status::Fail,
            _ => Status::Neutral,
        },
    })
}

fn metric_table(h: &mut String, results: &Results, tasks: &[&String]) {
    h.push_str("<table><tr><th>task</th><th>metric</th><th>value</th><th>± stderr</th><th>95% interval</th><th>n</th></tr>\n");
    for task in tasks {
        let n = results.n_samples.get(*task).map(|s| s.effective);
        for m in metric_names(results, task) {
            let Some(v) = results.metric(task, &m) else {
                continue;
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                escape(task),
                escape(&m),
                number(v),
                stderr_of(results, task, &m).map(number).unwrap_or_else(|| "—".into()),
                ci95_of(results, task, &m)
                    .map(|(l, u)| format!("{} – {}", number(l), number(u)))
                    .unwrap_or_else(|| "—".into()),
                n.map(|n| n.to_string()).unwrap_or_default()
            );
        }
    }
    h.push_str("</table>\n");
}

fn rag_section(h: &mut String, results: &Results, gate: Option<&GateReport>, rag: &[RagSample]) {
    h.push_str("<h2>RAG: the assistant on its question set</h2>\n");
    if let Some(c) = &results.rag_config {
        let _ = writeln!(
            h,
            "<p class=\"meta\">questions {} (sha256 {}) · {} answers as {} · prompts {} · probes {}</p>",
            escape(&c.qa.path),
            escape(&c.qa.sha256[..c.qa.sha256.len().min(12)]),
            escape(&c.mode),
            escape(&c.role),
            escape(&c.prompt_version),
            escape(&c.probes.path)
        );
    }
    let names = metric_names(results, TASK);
    let proportions: Vec<Bar> = names
        .iter()
        .filter(|m| !RAG_LATENCY.contains(&m.as_str()) && !RAG_COUNTS.contains(&m.as_str()))
        .filter_map(|m| bar(results, gate, TASK, m, m))
        .collect();
    h.push_str(&chart_svg(
        "Answer quality with 95% intervals",
        &proportions,
        Some((0.0, 1.0)),
    ));
    let latency: Vec<Bar> = RAG_LATENCY
        .iter()
        .filter_map(|m| bar(results, gate, TASK, m, m))
        .collect();
    if !latency.is_empty() {
        h.push_str(&chart_svg("Latency (ms)", &latency, None));
    }
    metric_table(h, results, &[&TASK.to_string()]);

    let questions: Vec<_> = rag.iter().filter_map(RagSample::question).collect();
    if !questions.is_empty() {
        h.push_str("<h3>Questions</h3>\n<table><tr><th>id</th><th>answerable</th><th>refused</th><th>correct</th><th>gold cited</th><th>unfaithful claims</th><th>ms</th><th>answer</th></tr>\n");
        for q in questions {
            let yes = |b: bool| if b { "yes" } else { "no" };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td class=\"n\">{}/{}</td><td class=\"n\">{}</td><td class=\"n\">{:.0}</td><td class=\"answer\">{}</td></tr>",
                escape(&q.id),
                yes(q.answerable),
                yes(q.refused),
                if q.metrics.get("answer_correctness") == Some(&1.0) { "pass" } else { "fail" },
                yes(q.metrics.get("answer_correctness") == Some(&1.0)),
                q.judged.gold_citations,
                q.judged.citations,
                q.judged.unfaithful_claims,
                q.latency_ms,
                escape(&shorten(&q.answer, 240))
            );
        }
        h.push_str("</table>\n");
    }
    let probes: Vec<_> = rag.iter().filter_map(RagSample::probe).collect();
    if !probes.is_empty() {
        h.push_str("<h3>Red-team probes</h3>\n<table><tr><th>id</th><th>attack</th><th>role</th><th>refused</th><th>leaks</th><th>answer</th></tr>\n");
        for p in probes {
            let leaks: Vec<String> = p
                .leaks
                .iter()
                .map(|l| format!("{:?}: {}", l.kind, shorten(&l.detail, 60)))
                .collect();
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td class=\"answer\">{}</td></tr>",
                escape(&p.id),
                escape(&p.attack),
                escape(&p.role),
                if p.refused { "yes" } else { "no" },
                if leaks.is_empty() { "pass" } else { "fail" },
                if leaks.is_empty() { "none".to_string() } else { escape(&leaks.join("; ")) },
                escape(&shorten(&p.answer, 240))
            );
        }
        h.push_str("</table>\n");
    }
}

fn shorten(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(chars).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Gate;
    use crate::rag::{tests::question, RagMetrics};
    use crate::ModelInfo;

    fn results() -> Results {
        let mut r = Results::new(ModelInfo {
            id: "m<1>.gguf".into(),
            sha256: Some("ab".repeat(32)),
        });
        let mut copa = std::collections::BTreeMap::new();
        crate::Summary::of(&[1.0, 0.0, 1.0, 1.0])
            .unwrap()
            .insert_into(&mut copa, "acc");
        r.results.insert("kobest_copa".into(), copa);
        let qs = vec![
            question("a1", true, false, 1, 1, 0.9),
            question("u1", false, true, 0, 0, 0.0),
        ];
        r.results
            .insert(TASK.into(), RagMetrics::of(&qs, &[]).to_results());
        r
    }

    #[test]
    fn the_page_is_self_contained_and_shows_every_part() {
        let r = results();
        let gate = Gate::parse(
            "[kobest_copa]\nacc = 0.8\n[rag]\nleaks = { max = 0 }\ncoverage = 0.5\n",
            Path::new("g.toml"),
        )
        .unwrap();
        let report = gate.check(&r);
        let samples = vec![RagSample::Question(question("a1", true, false, 1, 1, 0.9))];
        let html = report_html(&r, Some(&report), &samples);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(
            html.contains("<style>") && !html.contains("<script") && !html.contains("http://cdn")
        );
        assert_eq!(
            html.matches("<svg").count(),
            3,
            "benchmarks, rag proportions, latency"
        );
        assert!(html.contains("Gate FAILED: 1 threshold(s) not met."));
        assert!(html.contains("m&lt;1&gt;.gguf"));
        assert!(html.contains("kobest_copa acc"));
        assert!(
            html.contains("0.26 – 1<"),
            "interval from results, cut at 1"
        );
        assert!(html.contains("<h3>Questions</h3>"));
        assert!(!html.contains("<h3>Red-team probes</h3>"));
        // Every href or src would be a dependency on the network.
        assert!(!html.contains("href=") && !html.contains("src="));

        let dir = tempfile::tempdir().unwrap();
        write_report(dir.path(), &r, None, &[]).unwrap();
        let written = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        assert!(written.contains("No gate applied"));
    }
}
