//! End-to-end tests of the `anjeon` binary on real corpus files: ingest (with broken and
//! unsupported files), incremental re-ingest, search modes, filters and access control. Crash
//! recovery after a real SIGKILL is in `faults.rs`.

mod common;

use common::{anjeon, run_json, shared};
use std::path::{Path, PathBuf};

/// A small real corpus in a temporary folder: one statute, the safety letters, a PDF, an
/// HWPX, a broken PDF and an unsupported file.
fn corpus(dir: &Path) -> PathBuf {
    let root = dir.join("docs");
    std::fs::create_dir_all(root.join("statutes")).unwrap();
    let copies = [
        "statutes/식품위생분야종사자의건강진단규칙.md",
        "mfds_data/mfds_safety_letters_subset.json",
        "pdf/정오표_2차수정_아미노산.pdf",
        "hwp/2025년 2분기 해외직접투자 (최종).hwpx",
    ];
    for rel in copies {
        let to = root.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(shared().join(rel), &to).unwrap();
    }
    std::fs::write(root.join("broken.pdf"), b"%PDF-1.4\n1 0 obj <<").unwrap();
    std::fs::write(root.join("notes.xyz"), b"binary?").unwrap();
    root
}

#[test]
fn ingest_then_search_real_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let docs = corpus(tmp.path());

    let (out, report) = run_json(anjeon(&data).args(["ingest", "--json"]).arg(&docs));
    assert!(out.status.success(), "{report}");
    assert_eq!(report["files"], 4, "{report}");
    assert!(report["chunks"].as_u64().unwrap() > 20, "{report}");
    assert_eq!(report["unchanged"], 0);
    let skipped = report["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2, "{report}");
    for s in skipped {
        assert!(!s["error"].as_str().unwrap().is_empty());
    }

    // Unchanged files are skipped by content hash.
    let (out, again) = run_json(anjeon(&data).args(["ingest", "--json"]).arg(&docs));
    assert!(out.status.success());
    assert_eq!(again["files"], 0, "{again}");
    assert_eq!(again["unchanged"], 4, "{again}");

    for mode in ["hybrid", "bm25", "dense"] {
        let (out, result) = run_json(anjeon(&data).args([
            "search",
            "건강진단은 유효기간 만료일 전후 언제 받아야 하나요?",
            "--json",
            "--mode",
            mode,
            "--top-k",
            "5",
        ]));
        assert!(out.status.success());
        let hits = result["hits"].as_array().unwrap();
        assert!(!hits.is_empty(), "{mode}: {result}");
        let top3: Vec<&str> = hits
            .iter()
            .take(3)
            .map(|h| h["locator"].as_str().unwrap())
            .collect();
        assert!(
            hits.iter().take(3).any(
                |h| h["doc"] == "statutes/식품위생분야종사자의건강진단규칙.md"
                    && h["text"].as_str().unwrap().contains("30일 이내")
            ),
            "{mode}: {top3:?}"
        );
        for key in ["doc", "title", "locator", "score", "text", "highlight"] {
            assert!(hits[0].get(key).is_some(), "{key} missing");
        }
    }

    // A filter is applied inside the search: only safety letters come back.
    let (_, letters) = run_json(anjeon(&data).args([
        "search",
        "회수 폐기 명령",
        "--json",
        "--filter",
        "kind=safety_letter",
    ]));
    let hits = letters["hits"].as_array().unwrap();
    assert!(!hits.is_empty());
    assert!(hits
        .iter()
        .all(|h| h["doc"] == "mfds_data/mfds_safety_letters_subset.json"));
}

#[test]
fn a_broken_only_ingest_fails_and_bad_flags_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let bad = tmp.path().join("bad.pdf");
    std::fs::write(&bad, b"not a pdf at all").unwrap();
    let (out, report) = run_json(anjeon(&data).args(["ingest", "--json"]).arg(&bad));
    assert!(!out.status.success());
    assert_eq!(report["files"], 0);
    assert_eq!(report["skipped"].as_array().unwrap().len(), 1);

    let out = anjeon(&data)
        .args(["search", "x", "--filter", "colour=red"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key"));
}

#[test]
fn internal_documents_never_reach_public_searches() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let secret = tmp.path().join("internal-memo.txt");
    std::fs::write(
        &secret,
        "내부 검토 메모: 가나다 제약의 타이레놀정 회수 계획은 아직 공개하지 않는다.\n\n담당자 검토 후 발표 예정.",
    )
    .unwrap();
    let public = shared().join("statutes/식품위생분야종사자의건강진단규칙.md");
    let (out, _) = run_json(anjeon(&data).args(["ingest", "--json"]).arg(&public));
    assert!(out.status.success());
    let (out, _) = run_json(
        anjeon(&data)
            .args(["ingest", "--json", "--access", "internal"])
            .arg(&secret),
    );
    assert!(out.status.success());

    for mode in ["hybrid", "bm25", "dense"] {
        let (_, result) = run_json(anjeon(&data).args([
            "search",
            "타이레놀정 회수 계획",
            "--json",
            "--mode",
            mode,
        ]));
        let hits = result["hits"].as_array().unwrap();
        assert!(
            hits.iter().all(|h| h["doc"] != "internal-memo.txt"),
            "{mode} leaked: {result}"
        );
        let (_, result) = run_json(anjeon(&data).args([
            "search",
            "타이레놀정 회수 계획",
            "--json",
            "--mode",
            mode,
            "--filter",
            "access=internal",
        ]));
        assert_eq!(result["hits"][0]["doc"], "internal-memo.txt", "{mode}");
    }
}
