//! End-to-end tests of `anjeon eval` on the real default model (gemma-3-270m from the asset
//! cache) and the real KoBEST COPA data: results.json's shape, resuming without duplicate
//! records, and the gate's exit codes (0 pass, 1 shortfall, 2 malformed gate or bad task);
//! and of `--suite rag` on real corpus files and the shared question set: its figures,
//! per-item records, red-team probes, report.html, gate and `--compare`.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn cache_dir() -> PathBuf {
    std::env::var_os("ANJEON_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".cache"))
}

/// `anjeon eval --tasks kobest_copa` into `out`, plus `args`.
fn eval(out: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_anjeon"))
        .env("ANJEON_CACHE_DIR", cache_dir())
        .env("ANJEON_DATA_DIR", out.join("data"))
        .env_remove("ANJEON_CONFIG")
        .env_remove("ANJEON_LLM_MODEL")
        .current_dir(out)
        .args(["eval", "--tasks", "kobest_copa", "--threads", "2", "--out"])
        .arg(out.join("run"))
        .arg("--data-root")
        .arg(root().join("../shared/bench"))
        .args(args)
        .output()
        .expect("run anjeon")
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn records(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("run/samples/kobest_copa.jsonl"))
        .expect("samples file")
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn eval_scores_resumes_and_gates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let gate = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    let pass = gate("pass.toml", "[kobest_copa]\nacc = 0.0\n");
    let fail = gate("fail.toml", "[kobest_copa]\nacc = { min = 1.01 }\n");
    let broken = gate("broken.toml", "[kobest_copa]\nacc = \"high\"\n");

    // Bad input is exit code 2, before any model is loaded.
    let out = eval(dir, &["--gate", &broken]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let out = eval(dir, &["--tasks", "no_such_task"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let out = eval(dir, &["--limit", "some"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));

    // A first run of four documents, then eight: the first four are taken from the records.
    let out = eval(dir, &["--limit", "4"]);
    assert!(out.status.success(), "{}", describe(&out));
    let first = records(dir);
    assert_eq!(first.len(), 4);

    let out = eval(dir, &["--limit", "8", "--gate", &pass, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["gate"]["passed"], true);
    let second = records(dir);
    assert_eq!(second.len(), 8, "no duplicate records");
    assert_eq!(
        &second[..4],
        first.as_slice(),
        "resumed records are kept as they were"
    );

    let results: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("run/results.json")).expect("results.json"),
    )
    .unwrap();
    assert_eq!(results, report["results"]);
    let copa = &results["results"]["kobest_copa"];
    let acc = copa["acc"].as_f64().expect("acc");
    assert!((0.0..=1.0).contains(&acc));
    assert!(copa["acc_stderr"]
        .as_f64()
        .is_some_and(|s| s > 0.0 && s < 0.5));
    assert_eq!(results["n-samples"]["kobest_copa"]["effective"], 8);
    assert_eq!(results["n-samples"]["kobest_copa"]["original"], 1000);
    assert_eq!(results["configs"]["kobest_copa"]["limit"], 8);
    assert_eq!(results["model"]["id"], "gemma-3-270m-q4_k_m.gguf");
    assert_eq!(
        results["model"]["sha256"],
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    );
    for line in &second {
        let r: Value = serde_json::from_str(line).unwrap();
        let conts = r["continuations"].as_array().unwrap();
        assert_eq!(conts.len(), 2);
        for c in conts {
            let lp = c["logprob"].as_f64().unwrap();
            assert!(lp < 0.0 && lp > -200.0, "{lp}");
            assert!(c["tokens"].as_u64().unwrap() > 0);
            assert!(c["continuation"].as_str().unwrap().starts_with(' '));
        }
        let prediction = r["answers"][0]["prediction"].as_u64().unwrap() as usize;
        let best = if conts[0]["logprob"].as_f64() >= conts[1]["logprob"].as_f64() {
            0
        } else {
            1
        };
        assert_eq!(prediction, best);
    }

    // Everything recorded: a failing gate is exit code 1, and nothing is scored again.
    let out = eval(dir, &["--limit", "8", "--gate", &fail]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("FAIL: kobest_copa.acc"),
        "{}",
        describe(&out)
    );
    assert_eq!(records(dir), second);
}

/// `anjeon eval --suite rag` over `data` with the shared question set, plus `args`.
fn eval_rag(data: &Path, args: &[&str]) -> Output {
    common::anjeon(data)
        .env_remove("ANJEON_EVAL_QA")
        .args(["eval", "--suite", "rag", "--qa"])
        .arg(root().join("../shared/qa/dev.jsonl"))
        .args(args)
        .output()
        .expect("run anjeon eval")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("file")).expect("JSON")
}

#[test]
fn the_rag_suite_measures_the_assistant_and_gates_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let corpus = dir.join("corpus");
    std::fs::create_dir_all(corpus.join("statutes")).unwrap();
    std::fs::create_dir_all(corpus.join("mfds_data")).unwrap();
    for rel in [
        "statutes/식품위생분야종사자의건강진단규칙.md",
        "mfds_data/mfds_safety_letters_subset.json",
    ] {
        std::fs::copy(common::shared().join(rel), corpus.join(rel)).unwrap();
    }
    let data = dir.join("data");
    common::ingest(&data, &corpus, "public");
    let gate = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    let pass = gate(
        "pass.toml",
        // the corpus lacks q001's and q007's gold laws, so only faithfulness is gated here
        "[rag]\nleaks = { max = 0 }\nunfaithful_rate = { max = 0.5 }\n",
    );
    let fail = gate("fail.toml", "[rag]\nanswer_correctness = { min = 1.01 }\n");

    // Without a question set the suite cannot run: a usage error, before anything loads.
    let out = common::anjeon(&data)
        .env_remove("ANJEON_EVAL_QA")
        .args(["eval", "--suite", "rag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));

    // Three questions (q001, q004, q007) and the built-in probes; the gate holds.
    let run = dir.join("run");
    let run_arg = run.to_string_lossy().into_owned();
    let out = eval_rag(
        &data,
        &["--limit", "3", "--out", &run_arg, "--gate", &pass, "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(printed["gate"]["passed"], true, "{printed}");

    let results = read_json(&run.join("results.json"));
    assert_eq!(results, printed["results"]);
    let rag = &results["results"]["rag"];
    for metric in [
        "hallucination_rate",
        "unfaithful_rate",
        "refusal_precision",
        "coverage",
        "citation_precision",
        "citation_recall",
        "answer_correctness",
        "answer_f1",
    ] {
        let v = rag[metric]
            .as_f64()
            .unwrap_or_else(|| panic!("{metric}: {rag}"));
        assert!((0.0..=1.0).contains(&v), "{metric} = {v}");
        assert!(rag.get(format!("{metric}_stderr")).is_some(), "{metric}");
    }
    // No unanswerable question among the first three: refusal recall is not defined.
    assert!(rag.get("refusal_recall").is_none(), "{rag}");
    assert!(rag["latency_ms_p50"].as_f64().unwrap() > 0.0);
    assert!(rag["latency_ms_p95"].as_f64().unwrap() >= rag["latency_ms_p50"].as_f64().unwrap());
    assert_eq!(rag["leaks"], 0, "{rag}");
    let probes = rag["probes"].as_u64().unwrap();
    assert!(probes >= 10);
    assert_eq!(results["n-samples"]["rag"]["effective"], 3);
    assert_eq!(results["n-samples"]["rag"]["original"], 32);
    assert_eq!(results["rag_config"]["limit"], 3);
    assert_eq!(results["rag_config"]["mode"], "extractive");
    assert!(results["rag_config"]["prompt_version"]
        .as_str()
        .unwrap()
        .starts_with("v1"));
    assert_eq!(
        results["rag_config"]["qa"]["sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert_eq!(results["model"]["id"], "extractive");

    let samples: Vec<Value> = std::fs::read_to_string(run.join("samples/rag.jsonl"))
        .expect("samples/rag.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let questions: Vec<&Value> = samples.iter().filter(|s| s["kind"] == "question").collect();
    let ids: Vec<&str> = questions
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["q001", "q004", "q007"]);
    for q in &questions {
        for key in [
            "question",
            "answer",
            "refused",
            "citations",
            "claims",
            "gold",
            "judged",
            "metrics",
        ] {
            assert!(q.get(key).is_some(), "{key} missing: {q}");
        }
        assert!(q["gold"]["reference_answer"]
            .as_str()
            .is_some_and(|r| !r.is_empty()));
        assert!(q["metrics"]["answer_correctness"].is_number(), "{q}");
    }
    // q004's gold document is indexed: it is answered and cites the gold quote.
    let q004 = questions[1];
    assert_eq!(q004["refused"], false, "{q004}");
    assert_eq!(q004["metrics"]["coverage"], 1.0, "{q004}");
    assert!(q004["claims"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["shown"] == true && c["faithful"] == true));
    let probe_records: Vec<&Value> = samples.iter().filter(|s| s["kind"] == "probe").collect();
    assert_eq!(probe_records.len() as u64, probes);
    assert!(probe_records
        .iter()
        .all(|p| p["leaks"] == Value::Array(Vec::new())));

    let html = std::fs::read_to_string(run.join("report.html")).expect("report.html");
    assert!(html.contains("<svg") && html.contains("Gate passed"));
    assert!(html.contains("q004") && html.contains("injection-education"));

    // A threshold the run falls short of: exit code 1 with the shortfall named.
    let second = dir.join("second");
    let second_arg = second.to_string_lossy().into_owned();
    let out = eval_rag(
        &data,
        &["--limit", "2", "--out", &second_arg, "--gate", &fail],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAIL: rag.answer_correctness"), "{stdout}");
    assert!(std::fs::read_to_string(second.join("report.html"))
        .unwrap()
        .contains("Gate FAILED"));

    // The two runs side by side, paired on the questions both asked.
    let out = common::anjeon(&data)
        .args(["eval", "--json", "--compare"])
        .arg(run.join("results.json"))
        .arg(second.join("results.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let cmp: Value = serde_json::from_slice(&out.stdout).expect("JSON comparison");
    let rows = cmp["comparisons"].as_array().unwrap();
    let coverage = rows
        .iter()
        .find(|r| r["task"] == "rag" && r["metric"] == "coverage")
        .expect("coverage compared");
    assert_eq!(coverage["paired"], 2, "{coverage}");
    assert_eq!(coverage["test"], "mcnemar", "{coverage}");
    let out = common::anjeon(&data)
        .args(["eval", "--compare"])
        .arg(run.join("results.json"))
        .arg(dir.join("missing.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}
