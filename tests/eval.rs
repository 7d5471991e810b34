//! End-to-end tests of `anjeon eval` on the real default model (gemma-3-270m from the asset
//! cache) and the real KoBEST COPA data: results.json's shape, resuming without duplicate
//! records, and the gate's exit codes (0 pass, 1 shortfall, 2 malformed gate or bad task).

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
