//! End-to-end test of `POST /api/ask` on a running server over a real index: the streamed
//! answer (SSE `delta` events, then the `answer` event) and the same JSON without streaming;
//! a role claimed in the body is not trusted; a token is, and its reads of internal documents
//! are audited.

mod common;

use common::{ingest, new_token, post_json, request, shared, start_server_with};
use serde_json::Value;

#[test]
fn the_server_answers_with_citations_by_sse_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    for rel in [
        "statutes/식품위생분야종사자의건강진단규칙.md",
        "mfds_data/mfds_safety_letters_subset.json",
    ] {
        std::fs::create_dir_all(docs.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(shared().join(rel), docs.join(rel)).unwrap();
    }
    std::fs::write(
        tmp.path().join("비밀.md"),
        "# 내부 점검 메모\n\n건강진단 결과서 위조 업소 명단은 서울 강남구 가나다식당이며 외부 공개를 금지한다.\n",
    )
    .unwrap();
    let data = tmp.path().join("data");
    ingest(&data, &docs, "public");
    ingest(&data, &tmp.path().join("비밀.md"), "internal");

    let official = new_token(&data, "official", "kim");
    let (_server, url) = start_server_with(&data, &[("ANJEON_AUTH_TOKENS", &official.1)]);
    let question = "건강진단 유효기간이 끝나가는데, 언제까지 다시 받아야 하나요?";
    let (status, body) = post_json(
        &url,
        "/api/ask",
        &serde_json::json!({ "question": question, "stream": false }).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let whole: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(whole["refused"], false, "{whole}");
    assert!(!whole["citations"].as_array().unwrap().is_empty());

    let (status, stream) = post_json(
        &url,
        "/api/ask",
        &serde_json::json!({ "question": question }).to_string(),
    );
    assert_eq!(status, 200, "{stream}");
    let mut text = String::new();
    let mut last = None;
    for event in stream.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let name = event
            .lines()
            .find_map(|l| l.strip_prefix("event:"))
            .map(str::trim);
        let data: String = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim_start)
            .collect();
        match name {
            Some("delta") => text.push_str(
                serde_json::from_str::<Value>(&data).unwrap()["text"]
                    .as_str()
                    .unwrap(),
            ),
            Some("answer") => last = Some(serde_json::from_str::<Value>(&data).unwrap()),
            _ => {}
        }
    }
    let last = last.expect("a final answer event");
    assert_eq!(last["answer"], whole["answer"]);
    assert_eq!(text.trim(), last["answer"].as_str().unwrap().trim());

    // claiming to be an official does not open internal documents
    let (status, body) = post_json(
        &url,
        "/api/ask",
        &serde_json::json!({ "question": "건강진단 결과서 위조 업소 명단은?", "role": "official", "stream": false })
            .to_string(),
    );
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("가나다식당"), "{body}");

    let (status, body) = post_json(&url, "/api/ask", "{\"question\": ");
    assert_eq!(status, 400, "{body}");

    // an official's token opens them, and the read is audited
    let secret =
        serde_json::json!({ "question": "건강진단 결과서 위조 업소 명단은?", "stream": false })
            .to_string();
    let bearer = format!("Bearer {}", official.0);
    let reply = request(
        &url,
        "POST",
        "/api/ask",
        &[("Authorization", &bearer)],
        &secret,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("가나다식당"), "{}", reply.body);
    let audit = std::fs::read_to_string(data.join("audit.jsonl")).unwrap();
    let last: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["actor"].as_str(), last["action"].as_str()),
        (Some("kim"), Some("ask"))
    );
    assert!(
        last["targets"][0].as_str().unwrap().contains("비밀.md"),
        "{last}"
    );

    // the search API reads what the role may read, and audits it
    let path = "/api/search?q=%EA%B0%80%EB%82%98%EB%8B%A4%EC%8B%9D%EB%8B%B9"; // 가나다식당
    let public = request(&url, "GET", path, &[], "");
    assert_eq!(public.status, 200, "{}", public.body);
    assert!(!public.body.contains("가나다식당"), "{}", public.body);
    let found = request(&url, "GET", path, &[("Authorization", &bearer)], "");
    assert!(found.body.contains("가나다식당"), "{}", found.body);
    let audit = std::fs::read_to_string(data.join("audit.jsonl")).unwrap();
    assert!(
        audit.lines().last().unwrap().contains("\"search\""),
        "{audit}"
    );

    // a token nobody holds is refused, not quietly treated as the public
    let reply = request(
        &url,
        "POST",
        "/api/ask",
        &[("Authorization", "Bearer guess")],
        &secret,
    );
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(
        reply.body.contains("authentication_error"),
        "{}",
        reply.body
    );

    // the web login sets an HttpOnly cookie that identifies the caller
    let login = serde_json::json!({ "token": official.0 }).to_string();
    let reply = request(&url, "POST", "/api/login", &[], &login);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.head.contains("set-cookie: anjeon_token="),
        "{}",
        reply.head
    );
    assert!(reply.head.contains("httponly"), "{}", reply.head);
    let cookie = format!("anjeon_token={}", official.0);
    let me = request(&url, "GET", "/api/me", &[("Cookie", &cookie)], "");
    let me: Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(me["role"], "official", "{me}");
    let anonymous: Value =
        serde_json::from_str(&request(&url, "GET", "/api/me", &[], "").body).unwrap();
    assert_eq!(anonymous["role"], "public");
    let wrong = serde_json::json!({ "token": "guess" }).to_string();
    assert_eq!(request(&url, "POST", "/api/login", &[], &wrong).status, 401);
}
