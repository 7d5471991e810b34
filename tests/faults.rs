//! Crash and storage faults on the real binary: `kill -9` of a child `anjeon ingest` at
//! every stage of a batch (named pause points, `ANJEON_PAUSE_AT=<stage>@<n>`) and at
//! arbitrary moments; a read-only data directory; a full disk. After each, the stores must
//! agree with each other and with the manifest, every acknowledged (committed) document must
//! keep exactly its passages, and a re-run must end equal to an undisturbed ingest.

mod common;

use common::{anjeon, run_json, shared};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Three real statutes cut to their opening articles (about 3 kB each): the crashes need
/// several documents and batches, not long ones (every passage costs an embedding). With
/// `ANJEON_INDEX_BATCH_FILES=1` each document is its own batch.
fn corpus(dir: &Path) -> PathBuf {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for name in [
        "식품위생분야종사자의건강진단규칙.md",
        "화장품법_시행령.md",
        "식품등의표시ㆍ광고에관한법률_시행령.md",
    ] {
        let text = std::fs::read_to_string(shared().join("statutes").join(name)).unwrap();
        std::fs::write(docs.join(name), opening_articles(&text, 3000)).unwrap();
    }
    docs
}

/// `statute` up to the first article heading that starts past `budget` bytes (all of it when
/// none does): front matter and whole articles only.
fn opening_articles(statute: &str, budget: usize) -> &str {
    match statute
        .match_indices("\n##### ")
        .map(|(at, _)| at)
        .find(|&at| at > budget)
    {
        Some(at) => &statute[..=at],
        None => statute,
    }
}

/// The undisturbed ingest of the corpus, made once for all the tests: which passages each
/// document owns (ids are deterministic and keys relative, so any ingest of the same corpus
/// must end equal to it) and how long it took.
fn reference() -> &'static (BTreeMap<String, Vec<u64>>, Duration) {
    static REFERENCE: OnceLock<(BTreeMap<String, Vec<u64>>, Duration)> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let docs = corpus(tmp.path());
        let clean = tmp.path().join("clean");
        let started = Instant::now();
        let (out, report) = run_json(anjeon(&clean).args(["ingest", "--json"]).arg(&docs));
        let took = started.elapsed();
        assert!(out.status.success(), "{report}");
        let reference = committed(&clean);
        assert_eq!(reference.len(), 3);
        (reference, took)
    })
}

/// Committed documents of the manifest on disk, each with its sorted passage ids; panics
/// unless `pending_allowed` when an entry is still pending.
fn committed(data: &Path) -> BTreeMap<String, Vec<u64>> {
    let path = data.join("manifest.json");
    let Ok(bytes) = std::fs::read(&path) else {
        return BTreeMap::new();
    };
    let manifest: Value = serde_json::from_slice(&bytes).expect("the manifest is whole JSON");
    let mut out = BTreeMap::new();
    for (key, entry) in manifest["entries"].as_object().unwrap() {
        if entry["state"] == "committed" {
            let mut ids: Vec<u64> = entry["passages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            ids.sort_unstable();
            out.insert(key.clone(), ids);
        }
    }
    out
}

fn pending(data: &Path) -> usize {
    let Ok(bytes) = std::fs::read(data.join("manifest.json")) else {
        return 0;
    };
    let manifest: Value = serde_json::from_slice(&bytes).unwrap();
    manifest["entries"]
        .as_object()
        .unwrap()
        .values()
        .filter(|e| e["state"] == "pending")
        .count()
}

/// `anjeon check` passes: manifest, tantivy and the vector store hold the same passages.
fn assert_consistent(data: &Path, context: &str) -> Value {
    let (out, status) = run_json(anjeon(data).args(["check", "--json"]));
    assert!(out.status.success(), "{context}: {status}");
    assert_eq!(status["problems"], serde_json::json!([]), "{context}");
    status
}

/// `anjeon ingest` of `docs` in batches of `batch_files` files, paused at `pause` if given.
fn ingest_child(data: &Path, docs: &Path, batch_files: usize, pause: Option<&str>) -> Child {
    let mut cmd = anjeon(data);
    cmd.args(["ingest", "--json"])
        .arg(docs)
        .env("ANJEON_INDEX_BATCH_FILES", batch_files.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(stage) = pause {
        cmd.env("ANJEON_PAUSE_AT", stage);
    }
    cmd.spawn().unwrap()
}

/// Waits until the child has written the marker file for `stage` (it then sleeps there).
fn wait_for_pause(child: &mut Child, data: &Path, stage: &str) {
    let marker = data.join(format!("paused-at-{stage}"));
    for _ in 0..12000 {
        if marker.exists() {
            let _ = std::fs::remove_file(&marker);
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("child exited ({status}) before reaching {stage}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("child never reached {stage}");
}

/// After a kill: consistent stores, no pending entry left, every document acknowledged before
/// the kill still there with exactly its passages; then a re-run ends equal to `reference`.
fn recover_and_finish(
    data: &Path,
    docs: &Path,
    acknowledged: &BTreeMap<String, Vec<u64>>,
    reference: &BTreeMap<String, Vec<u64>>,
    context: &str,
) {
    assert_consistent(data, context);
    assert_eq!(
        pending(data),
        0,
        "{context}: pending entries survived recovery"
    );
    let after = committed(data);
    for (key, ids) in acknowledged {
        assert_eq!(
            after.get(key),
            Some(ids),
            "{context}: acknowledged {key} changed"
        );
    }
    let (out, report) = run_json(anjeon(data).args(["ingest", "--json"]).arg(docs));
    assert!(out.status.success(), "{context}: {report}");
    let status = assert_consistent(data, context);
    assert_eq!(
        &committed(data),
        reference,
        "{context}: lost or duplicated passages"
    );
    let total: usize = reference.values().map(Vec::len).sum();
    assert_eq!(status["passages"], total, "{context}");
}

#[test]
fn sigkill_at_every_stage_of_a_batch_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = corpus(tmp.path());
    let (reference, _) = reference();

    // Each kill lands in the second batch, so the first batch was acknowledged before it.
    for stage in [
        "prepared@2",
        "manifest-pending@2",
        "lexical-added@2",
        "lexical-commit@2",
        "vector-upserted@2",
        "vector-flush@2",
    ] {
        let data = tmp.path().join(format!("data-{}", stage.replace('@', "-")));
        let mut child = ingest_child(&data, &docs, 1, Some(stage));
        let name = stage.split('@').next().unwrap();
        wait_for_pause(&mut child, &data, name);
        let acknowledged = committed(&data);
        assert_eq!(acknowledged.len(), 1, "{stage}: {acknowledged:?}");
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        recover_and_finish(&data, &docs, &acknowledged, reference, stage);
    }
}

#[test]
fn sigkill_at_arbitrary_moments_keeps_the_stores_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = corpus(tmp.path());
    let (reference, took) = reference();
    let whole = took.as_millis() as u64;
    // one data directory, killed again and again at moments spread over an undisturbed
    // run's length (inside commits and flushes too, whatever was running then); it must
    // recover every time. Two files to a batch: a kill can land between a batch's files.
    let data = tmp.path().join("data");
    for share in [25, 40, 55, 70, 85, 100] {
        let delay_ms = whole * share / 100;
        let mut child = ingest_child(&data, &docs, 2, None);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let acknowledged = committed(&data);
        let _ = child.kill();
        let _ = child.wait();
        let context = format!("kill after {delay_ms} ms");
        assert_consistent(&data, &context);
        let after = committed(&data);
        for (key, ids) in &acknowledged {
            assert_eq!(
                after.get(key),
                Some(ids),
                "{context}: acknowledged {key} changed"
            );
        }
    }
    recover_and_finish(&data, &docs, &BTreeMap::new(), reference, "final run");
}

/// A mount of its own (tmpfs or a read-only bind), removed however the test ends.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount(args: &[&str], target: &Path) -> Option<Mount> {
    let ok = Command::new("mount")
        .args(args)
        .arg(target)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| Mount(target.to_path_buf()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn a_read_only_data_directory_is_a_clear_error_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = corpus(tmp.path());
    let data = tmp.path().join("data");
    let first = docs.join("식품위생분야종사자의건강진단규칙.md");
    let (out, _) = run_json(anjeon(&data).args(["ingest", "--json"]).arg(&first));
    assert!(out.status.success());
    let before = std::fs::read(data.join("manifest.json")).unwrap();

    // root ignores permissions: a read-only bind mount of the folder over itself instead
    let guard = if is_root() {
        let bind = mount(&["--bind", data.to_str().unwrap()], &data)
            .expect("bind-mount the data directory (root)");
        assert!(
            Command::new("mount")
                .args(["-o", "remount,ro,bind"])
                .arg(&data)
                .status()
                .unwrap()
                .success(),
            "remount read-only"
        );
        Some(bind)
    } else {
        set_read_only(&data, true);
        None
    };
    let out = anjeon(&data)
        .args(["ingest", "--json"])
        .arg(docs.join("화장품법_시행령.md"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("is not writable"), "{stderr}");
    assert!(stderr.contains(data.to_str().unwrap()), "{stderr}");
    drop(guard);
    set_read_only(&data, false);

    assert_eq!(std::fs::read(data.join("manifest.json")).unwrap(), before);
    assert_consistent(&data, "after the read-only attempt");
}

fn set_read_only(dir: &Path, read_only: bool) {
    for entry in walk(dir) {
        let mut perms = std::fs::metadata(&entry).unwrap().permissions();
        perms.set_readonly(read_only);
        std::fs::set_permissions(&entry, perms).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn a_full_disk_fails_cleanly_and_recovers() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let docs = corpus(tmp.path());
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let _disk = mount(&["-t", "tmpfs", "-o", "size=160m", "tmpfs"], &data).expect("mount tmpfs");
    let first = docs.join("식품위생분야종사자의건강진단규칙.md");
    let (out, _) = run_json(anjeon(&data).args(["ingest", "--json"]).arg(&first));
    assert!(out.status.success());
    let acknowledged = committed(&data);
    // fill the disk to its last 40 MiB: less than a vector-store page and a margin
    let filler = data.join("filler");
    let free = free_bytes(&data);
    std::fs::write(&filler, vec![0u8; free.saturating_sub(40 << 20) as usize]).unwrap();
    let out = anjeon(&data)
        .args(["ingest", "--json"])
        .arg(&docs)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // an error exit (1), not a panic (101) or a signal
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("No space left on device"), "{all}");
    std::fs::remove_file(&filler).unwrap();
    // space again: the interrupted batch is undone, the acknowledged one untouched
    recover_and_finish(&data, &docs, &acknowledged, &reference().0, "disk full");
}

fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}
