//! End-to-end tests of the web pages and their APIs over HTTP, on a running server over a
//! real index: what each role sees (public callers never see internal passages in search
//! results, counts, facets, CSV, document and raw views), the article view, feedback,
//! uploads that become searchable without a restart, deletion, and the eval report.

mod common;

use common::{ingest, new_token, request, send, shared, start_server_with, Reply};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const RULE: &str = "statutes/식품위생분야종사자의건강진단규칙.md";
const OTHER_LAW: &str = "statutes/식품안전기본법_시행령.md";
const SECRET: &str = "# 내부 점검 메모\n\n건강진단 결과서 위조 업소 명단은 서울 강남구 가나다식당이며 외부 공개를 금지한다.\n";

fn multipart(files: &[(&str, &[u8])], access: &str) -> (String, Vec<u8>) {
    let boundary = "anjeon-test-boundary-7d1f";
    let mut body = Vec::new();
    body.extend(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"access\"\r\n\r\n{access}\r\n"
        )
        .as_bytes(),
    );
    for (name, bytes) in files {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn get(url: &str, path: &str, cookie: Option<&str>) -> Reply {
    let cookie = cookie.map(|t| format!("anjeon_token={t}"));
    let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", c.as_str())).collect();
    send(url, "GET", path, &headers, b"")
}

fn enc(s: &str) -> String {
    s.split('/')
        .map(|seg| {
            seg.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The first number after `#result-count`'s opening tag.
fn result_count(html: &str) -> u64 {
    let at = html.find("id=\"result-count\"").expect("#result-count");
    html[at..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

fn write_eval_run(dir: &Path) {
    let samples = dir.join("run1/samples");
    std::fs::create_dir_all(&samples).unwrap();
    let results = serde_json::json!({
        "results": {"kobest_copa": {"acc": 0.4, "acc_stderr": 0.24, "acc_ci95": [0.0, 0.88]}},
        "configs": {"kobest_copa": {"definition": "eval/tasks/kobest_copa.toml", "task_hash": "h", "reference": "r",
            "num_fewshot": 0, "fewshot_seed": null, "limit": 5, "metrics": ["acc"], "data_files": []}},
        "n-samples": {"kobest_copa": {"original": 1000, "effective": 5}},
        "model": {"id": "gemma-3-270m", "sha256": null},
        "date": "2025-06-01T00:00:00Z",
        "eval_version": "0.1.0"
    });
    std::fs::write(dir.join("run1/results.json"), results.to_string()).unwrap();
    let record = serde_json::json!({"doc_index": 0, "doc_id": "copa-0", "context": "전제: 비가 왔다. 그래서",
        "continuations": [
            {"continuation": " 우산을 썼다", "choice": "우산을 썼다", "logprob": -3.5, "is_greedy": false, "tokens": 3},
            {"continuation": " 모자를 샀다", "choice": "모자를 샀다", "logprob": -2.0, "is_greedy": false, "tokens": 3}],
        "answers": [{"name": "choices", "continuations": [0, 1], "prediction": 1, "gold": [0]}],
        "metrics": {"acc": 0.0}});
    std::fs::write(samples.join("kobest_copa.jsonl"), format!("{record}\n")).unwrap();
}

#[test]
fn the_web_pages_serve_each_role_what_it_may_read() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    for rel in [RULE, OTHER_LAW] {
        std::fs::create_dir_all(docs.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(shared().join(rel), docs.join(rel)).unwrap();
    }
    std::fs::write(tmp.path().join("비밀.md"), SECRET).unwrap();
    let data = tmp.path().join("data");
    ingest(&data, &docs, "public");
    ingest(&data, &tmp.path().join("비밀.md"), "internal");
    write_eval_run(&data.join("eval"));
    let (official, official_line) = new_token(&data, "official", "kim");
    let (admin, admin_line) = new_token(&data, "admin", "lee");
    let tokens = format!("{official_line} {admin_line}");
    let (_server, url) = start_server_with(&data, &[("ANJEON_AUTH_TOKENS", &tokens)]);

    // the chat page and its assets
    let home = get(&url, "/", None);
    assert_eq!(home.status, 200, "{}", home.body);
    for needle in [
        "<html lang=\"ko\"",
        "form id=\"ask-form\"",
        "textarea id=\"question\"",
        "button type=\"submit\" id=\"ask-button\"",
        "id=\"answer\"",
        "aria-live=\"polite\"",
        "class=\"example-question\"",
        "id=\"new-conversation\"",
        "일반 이용자",
    ] {
        assert!(home.body.contains(needle), "/ lacks {needle}");
    }
    assert!(
        home.head.contains("content-security-policy"),
        "{}",
        home.head
    );
    let js = get(&url, "/static/app.js", None);
    assert_eq!(js.status, 200);
    assert!(js.head.contains("text/javascript") && js.body.contains("/api/ask"));
    assert_eq!(get(&url, "/static/nothing.js", None).status, 404);

    // search as the public: highlighted hits of public documents only, counts and facets
    let q = enc("건강진단");
    let public = get(&url, &format!("/search?q={q}"), None);
    assert_eq!(public.status, 200, "{}", public.body);
    assert!(public.body.contains("class=\"hit\""), "{}", public.body);
    assert!(
        public.body.contains("<mark>건강진단</mark>"),
        "{}",
        public.body
    );
    assert!(
        public.body.contains("class=\"facet facet-law"),
        "no law facet"
    );
    assert!(
        !public.body.contains("name=\"access\""),
        "the public gets an access select"
    );
    assert!(!public.body.contains("비밀.md") && !public.body.contains("가나다식당"));
    let public_count = result_count(&public.body);
    let as_official = get(&url, &format!("/search?q={q}"), Some(&official));
    assert!(as_official.body.contains("name=\"access\""));
    let secret = get(
        &url,
        &format!("/search?q={}", enc("위조 업소")),
        Some(&official),
    );
    assert!(
        secret.body.contains("비밀.md"),
        "officials find internal passages"
    );
    assert_eq!(
        result_count(&as_official.body),
        public_count + 1,
        "the internal passage is counted for officials only"
    );
    // asking for internal documents does not open them to the public
    let forged = get(
        &url,
        &format!("/search?q={}&access=internal", enc("위조 업소")),
        None,
    );
    let plain = get(&url, &format!("/search?q={}", enc("위조 업소")), None);
    assert_eq!(
        result_count(&forged.body),
        result_count(&plain.body),
        "{}",
        forged.body
    );
    assert!(!forged.body.contains("가나다식당") && !forged.body.contains("비밀.md"));
    let audit = std::fs::read_to_string(data.join("audit.jsonl")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"search\"") && l.contains("비밀.md")),
        "{audit}"
    );

    // a law filter narrows hits, count and facets; pagination links exist when needed
    let law = enc("식품안전기본법 시행령");
    let narrowed = get(&url, &format!("/search?q={}&law={law}", enc("건강")), None);
    assert!(
        result_count(&narrowed.body) > 0
            && result_count(&narrowed.body)
                < result_count(&get(&url, &format!("/search?q={}", enc("건강")), None).body)
    );
    assert!(
        !narrowed
            .body
            .contains("식품위생 분야 종사자의 건강진단 규칙</a>"),
        "{}",
        narrowed.body
    );
    let all = get(&url, &format!("/search?q={}", enc("식품")), None);
    assert!(
        all.body.contains("class=\"page"),
        "no pagination for a long list"
    );
    assert_eq!(
        get(&url, "/search?q=a&date_from=yesterday", None).status,
        400
    );

    // CSV export: BOM, quoting, same filters, nothing internal for the public
    let csv = get(
        &url,
        &format!("/search.csv?q={}&law={law}", enc("건강")),
        None,
    );
    assert_eq!(csv.status, 200);
    assert!(csv.head.contains("text/csv"), "{}", csv.head);
    assert!(csv.body.starts_with('\u{feff}'), "no byte order mark");
    assert!(csv.body.contains("\"순위\",\"제목\""));
    assert!(
        csv.body.contains("식품안전기본법 시행령")
            && !csv.body.contains("식품위생 분야 종사자의 건강진단 규칙")
    );
    let csv = get(&url, &format!("/search.csv?q={}", enc("위조 업소")), None);
    assert!(!csv.body.contains("가나다식당"));

    // documents: the whole document, the article view, the original; internal ones are 404 for the public
    let doc = get(
        &url,
        &format!("/doc/{}?article={}", enc(RULE), enc("제2조")),
        None,
    );
    assert_eq!(doc.status, 200, "{}", doc.body);
    assert!(doc.body.contains("id=\"p-"), "no passage anchors");
    assert!(
        doc.body.contains("class=\"doc-passage selected\""),
        "the article is not marked"
    );
    assert!(doc.body.contains("id=\"article\""), "no article view");
    assert!(doc.body.contains("id=\"prev-article\"") && doc.body.contains("제1조"));
    assert!(doc.body.contains("id=\"next-article\"") && doc.body.contains("제3조"));
    assert!(doc.body.contains("2024-01-08"), "no effective date");
    let citing = &doc.body[doc
        .body
        .find("id=\"citing\"")
        .expect("passages citing 제2조")..];
    assert!(citing.contains("제5조"), "제5조 cites 제2조: {citing}");
    let raw = get(&url, &format!("/doc/{}/raw", enc(RULE)), None);
    assert_eq!(raw.status, 200);
    assert!(raw.head.contains("text/markdown") && raw.body.contains("법령MST"));
    for path in [
        format!("/doc/{}", enc("비밀.md")),
        format!("/doc/{}/raw", enc("비밀.md")),
    ] {
        let r = get(&url, &path, None);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert!(!r.body.contains("가나다식당"));
        assert_eq!(get(&url, &path, Some(&official)).status, 200, "{path}");
    }
    assert_eq!(get(&url, "/doc/nothing.md", None).status, 404);

    // feedback is stored durably and read by admins only
    let fb = serde_json::json!({"kind": "bad-citation", "comment": "출처가 달라요", "question": "건강진단은?",
        "answer": "다시 받아야 합니다 [1]", "citations": [{"n": 1, "doc": RULE, "locator": "제2조", "id": 1, "quote": "x"}]});
    let r = request(&url, "POST", "/api/feedback", &[], &fb.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    let bad = request(
        &url,
        "POST",
        "/api/feedback",
        &[],
        &serde_json::json!({"kind": "great", "question": "q"}).to_string(),
    );
    assert_eq!(bad.status, 400);
    assert_eq!(get(&url, "/api/feedback", None).status, 401);
    assert_eq!(get(&url, "/api/feedback", Some(&official)).status, 403);
    let listed = get(&url, "/api/feedback", Some(&admin));
    let listed: Value = serde_json::from_str(&listed.body).unwrap();
    assert_eq!(listed[0]["kind"], "bad-citation");
    assert_eq!(listed[0]["citations"][0]["doc"], RULE);
    assert!(get(&url, "/admin/feedback", Some(&admin))
        .body
        .contains("출처가 달라요"));
    let stored = std::fs::read_to_string(data.join("feedback.jsonl")).unwrap();
    assert!(stored.contains("출처가 달라요"));

    // login page; admin page for admins only
    let login = get(&url, "/login", None);
    assert!(login.body.contains("id=\"token\"") && login.body.contains("id=\"login-button\""));
    let r = get(&url, "/admin", None);
    assert_eq!(r.status, 303, "{}", r.head);
    assert!(r.head.contains("location: /login"));
    assert_eq!(get(&url, "/admin", Some(&official)).status, 403);
    let page = get(&url, "/admin", Some(&admin));
    assert_eq!(page.status, 200);
    for needle in [
        "id=\"upload-zone\"",
        "id=\"upload-input\" name=\"files\" type=\"file\" multiple",
        "id=\"upload-progress\"",
        "table id=\"documents\"",
        "로그아웃",
        "관리자",
    ] {
        assert!(page.body.contains(needle), "/admin lacks {needle}");
    }
    assert!(page.body.contains("비밀.md"));

    // uploads: limits first, then one that becomes searchable without a restart
    let bearer = format!("Bearer {admin}");
    let upload = |files: &[(&str, &[u8])], who: &str| {
        let (kind, body) = multipart(files, "public");
        send(
            &url,
            "POST",
            "/api/admin/documents",
            &[("Authorization", who), ("Content-Type", &kind)],
            &body,
        )
    };
    assert_eq!(
        upload(&[("a.md", b"# x\n\ny\n")], "Bearer nobody").status,
        401
    );
    let r = upload(&[("a.exe", b"MZ\x90\x00binary")], &bearer);
    assert_eq!(r.status, 415, "{}", r.body);
    assert!(r.body.contains("형식"), "{}", r.body);
    assert_eq!(upload(&[("empty.md", b"")], &bearer).status, 422);
    assert_eq!(upload(&[], &bearer).status, 422);
    let new_doc = "# 공지\n\n반려동물 간식의 살모넬라 검사는 분기마다 실시한다.\n".as_bytes();
    let r = upload(
        &[("공지.md", new_doc), ("잘못.md", b"\xff\xfe\x00")],
        &bearer,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let job = serde_json::from_str::<Value>(&r.body).unwrap()["job"]
        .as_u64()
        .unwrap();
    let start = Instant::now();
    let finished = loop {
        let r = send(
            &url,
            "GET",
            &format!("/api/admin/jobs/{job}"),
            &[("Authorization", &bearer)],
            b"",
        );
        let j: Value = serde_json::from_str(&r.body).unwrap();
        if j["state"] == "done" || j["state"] == "failed" {
            break j;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the job did not finish: {j}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(finished["state"], "done", "{finished}");
    assert_eq!(finished["files"], 2);
    let items = finished["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|i| i["name"] == "공지.md" && i["state"] == "done"),
        "{finished}"
    );
    assert!(data.join("uploads/공지.md").is_file());
    let found = get(&url, &format!("/search?q={}", enc("살모넬라 검사")), None);
    assert!(
        found.body.contains("공지.md"),
        "the upload is not searchable: {}",
        found.body
    );
    let audit = std::fs::read_to_string(data.join("audit.jsonl")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"upload\"") && l.contains("\"lee\"")),
        "{audit}"
    );

    // re-ingest and delete
    let r = send(
        &url,
        "POST",
        &format!("/api/admin/documents/{}/reingest", enc("공지.md")),
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let job = serde_json::from_str::<Value>(&r.body).unwrap()["job"]
        .as_u64()
        .unwrap();
    let start = Instant::now();
    loop {
        let j: Value = serde_json::from_str(
            &send(
                &url,
                "GET",
                &format!("/api/admin/jobs/{job}"),
                &[("Authorization", &bearer)],
                b"",
            )
            .body,
        )
        .unwrap();
        if j["state"] == "done" {
            break;
        }
        assert!(
            j["state"] != "failed" && start.elapsed() < Duration::from_secs(120),
            "{j}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        send(
            &url,
            "DELETE",
            &format!("/api/admin/documents/{}", enc("공지.md")),
            &[("Authorization", &format!("Bearer {official}"))],
            b""
        )
        .status,
        403
    );
    let r = send(
        &url,
        "DELETE",
        &format!("/api/admin/documents/{}", enc("공지.md")),
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        !get(&url, &format!("/search?q={}", enc("살모넬라 검사")), None)
            .body
            .contains("공지.md")
    );
    assert!(!data.join("uploads/공지.md").exists());
    assert_eq!(
        send(
            &url,
            "DELETE",
            &format!("/api/admin/documents/{}", enc("공지.md")),
            &[("Authorization", &bearer)],
            b""
        )
        .status,
        404
    );

    // the eval report: a chart, the task, its score, the gate; the task's items
    let eval = get(&url, "/eval", None);
    assert_eq!(eval.status, 200, "{}", eval.body);
    assert!(eval.body.contains("<svg") && eval.body.contains("class=\"chart\""));
    assert!(eval.body.contains("kobest_copa") && eval.body.contains("0.4"));
    assert!(eval.body.contains("미달"), "0.4 is below the gate's 0.55");
    // the server's folders are not shown to the public
    let data_text = data.display().to_string();
    assert!(!eval.body.contains(&data_text), "{}", eval.body);
    assert!(
        !eval.body.contains("eval_dir"),
        "nor the names of config keys"
    );
    let items = get(&url, "/eval/run1/kobest_copa", None);
    assert_eq!(items.status, 200);
    assert!(
        items.body.contains("전제: 비가 왔다")
            && items.body.contains("우산을 썼다")
            && items.body.contains("틀림")
    );
    assert_eq!(get(&url, "/eval/run1/..%2Fsecret", None).status, 404);
    let compare = get(&url, "/eval?a=run1&b=run1", None);
    assert!(compare.body.contains("id=\"comparison\""));
    assert_eq!(get(&url, "/eval?a=run1&b=nope", None).status, 404);
}
