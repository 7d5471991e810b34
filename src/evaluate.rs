//! `anjeon eval`: the eval suite's benchmarks run on a language model through the
//! [`Generator`] seam, resumably, and the assistant's own RAG eval ([`rag`]), with the
//! results checked against a CI gate.
//!
//! `anjeon-eval` defines the tasks, the scoring and the records; this module picks tasks by
//! name or suite, adapts a [`Generator`] to the suite's [`LogLikelihood`] trait, and says
//! which model was measured.

pub mod rag;

use crate::error::{Error, Result};
use crate::llm::Generator;
use anjeon_eval::{EvalError, LogLikelihood, Progress, Results, RunConfig, Task};
use std::path::Path;

/// Named groups of tasks for `--suite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// Every built-in task tagged `leaderboard` (the Open Ko-LLM Leaderboard's public
    /// equivalents and TruthfulQA).
    Leaderboard,
    /// The assistant's own hallucination eval on domain questions.
    Rag,
    /// Every built-in task and the RAG eval.
    All,
}

/// What a run will do: benchmark tasks in order, and whether the RAG eval is asked for.
#[derive(Debug, Clone)]
pub struct Plan {
    pub tasks: Vec<Task>,
    pub rag: bool,
}

/// Tasks named by `--tasks` (comma-separated names; `rag` names the RAG eval) and `--suite`,
/// in the order given, each once.
pub fn plan(names: &[String], suite: Option<Suite>) -> Result<Plan> {
    let builtin = anjeon_eval::builtin_tasks()?;
    let mut wanted: Vec<&str> = Vec::new();
    let mut rag = false;
    match suite {
        Some(Suite::Leaderboard) => wanted.extend(
            builtin
                .iter()
                .filter(|t| t.tags.iter().any(|g| g == "leaderboard"))
                .map(|t| t.name.as_str()),
        ),
        Some(Suite::All) => {
            wanted.extend(builtin.iter().map(|t| t.name.as_str()));
            rag = true;
        }
        Some(Suite::Rag) => rag = true,
        None => {}
    }
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if name == "rag" {
            rag = true;
        } else if !wanted.contains(&name) {
            wanted.push(name);
        }
    }
    if wanted.is_empty() && !rag {
        return Err(Error::InvalidInput(format!(
            "name tasks with --tasks or a suite with --suite (leaderboard, rag, all); tasks: {}",
            builtin
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let tasks = anjeon_eval::select(&builtin, &wanted)?;
    Ok(Plan { tasks, rag })
}

/// The suite's view of a [`Generator`]: continuations scored by log-likelihood.
pub struct GeneratorScorer<'a> {
    generator: &'a dyn Generator,
}

impl<'a> GeneratorScorer<'a> {
    pub fn new(generator: &'a dyn Generator) -> Self {
        GeneratorScorer { generator }
    }
}

impl LogLikelihood for GeneratorScorer<'_> {
    fn loglikelihood(
        &mut self,
        context: &str,
        continuations: &[String],
    ) -> anjeon_eval::Result<Vec<anjeon_eval::Scored>> {
        let scored = self
            .generator
            .loglikelihood(context, continuations)
            .map_err(|e| EvalError::Engine(Box::new(e)))?;
        Ok(scored
            .into_iter()
            .map(|s| anjeon_eval::Scored {
                logprob: s.logprob,
                is_greedy: s.is_greedy,
                tokens: s.tokens,
            })
            .collect())
    }
}

/// Runs `tasks` on `generator`, writing records and `results.json` under `config.out_dir`;
/// documents recorded there by an earlier run are not scored again.
pub fn run_benchmarks(
    generator: &dyn Generator,
    tasks: &[Task],
    config: &RunConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Results> {
    let mut scorer = GeneratorScorer::new(generator);
    Ok(anjeon_eval::run(&mut scorer, tasks, config, progress)?)
}

/// The model as `results.json` records it: its file name and sha256.
pub fn model_info(path: &Path) -> Result<anjeon_eval::ModelInfo> {
    let id = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    Ok(anjeon_eval::ModelInfo {
        id,
        sha256: Some(crate::assets::sha256_file(path)?),
    })
}

/// Whether an error is the user's to fix (bad arguments, task or gate files): exit code 2.
pub fn is_usage_error(e: &Error) -> bool {
    matches!(
        e,
        Error::InvalidInput(_)
            | Error::Config(_)
            | Error::Eval(
                EvalError::Gate { .. }
                    | EvalError::UnknownTask(_)
                    | EvalError::TaskDefinition { .. }
                    | EvalError::QuestionSet { .. }
                    | EvalError::Probes { .. }
            )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{GenerateParams, Generation, Prompt, Scored};

    fn names(plan: &Plan) -> Vec<&str> {
        plan.tasks.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn tasks_and_suites_select_in_order_without_repeats() {
        let p = plan(
            &[
                "kobest_copa".into(),
                "kobest_boolq".into(),
                "kobest_copa".into(),
            ],
            None,
        )
        .unwrap();
        assert_eq!(names(&p), ["kobest_copa", "kobest_boolq"]);
        assert!(!p.rag);

        let lb = plan(&[], Some(Suite::Leaderboard)).unwrap();
        assert!(lb.tasks.len() >= 12, "{:?}", names(&lb));
        assert!(lb
            .tasks
            .iter()
            .all(|t| t.tags.iter().any(|g| g == "leaderboard")));
        assert!(!lb.rag);

        let all = plan(&["kobest_copa".into()], Some(Suite::All)).unwrap();
        assert!(all.rag);
        assert_eq!(
            names(&all).iter().filter(|n| **n == "kobest_copa").count(),
            1
        );

        assert!(plan(&["rag".into()], None).unwrap().rag);
        let rag = plan(&[], Some(Suite::Rag)).unwrap();
        assert!(rag.rag && rag.tasks.is_empty());
    }

    #[test]
    fn unknown_or_missing_tasks_are_usage_errors() {
        let e = plan(&["no_such_task".into()], None).unwrap_err();
        assert!(is_usage_error(&e), "{e}");
        let e = plan(&[], None).unwrap_err();
        assert!(is_usage_error(&e), "{e}");
        assert!(!is_usage_error(&Error::Model("x".into())));
    }

    /// Scores a continuation by minus its byte length; fails on an empty context.
    struct Bytes;

    impl Generator for Bytes {
        fn model_id(&self) -> String {
            "bytes".into()
        }
        fn generate(
            &self,
            _: &Prompt,
            _: &GenerateParams,
            _: &mut dyn FnMut(&str) -> bool,
        ) -> Result<Generation> {
            Err(Error::Model("scoring only".into()))
        }
        fn loglikelihood(&self, context: &str, continuations: &[String]) -> Result<Vec<Scored>> {
            if context.is_empty() {
                return Err(Error::InvalidInput("empty context".into()));
            }
            Ok(continuations
                .iter()
                .map(|c| Scored {
                    logprob: -(c.len() as f64),
                    is_greedy: false,
                    tokens: c.len(),
                })
                .collect())
        }
        fn count_tokens(&self, text: &str) -> Result<usize> {
            Ok(text.len())
        }
        fn context_tokens(&self) -> usize {
            1 << 20
        }
    }

    #[test]
    fn the_adapter_passes_scores_and_errors_through() {
        let mut scorer = GeneratorScorer::new(&Bytes);
        let s = scorer
            .loglikelihood("문맥", &[" 가".into(), " ab".into()])
            .unwrap();
        assert_eq!(s[0].logprob, -4.0);
        assert_eq!(s[1].tokens, 3);
        let e = scorer.loglikelihood("", &[" 가".into()]).unwrap_err();
        assert!(matches!(e, EvalError::Engine(_)), "{e}");
    }
}
