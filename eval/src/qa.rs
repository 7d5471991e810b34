//! The assistant's own question sets (`../shared/qa/dev.jsonl`): questions about MFDS
//! documents, each answerable with a gold document and quote, or one the assistant must refuse.

use crate::error::{EvalError, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

/// One question of a RAG evaluation set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QaItem {
    pub id: String,
    pub question: String,
    /// Whether the documents answer it; if not, the right answer is a refusal.
    pub answerable: bool,
    /// The document key (path relative to the corpus folder) that answers it.
    #[serde(default)]
    pub gold_doc: Option<String>,
    /// A passage of `gold_doc` that supports the answer, verbatim.
    #[serde(default)]
    pub gold_quote: Option<String>,
    /// What a correct answer says (for an unanswerable question, how to refuse).
    pub reference_answer: String,
    /// Who asks (`citizen`, `official`, …).
    #[serde(default)]
    pub kind: Option<String>,
}

/// Reads a JSON-lines question set, checking that every answerable question names its
/// gold document and quote and that ids are unique.
pub fn load_questions(path: &Path) -> Result<Vec<QaItem>> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    let bad = |line: usize, detail: String| EvalError::QuestionSet {
        path: path.to_path_buf(),
        detail: format!("line {line}: {detail}"),
    };
    let mut items = Vec::new();
    let mut ids = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item: QaItem = serde_json::from_str(line).map_err(|e| bad(i + 1, e.to_string()))?;
        if item.answerable && (item.gold_doc.is_none() || item.gold_quote.is_none()) {
            return Err(bad(
                i + 1,
                format!(
                    "answerable question {:?} needs gold_doc and gold_quote",
                    item.id
                ),
            ));
        }
        if !ids.insert(item.id.clone()) {
            return Err(bad(i + 1, format!("id {:?} appears twice", item.id)));
        }
        items.push(item);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shared_dev_set() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/qa/dev.jsonl");
        let items = load_questions(&path).unwrap();
        assert!(items.len() >= 30);
        assert!(items.iter().any(|q| !q.answerable && q.gold_doc.is_none()));
        assert!(items
            .iter()
            .filter(|q| q.answerable)
            .all(|q| q.gold_quote.is_some()));
    }

    #[test]
    fn rejects_answerable_questions_without_gold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.jsonl");
        std::fs::write(
            &path,
            r#"{"id": "a", "question": "?", "answerable": true, "reference_answer": "x"}"#,
        )
        .unwrap();
        assert!(matches!(
            load_questions(&path),
            Err(EvalError::QuestionSet { .. })
        ));
        std::fs::write(
            &path,
            "{\"id\": \"a\", \"question\": \"?\", \"answerable\": false, \"reference_answer\": \"x\"}\n\
             {\"id\": \"a\", \"question\": \"?\", \"answerable\": false, \"reference_answer\": \"x\"}\n",
        )
        .unwrap();
        assert!(load_questions(&path).is_err(), "duplicate id");
    }
}
