//! Bad input never panics a parser. Two halves:
//!
//! - every file under `tests/crashers/<parser name>/` (inputs that once crashed a parser,
//!   found by `benches/fuzz.sh` or by the mutation run below) goes through its parser and
//!   the chunker, which must return, with documents or an error;
//! - a deterministic mutation run on stable Rust: real corpus files of every format are
//!   mutated (bit flips, byte overwrites, truncation, slices deleted or repeated, markup
//!   inserted; HWPX also inside its zipped XML) with a fixed seed, for a bounded number of
//!   iterations (`ANJEON_MUTATIONS` per seed file, default 200), and each mutant is parsed.
//!   A panic is saved under `target/crashers/` with the command that files it as a crasher.

use anjeon_ingest::{chunk_document, formats::parser_named, ChunkOptions};
use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Parses and chunks `bytes` with the parser called `format`; `Err` carries a panic's message.
fn survives(format: &str, bytes: &[u8]) -> Result<(), String> {
    let parser = parser_named(format).unwrap_or_else(|| panic!("no parser named {format}"));
    catch_unwind(AssertUnwindSafe(|| {
        if let Ok(docs) = parser.parse("fuzz-input", bytes) {
            for doc in &docs {
                let passages = chunk_document(doc, ChunkOptions::default());
                for p in passages {
                    // a passage's range must point at its text
                    assert!(doc.text.get(p.range.clone()).is_some());
                }
            }
        }
    }))
    .map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())
    })
}

#[test]
fn known_crashers_return_errors_not_panics() {
    let root = manifest_dir().join("tests/crashers");
    let mut failures = Vec::new();
    let mut count = 0;
    for dir in std::fs::read_dir(&root).expect("tests/crashers exists") {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let format = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            parser_named(&format).is_some(),
            "{}: no such parser",
            dir.display()
        );
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            let bytes = std::fs::read(&file).unwrap();
            count += 1;
            if let Err(e) = survives(&format, &bytes) {
                failures.push(format!("{}: {e}", file.display()));
            }
        }
    }
    assert!(count > 0, "no crashers under {}", root.display());
    assert!(failures.is_empty(), "{failures:#?}");
}

/// SplitMix64: small, seedable, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tokens that matter to our formats, inserted whole.
const TOKENS: &[&[u8]] = &[
    b"<",
    b">",
    b"</",
    b"&",
    b"&#xD55C;",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"null",
    b"\\u",
    b"\n",
    b"\r\n",
    b"#",
    b"## ",
    b"---\n",
    "제1조(목적)".as_bytes(),
    "①".as_bytes(),
    "제2장".as_bytes(),
    "부칙".as_bytes(),
    b"obj",
    b"endobj",
    b"stream\n",
    b"endstream",
    b"/Length 999999",
    b"xref",
    b"trailer",
    b"<<",
    b">>",
    b"/Type /Page",
    b"-1",
    b"99999999999999999999",
    b"\xff\xfe",
    b"\xed\x95",
    b"\x00",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        if out.is_empty() {
            out.extend_from_slice(TOKENS[rng.below(TOKENS.len())]);
            continue;
        }
        let at = rng.below(out.len());
        match rng.below(7) {
            0 => out[at] ^= 1 << rng.below(8),
            1 => out[at] = [0, 0xff, 0x7f, 0x80, b'0', b'9', b' '][rng.below(7)],
            2 => out.truncate(at),
            3 => {
                let end = (at + 1 + rng.below(256)).min(out.len());
                out.drain(at..end);
            }
            4 => {
                let end = (at + 1 + rng.below(512)).min(out.len());
                let slice = out[at..end].to_vec();
                let to = rng.below(out.len());
                out.splice(to..to, slice);
            }
            5 | 6 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, token.iter().copied());
            }
            _ => unreachable!(),
        }
    }
    out
}

/// Mutates one entry of a zip (the XML inside an HWPX) and zips it again.
fn mutate_inside_zip(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let Ok(mut archive) = zip::ZipArchive::new(std::io::Cursor::new(input)) else {
        return mutate(rng, input);
    };
    let target = rng.below(archive.len());
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let name = entry.name().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if i == target {
            bytes = mutate(rng, &bytes);
        }
        writer
            .start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(&bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

fn shared(rel: &str) -> PathBuf {
    manifest_dir().join("../../shared/corpus/docs").join(rel)
}

fn save_crasher(format: &str, bytes: &[u8], n: usize) -> PathBuf {
    let dir = manifest_dir().join("../target/crashers").join(format);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("mutant-{n}"));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn mutated_real_documents_never_panic_a_parser() {
    let iterations: usize = std::env::var("ANJEON_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let fixtures = manifest_dir().join("tests/fixtures");
    let seeds: Vec<(&str, PathBuf, bool)> = vec![
        (
            "statute-markdown",
            fixtures.join("식품위생법_발췌.md"),
            false,
        ),
        ("statute-law", fixtures.join("식품위생법_발췌.xml"), false),
        ("statute-law", fixtures.join("식품위생법_발췌.json"), false),
        (
            "json",
            shared("mfds_data/mfds_safety_letters_subset.json"),
            false,
        ),
        (
            "pdf",
            shared("pdf/정오표_4차수정_에너지_판토텐산_칼슘.pdf"),
            false,
        ),
        (
            "hwpx",
            shared("hwp/2025년 2분기 해외직접투자 (최종).hwpx"),
            true,
        ),
        (
            "hwp",
            shared("hwp/2024년 1분기 해외직접투자 보도자료 ff.hwp"),
            false,
        ),
        ("markdown", fixtures.join("식품위생법_발췌.md"), false),
        ("html", fixtures.join("식품위생법_발췌.xml"), false),
    ];
    let mut rng = Rng(0x616E_6A65_6F6E); // "anjeon"
    let mut failures = Vec::new();
    let mut parsed = 0;
    for (format, path, zipped) in &seeds {
        let original = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // the seed itself parses without a panic
        if let Err(e) = survives(format, &original) {
            failures.push(format!("{}: {e}", path.display()));
        }
        // HWP is large: fewer, cheaper mutants
        let rounds = if *format == "hwp" {
            iterations / 4
        } else {
            iterations
        };
        for i in 0..rounds {
            let mutant = if *zipped && i % 2 == 0 {
                mutate_inside_zip(&mut rng, &original)
            } else {
                mutate(&mut rng, &original)
            };
            parsed += 1;
            if let Err(e) = survives(format, &mutant) {
                let saved = save_crasher(format, &mutant, i);
                failures.push(format!(
                    "{format} mutant {i} of {}: {e}\n  saved as {}; keep it with: cp '{}' ingest/tests/crashers/{format}/",
                    path.display(),
                    saved.display(),
                    saved.display()
                ));
            }
        }
    }
    assert!(parsed >= iterations, "{parsed}");
    assert!(
        failures.is_empty(),
        "{} panics:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_mutator_changes_its_input_deterministically() {
    let input = "제1조(목적) 이 법은 식품으로 인하여 생기는 위생상의 위해를 방지한다.".as_bytes();
    let run = || {
        let mut rng = Rng(7);
        (0..20).map(|_| mutate(&mut rng, input)).collect::<Vec<_>>()
    };
    let a = run();
    assert_eq!(a, run());
    assert!(a.iter().filter(|m| m.as_slice() != input).count() >= 18);
}
