//! Documents turned into log-likelihood requests: one context per document (description,
//! few-shot examples, the prompt) and the continuations to score after it, shared by all answer sets.
//!
//! Layout as lm-evaluation-harness builds it: `description + sep`, then per example
//! `prompt + target_delimiter + target + sep`, then the prompt; each continuation is
//! `target_delimiter + choice`. Few-shot examples are drawn per document from a seed.

use crate::dataset::{AnswerSet, Doc, MAIN};
use crate::error::{EvalError, Result};
use crate::task::{Task, TaskData};
use crate::template::{Lookup, TemplateError};
use serde::{Deserialize, Serialize};

/// What the engine is asked for one document.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub task: String,
    /// Position of the document in the task's data (after choice permutation).
    pub doc_index: usize,
    pub doc_id: String,
    pub context: String,
    /// Distinct strings to score after `context`, each starting with the target delimiter.
    pub continuations: Vec<String>,
    /// Each continuation without the delimiter: the harness's "choice", whose length
    /// normalises `acc_norm` and `acc_bytes`.
    pub choices: Vec<String>,
    pub answers: Vec<ScoringSet>,
}

/// One answer set in terms of the request's continuations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoringSet {
    pub name: String,
    /// Index into `continuations` of each option, in option order.
    pub continuations: Vec<usize>,
    pub correct: Vec<bool>,
}

impl Task {
    /// The request for `data.docs[doc_index]` with `num_fewshot` examples.
    pub fn request(
        &self,
        data: &TaskData,
        doc_index: usize,
        num_fewshot: usize,
    ) -> Result<Request> {
        let doc = data
            .docs
            .get(doc_index)
            .ok_or_else(|| EvalError::task(&self.name, format!("no document {doc_index}")))?;
        let in_doc =
            |e: TemplateError| EvalError::task(&self.name, format!("document {:?}: {e}", doc.id));
        let mut context = String::new();
        let separator = self
            .fewshot
            .as_ref()
            .map_or("\n\n", |f| f.separator.as_str());
        if let Some(d) = &self.description {
            context.push_str(d);
            context.push_str(separator);
        }
        for example in self.fewshot_examples(data, doc, num_fewshot)? {
            let in_example = |e: TemplateError| {
                EvalError::task(
                    &self.name,
                    format!("few-shot example {:?}: {e}", example.id),
                )
            };
            let main = example
                .answer_set(MAIN)
                .ok_or_else(|| in_example(TemplateError("no main answer set".into())))?;
            let gold = main.gold().ok_or_else(|| {
                in_example(TemplateError("needs exactly one correct option".into()))
            })?;
            context.push_str(&self.render_prompt(example).map_err(in_example)?);
            context.push_str(&self.target_delimiter);
            context.push_str(&self.render_choice(main, gold).map_err(in_example)?);
            context.push_str(separator);
        }
        context.push_str(&self.render_prompt(doc).map_err(in_doc)?);

        let mut continuations: Vec<String> = Vec::new();
        let mut choices: Vec<String> = Vec::new();
        let mut answers = Vec::new();
        for set in &doc.answers {
            let mut indices = Vec::with_capacity(set.options.len());
            for i in 0..set.options.len() {
                let choice = self.render_choice(set, i).map_err(in_doc)?;
                let continuation = format!("{}{choice}", self.target_delimiter);
                let at = match continuations.iter().position(|c| *c == continuation) {
                    Some(at) => at,
                    None => {
                        continuations.push(continuation);
                        choices.push(choice);
                        continuations.len() - 1
                    }
                };
                indices.push(at);
            }
            answers.push(ScoringSet {
                name: set.name.clone(),
                continuations: indices,
                correct: set.correct.clone(),
            });
        }
        Ok(Request {
            task: self.name.clone(),
            doc_index,
            doc_id: doc.id.clone(),
            context,
            continuations,
            choices,
            answers,
        })
    }

    fn render_prompt(&self, doc: &Doc) -> std::result::Result<String, TemplateError> {
        let options = match doc.answer_set(MAIN) {
            Some(main) if self.prompt.mentions("@options") => Some(self.option_list(main)?),
            _ => None,
        };
        self.prompt.render(&|name| {
            if name == "@options" {
                return Ok(options.clone().map_or(Lookup::Missing, Lookup::Text));
            }
            match doc.text(name).map_err(TemplateError)? {
                Some(t) => Ok(Lookup::Text(t)),
                None => Ok(Lookup::Missing),
            }
        })
    }

    fn option_list(&self, set: &AnswerSet) -> std::result::Result<String, TemplateError> {
        let items = (0..set.options.len())
            .map(|i| self.render_option(&self.list_item, set, i))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(items.join(&self.list_separator))
    }

    fn render_choice(
        &self,
        set: &AnswerSet,
        i: usize,
    ) -> std::result::Result<String, TemplateError> {
        self.render_option(&self.continuation, set, i)
    }

    fn render_option(
        &self,
        template: &crate::template::Template,
        set: &AnswerSet,
        i: usize,
    ) -> std::result::Result<String, TemplateError> {
        if template.mentions("label") && i >= self.labels.len() {
            return Err(TemplateError(format!(
                "{} options but only {} labels",
                set.options.len(),
                self.labels.len()
            )));
        }
        template.render(&|name| {
            Ok(match name {
                "label" => Lookup::Text(self.labels[i].clone()),
                "text" => Lookup::Text(set.options[i].clone()),
                _ => Lookup::Missing,
            })
        })
    }

    /// `k` examples for `doc`, the same every time for the same task, seed and document.
    fn fewshot_examples<'a>(
        &self,
        data: &'a TaskData,
        doc: &Doc,
        k: usize,
    ) -> Result<Vec<&'a Doc>> {
        if k == 0 {
            return Ok(Vec::new());
        }
        let Some(fewshot) = &self.fewshot else {
            return Err(EvalError::task(&self.name, "has no few-shot source"));
        };
        let wanted = match &fewshot.match_field {
            Some(f) => Some(doc.text(f).map_err(|e| EvalError::task(&self.name, e))?),
            None => None,
        };
        let mut pool: Vec<&Doc> = data
            .fewshot_pool
            .iter()
            .filter(|d| !(data.pool_is_test && d.source_index == doc.source_index))
            .filter(|d| match (&wanted, &fewshot.match_field) {
                (Some(w), Some(f)) => d.text(f).ok().as_ref() == Some(w),
                _ => true,
            })
            .collect();
        if pool.len() < k {
            return Err(EvalError::task(
                &self.name,
                format!(
                    "{k} few-shot examples asked for document {:?}, {} available",
                    doc.id,
                    pool.len()
                ),
            ));
        }
        // Seeded per task and source record, so a resumed or limited run draws the same
        // examples, and all choice orders of one record share them.
        let mut rng = SplitMix64::new(
            fewshot.seed ^ fnv1a(self.name.as_bytes()) ^ (doc.source_index as u64).rotate_left(32),
        );
        for i in 0..k {
            let j = i + (rng.next() % (pool.len() - i) as u64) as usize;
            pool.swap(i, j);
        }
        pool.truncate(k);
        Ok(pool)
    }
}

/// A small, fully specified generator, so few-shot draws never depend on a library version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn task(extra: &str) -> Task {
        let text = format!(
            r#"
            name = "t"
            metrics = ["acc"]
            [data]
            path = "x.jsonl"
            split = "test"
            options = {{ field = "choices" }}
            gold = {{ field = "gold" }}
            {extra}
            "#
        );
        Task::parse(&text, PathBuf::from("t.toml")).unwrap()
    }

    fn docs(n: usize) -> Vec<Doc> {
        (0..n)
            .map(|i| Doc {
                id: format!("d{i}"),
                source_index: i,
                fields: serde_json::from_str(&format!(r#"{{"q": "질문{i}", "cat": "{}"}}"#, i % 2))
                    .unwrap(),
                answers: vec![AnswerSet {
                    name: MAIN.into(),
                    options: vec![format!("가{i}"), format!("나{i}")],
                    correct: vec![i % 2 == 0, i % 2 == 1],
                }],
            })
            .collect()
    }

    fn data(n: usize) -> TaskData {
        TaskData {
            docs: docs(n),
            fewshot_pool: docs(n),
            pool_is_test: true,
            files: Vec::new(),
        }
    }

    #[test]
    fn zero_shot_context_and_continuations() {
        let t = task("[prompt]\ntemplate = \"{q} 답변:\"");
        let r = t.request(&data(2), 1, 0).unwrap();
        assert_eq!(r.context, "질문1 답변:");
        assert_eq!(r.continuations, vec![" 가1", " 나1"]);
        assert_eq!(r.choices, vec!["가1", "나1"]);
        assert_eq!(r.answers[0].correct, vec![false, true]);
    }

    #[test]
    fn labels_and_option_lists() {
        let t = task(
            r#"[prompt]
            template = "{q}\n{@options}\n정답："
            [choices]
            continuation = "{label}"
            labels = ["A", "B"]"#,
        );
        let r = t.request(&data(1), 0, 0).unwrap();
        assert_eq!(r.context, "질문0\nA. 가0\nB. 나0\n정답：");
        assert_eq!(r.continuations, vec![" A", " B"]);
        let short = task(
            r#"[prompt]
            template = "{q}"
            [choices]
            continuation = "{label}"
            labels = ["A"]"#,
        );
        assert!(
            short.request(&data(1), 0, 0).is_err(),
            "two options, one label"
        );
    }

    #[test]
    fn fewshot_is_deterministic_and_never_shows_the_document_itself() {
        let t = task("[prompt]\ntemplate = \"{q}\"\ndescription = \"설명\"\n[fewshot]\n");
        let d = data(6);
        for i in 0..6 {
            let a = t.request(&d, i, 5).unwrap();
            let b = t.request(&d, i, 5).unwrap();
            assert_eq!(a, b);
            assert!(a.context.starts_with("설명\n\n"));
            // the five others, each followed by its gold option, then the document itself
            assert_eq!(a.context.matches("\n\n").count(), 6);
            assert_eq!(a.context.matches(&format!("질문{i}")).count(), 1);
            assert!(a.context.ends_with(&format!("\n\n질문{i}")));
            for j in (0..6).filter(|j| *j != i) {
                let gold = if j % 2 == 0 { "가" } else { "나" };
                assert!(a.context.contains(&format!("질문{j} {gold}{j}\n\n")));
            }
        }
        assert!(t.request(&d, 0, 6).is_err(), "only five others exist");
    }

    #[test]
    fn fewshot_match_field_keeps_the_same_group() {
        let t = task("[prompt]\ntemplate = \"{q}|\"\n[fewshot]\nmatch_field = \"cat\"\n");
        let r = t.request(&data(7), 2, 3).unwrap();
        for j in [0, 4, 6] {
            assert!(r.context.contains(&format!("질문{j}|")));
        }
        assert!(t.request(&data(7), 2, 4).is_err());
    }

    #[test]
    fn shared_options_are_scored_once() {
        let t = Task::parse(
            r#"
            name = "tq"
            metrics = ["mc1", "mc2"]
            [data]
            path = "x.jsonl"
            split = "validation"
            [data.answers.mc1]
            options = { field = "mc1.choices" }
            labels = "mc1.labels"
            [data.answers.mc2]
            options = { field = "mc2.choices" }
            labels = "mc2.labels"
            [prompt]
            template = "Q: {q}\nA:"
            "#,
            PathBuf::from("tq.toml"),
        )
        .unwrap();
        let doc = Doc {
            id: "x".into(),
            source_index: 0,
            fields: serde_json::from_str(r#"{"q": "?"}"#).unwrap(),
            answers: vec![
                AnswerSet {
                    name: "mc1".into(),
                    options: vec!["a".into(), "c".into()],
                    correct: vec![true, false],
                },
                AnswerSet {
                    name: "mc2".into(),
                    options: vec!["a".into(), "b".into(), "c".into()],
                    correct: vec![true, true, false],
                },
            ],
        };
        let d = TaskData {
            docs: vec![doc],
            fewshot_pool: Vec::new(),
            pool_is_test: false,
            files: Vec::new(),
        };
        let r = t.request(&d, 0, 0).unwrap();
        assert_eq!(r.continuations, vec![" a", " c", " b"]);
        assert_eq!(r.answers[0].continuations, vec![0, 1]);
        assert_eq!(r.answers[1].continuations, vec![0, 2, 1]);
        assert!(t.request(&d, 0, 1).is_err(), "no few-shot source");
    }
}
