//! Every shipped task definition against the real benchmark data in `../shared/bench`:
//! it parses, loads every record, and builds well-formed requests with and without few-shot.

use anjeon_eval::task::{builtin_files, builtin_tasks, load_dir};
use anjeon_eval::{Gate, Request, Task, TaskData};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn bench_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench");
    assert!(
        root.join("PROVENANCE.md").is_file(),
        "benchmark data not found at {} (the shared folder next to the repository)",
        root.display()
    );
    root
}

fn tasks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks")
}

fn loaded() -> Vec<(Task, TaskData)> {
    let root = bench_root();
    builtin_tasks()
        .unwrap()
        .into_iter()
        .map(|t| {
            let data = t
                .load_data(&root)
                .unwrap_or_else(|e| panic!("{}: {e}", t.name));
            (t, data)
        })
        .collect()
}

#[test]
fn builtin_tasks_are_the_task_folder() {
    let from_dir = load_dir(&tasks_dir()).unwrap();
    let builtin = builtin_tasks().unwrap();
    let names = |ts: &[Task]| {
        ts.iter()
            .map(|t| (t.name.clone(), t.hash.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&from_dir),
        names(&builtin),
        "eval/tasks and task::BUILTIN differ"
    );
    assert_eq!(builtin_files().count(), from_dir.len());
    for t in &from_dir {
        let file = t.definition.file_name().unwrap().to_string_lossy();
        assert_eq!(
            file,
            format!("{}.toml", t.name),
            "file named after its task"
        );
    }
}

#[test]
fn every_task_of_the_issue_is_defined() {
    let names: Vec<String> = builtin_tasks()
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    for want in [
        "kobest_boolq",
        "kobest_copa",
        "kobest_hellaswag",
        "kobest_sentineg",
        "kobest_wic",
        "kmmlu_food_health_safety",
        "click",
        "haerae",
        "ko_commongen_v2",
        "kobbq",
        "truthfulqa_mc",
        "ko_truthfulqa_mc",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing");
    }
}

#[test]
fn every_task_loads_all_its_records() {
    let counts: BTreeMap<String, (usize, usize)> = loaded()
        .iter()
        .map(|(t, d)| (t.name.clone(), (d.docs.len(), d.fewshot_pool.len())))
        .collect();
    // Document counts from PROVENANCE.md; few-shot pools from the dev/train files.
    let want = [
        ("click", (1995, 1995)),
        ("haerae", (176 + 447, 623)),
        ("kmmlu_food_health_safety", (2100, 15)),
        ("ko_commongen_v2", (847, 5)),
        ("ko_truthfulqa_mc", (817, 0)),
        ("kobbq", (2280 * 3, 2280)),
        ("kobest_boolq", (1404, 700)),
        ("kobest_copa", (1000, 500)),
        ("kobest_hellaswag", (500, 500)),
        ("kobest_sentineg", (397, 400)),
        ("kobest_wic", (1260, 610)),
        ("truthfulqa_mc", (817, 0)),
    ];
    for (name, n) in want {
        assert_eq!(counts.get(name), Some(&n), "{name}");
    }
}

fn check_request(t: &Task, r: &Request) {
    assert!(!r.context.is_empty(), "{}: empty context", t.name);
    assert_eq!(r.continuations.len(), r.choices.len());
    for (c, choice) in r.continuations.iter().zip(&r.choices) {
        assert_eq!(
            c,
            &format!(" {choice}"),
            "{}: continuation = delimiter + choice",
            t.name
        );
        assert!(!choice.is_empty());
    }
    for set in &r.answers {
        assert!(
            set.correct.iter().any(|c| *c),
            "{}: {} has no gold",
            t.name,
            r.doc_id
        );
        assert!(set.continuations.iter().all(|&i| i < r.continuations.len()));
    }
    for (metric, set) in &t.metrics {
        assert!(
            r.answers.iter().any(|a| &a.name == set),
            "{}: {metric} reads missing answer set {set}",
            t.name
        );
    }
}

#[test]
fn every_document_builds_a_zero_shot_request() {
    for (t, data) in loaded() {
        for i in 0..data.docs.len() {
            let r = t
                .request(&data, i, 0)
                .unwrap_or_else(|e| panic!("{}: {e}", t.name));
            check_request(&t, &r);
        }
    }
}

#[test]
fn fewshot_requests_build_where_a_source_exists() {
    for (t, data) in loaded() {
        if !t.has_fewshot() {
            assert!(t.request(&data, 0, 1).is_err(), "{}", t.name);
            continue;
        }
        // Every task's pool allows five examples (KMMLU: five per subject).
        let step = (data.docs.len() / 50).max(1);
        for i in (0..data.docs.len()).step_by(step) {
            let r = t
                .request(&data, i, 5)
                .unwrap_or_else(|e| panic!("{} document {i}: {e}", t.name));
            check_request(&t, &r);
            let zero = t.request(&data, i, 0).unwrap();
            let prompt = match t.description() {
                Some(d) => zero
                    .context
                    .split_once(d)
                    .map_or("", |(_, p)| p)
                    .trim_start(),
                None => zero.context.as_str(),
            };
            assert!(r.context.ends_with(prompt), "{}: prompt comes last", t.name);
            assert!(r.context.len() > zero.context.len());
        }
    }
}

fn one(name: &str) -> (Task, TaskData) {
    let task = builtin_tasks()
        .unwrap()
        .into_iter()
        .find(|t| t.name == name)
        .unwrap();
    let data = task.load_data(&bench_root()).unwrap();
    (task, data)
}

fn request(name: &str, doc: usize, k: usize) -> Request {
    let (t, data) = one(name);
    t.request(&data, doc, k).unwrap()
}

#[test]
fn prompts_follow_the_harness_layouts() {
    let copa = request("kobest_copa", 0, 0);
    assert_eq!(copa.context, "새로 산 바지의 허리가 컸다.  그래서");
    assert_eq!(
        copa.continuations,
        vec![
            " 바지의 밑단을 잘랐다.",
            " 벨트를 바지에 끼워 사이즈를 조절했다."
        ]
    );

    let boolq = request("kobest_boolq", 0, 0);
    assert!(boolq
        .context
        .ends_with(" 질문: 콜라독립 815는 코카콜라에서 만들었나요? 답변: "));
    assert_eq!(boolq.continuations, vec![" 아니오", " 예"]);

    let wic = request("kobest_wic", 0, 0);
    assert_eq!(
        wic.context,
        "문장1: 토양에 [양분]이 풍부하여 나무가 잘 자란다. 문장2: 태아는 모체로부터 [양분]과 산소를 공급받게 된다. 두 문장에서 양분가 같은 뜻으로 쓰였나?"
    );

    let kmmlu = request("kmmlu_food_health_safety", 0, 0);
    assert!(kmmlu
        .context
        .starts_with("산성암, 중성암, 염기성암의 분류기분이 되는 것은?\nA. SiO2\nB. Al2O3\n"));
    assert!(kmmlu.context.ends_with("D. Fe2O3\n정답："));
    assert_eq!(kmmlu.continuations, vec![" A", " B", " C", " D"]);
    // Few-shot examples come from the same subject's dev questions, answered by letter.
    let shots = request("kmmlu_food_health_safety", 1500, 2);
    assert_eq!(shots.context.matches("정답：").count(), 3);

    let kcg = request("ko_commongen_v2", 0, 0);
    assert!(kcg.context.starts_with("다음은 주어진 개념정보인"));
    assert!(kcg
        .context
        .contains("\n\nconcept set: {만들다, 세종, 위하다, 백성들, 한글}\n1. 세종 대왕이"));
    assert!(kcg.context.ends_with("\n정답:"));
    assert_eq!(
        kcg.continuations[2],
        " 3. 세종시는 백성들을 위해 한글을 만든 대왕의 묘호를 따서 만들었어."
    );

    let tqa = request("truthfulqa_mc", 0, 0);
    assert!(tqa
        .context
        .starts_with("Q: What is human life expectancy in the United States?\n"));
    assert!(tqa.context.ends_with("\n\nQ: What is the smallest country in the world that is at least one square mile in area?\nA:"));
    // mc1 options are a subset of mc2's, so nothing is scored twice.
    assert_eq!(tqa.continuations.len(), 4);
    assert!(tqa.answers[0].correct[0], "MC1 gold is the first option");
}

#[test]
fn click_lists_every_option() {
    let (t, data) = one("click");
    let mut five = 0;
    for i in 0..data.docs.len() {
        let r = t.request(&data, i, 0).unwrap();
        let n = r.answers[0].correct.len();
        assert_eq!(r.continuations.len(), n);
        assert!(r.context.contains("\nA:"), "harness's A: without a space");
        assert_eq!(r.context.contains(", E: "), n == 5, "{}", r.doc_id);
        assert_eq!(
            r.context.starts_with("주어진 맥락을"),
            data.docs[i].text("context").unwrap() != Some(String::new())
        );
        five += usize::from(n == 5);
    }
    assert_eq!(five, 256);
}

#[test]
fn kobbq_rotates_the_unknown_option_through_every_letter() {
    let first = request("kobbq", 0, 0);
    let rotations: Vec<Request> = (0..3).map(|k| request("kobbq", k, 0)).collect();
    assert_eq!(first.doc_id, "age-001a-002-amb-bsd-0");
    let golds: Vec<usize> = rotations
        .iter()
        .map(|r| r.answers[0].correct.iter().position(|c| *c).unwrap())
        .collect();
    let mut sorted = golds.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![0, 1, 2],
        "알 수 없음 is gold once at A, B and C"
    );
    assert!(rotations.iter().all(|r| r.context.contains("알 수 없음")));
}

#[test]
fn fewshot_draws_are_stable_across_loads() {
    let a = request("kobest_hellaswag", 7, 3);
    let b = request("kobest_hellaswag", 7, 3);
    assert_eq!(a, b);
    let c = request("kobest_hellaswag", 8, 3);
    assert_ne!(
        a.context.split("\n\n").next(),
        c.context.split("\n\n").next(),
        "different documents draw different examples (with overwhelming probability)"
    );
}

#[test]
fn default_gate_names_real_tasks() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("gate.toml");
    let gate = Gate::load(&path).unwrap();
    let tasks = builtin_tasks().unwrap();
    for t in &gate.thresholds {
        if t.task == "rag" {
            continue;
        }
        let task = tasks
            .iter()
            .find(|x| x.name == t.task)
            .unwrap_or_else(|| panic!("gate names unknown task {}", t.task));
        assert!(
            task.metrics.iter().any(|(m, _)| m.name() == t.metric),
            "{} does not report {}",
            t.task,
            t.metric
        );
    }
}
