//! Tests of the pipeline's own helpers in `mod.rs`.

use super::*;

#[test]
fn searched_words_read_like_the_question() {
    let terms: Vec<String> = [
        "초등학생",
        "초등",
        "학생",
        "편의점",
        "편의",
        "감기약",
        "감기",
        "사",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(searched_words(&terms), "초등학생 편의점 감기약");
}

#[test]
fn a_request_that_names_no_role_is_public() {
    let req: AskRequest = serde_json::from_str(r#"{"question": "q"}"#).unwrap();
    assert_eq!(
        req.role,
        Role::Public,
        "a request that names no role is public"
    );
    assert!(req.history.is_empty());
}

#[test]
fn the_answer_json_has_the_documented_keys() {
    let answer = Answer {
        answer: "a [1]".into(),
        refused: false,
        citations: vec![Citation {
            n: 1,
            doc: "d".into(),
            locator: "제1조".into(),
            quote: "q".into(),
            title: "t".into(),
            text: "q".into(),
            id: 7,
            access: "public".into(),
        }],
        claims: vec![Claim {
            text: "a".into(),
            citations: vec![1],
            supported: true,
            score: 1.0,
            verdict: Verdict::Supported,
        }],
        prompt_version: "v1".into(),
        question: "q".into(),
        mode: AnswerMode::Extractive,
        refusal_reason: None,
        medical_referral: false,
        timings: Timings::default(),
    };
    let v = serde_json::to_value(&answer).unwrap();
    for key in ["answer", "refused", "citations", "claims", "prompt_version"] {
        assert!(v.get(key).is_some(), "{key}");
    }
    for key in ["n", "doc", "locator", "quote"] {
        assert!(v["citations"][0].get(key).is_some(), "{key}");
    }
    for key in ["text", "citations", "supported", "score"] {
        assert!(v["claims"][0].get(key).is_some(), "{key}");
    }
}
