//! End-to-end tests of the OpenAI-compatible API: start `anjeon serve` on a free port with the
//! real default model and drive it with the official `openai` Python SDK (installed from PyPI
//! into the asset cache on first use) and with our own remote `Generator`.

mod common;

use common::{cache_dir, start_server};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The SDK release the test is written against.
const OPENAI_SDK: &str = "openai==3.54.0";

/// The SDK and its dependencies in `<cache>/python/<release>`, installed once.
fn sdk_path() -> PathBuf {
    let dir = cache_dir()
        .join("python")
        .join(OPENAI_SDK.replace("==", "-"));
    let marker = dir.join(".anjeon-complete");
    if !marker.exists() {
        let status = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&dir)
            .arg(OPENAI_SDK)
            .status()
            .expect("run pip");
        assert!(status.success(), "pip install {OPENAI_SDK} failed");
        std::fs::write(&marker, b"").unwrap();
    }
    dir
}

#[test]
fn the_official_openai_sdk_talks_to_our_server() {
    let sdk = sdk_path();
    let tmp = tempfile::tempdir().unwrap();
    let (_server, url) = start_server(&tmp.path().join("data"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/openai_sdk.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&url)
        .env("PYTHONPATH", &sdk)
        .output()
        .expect("run the SDK script");
    assert!(
        out.status.success(),
        "SDK checks failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_remote_generator_works_against_our_server() {
    use anjeon::llm::remote::RemoteGenerator;
    use anjeon::llm::{Finish, GenerateParams, Generator, Prompt};
    let tmp = tempfile::tempdir().unwrap();
    let (_server, url) = start_server(&tmp.path().join("data"));
    let remote = RemoteGenerator::connect(&url, None, None).unwrap();
    assert_eq!(remote.context_tokens(), 32768);
    assert!(remote.count_tokens("식품의약품안전처").unwrap() > 0);
    let params = GenerateParams {
        max_tokens: 12,
        ..GenerateParams::default()
    };
    let mut streamed = String::new();
    let out = remote
        .generate(
            &Prompt::Text("식품의약품안전처는".into()),
            &params,
            &mut |t| {
                streamed.push_str(t);
                true
            },
        )
        .unwrap();
    assert_eq!(out.text, streamed);
    assert!(!out.text.is_empty() && out.completion_tokens > 0);
    let mut calls = 0;
    let cancelled = remote
        .generate(
            &Prompt::Text("식품의약품안전처는".into()),
            &params,
            &mut |_| {
                calls += 1;
                false
            },
        )
        .unwrap();
    assert_eq!((cancelled.finish, calls), (Finish::Cancelled, 1));
    let scored = remote
        .loglikelihood(
            "대한민국의 수도는",
            &[" 서울이다.".into(), " 바나나이다.".into()],
        )
        .unwrap();
    assert!(scored[0].logprob > scored[1].logprob, "{scored:?}");
    assert!(scored.iter().all(|s| s.tokens > 0 && s.logprob < 0.0));
    let unknown = RemoteGenerator::connect(&url, Some("no-such-model"), None);
    assert!(matches!(unknown, Err(anjeon::Error::NotFound(_))));
}
