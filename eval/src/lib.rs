//! anjeon's evaluation suite: Korean leaderboard-style benchmarks and TruthfulQA scored by
//! log-likelihood exactly as lm-evaluation-harness scores them, resumable runs and CI gates.
//!
//! A benchmark is a task file (`eval/tasks/*.toml`, see [`task`]); [`Task::request`] turns
//! each document into one context and its continuations; an engine implementing
//! [`LogLikelihood`] scores them; [`run`] records every document and writes `results.json`;
//! a [`Gate`] decides whether the results may ship. [`qa`] reads the RAG suite's questions,
//! [`rag`] defines its records and figures and [`probes`] its red-team probes; [`report`]
//! writes `report.html` (its charts by [`chart`]) and [`compare`] sets two runs side by side.

pub mod chart;
pub mod compare;
pub mod dataset;
pub mod engine;
pub mod error;
pub mod gate;
pub mod probes;
pub mod qa;
pub mod rag;
pub mod report;
pub mod request;
pub mod runner;
pub mod score;
pub mod task;
pub mod template;

pub use engine::{LogLikelihood, Scored};
pub use error::{EvalError, Result};
pub use gate::{Gate, GateReport, Outcome};
pub use probes::ProbeSet;
pub use qa::{load_questions, QaItem};
pub use rag::{RagMetrics, RagSample};
pub use request::Request;
pub use runner::{run, Limit, ModelInfo, Progress, Results, RunConfig, SampleRecord};
pub use score::{percentile, Metric, Summary};
pub use task::{builtin_tasks, load_dir, select, Task, TaskData};

#[cfg(test)]
pub(crate) mod testing {
    //! Test-only engine: scores continuations without a model.
    //! Never use it for real results; it exists so runner tests have something deterministic.

    use crate::{LogLikelihood, Result, Scored};

    /// Scores each continuation by minus its length in characters, so the shortest
    /// option always wins; counts its calls so tests can see what was re-scored.
    #[derive(Debug, Default)]
    pub struct NegativeLengthScorer {
        pub calls: usize,
    }

    impl LogLikelihood for NegativeLengthScorer {
        fn loglikelihood(
            &mut self,
            _context: &str,
            continuations: &[String],
        ) -> Result<Vec<Scored>> {
            self.calls += 1;
            Ok(continuations
                .iter()
                .map(|c| Scored {
                    logprob: -(c.chars().count() as f64),
                    is_greedy: false,
                    tokens: c.chars().count(),
                })
                .collect())
        }
    }
}
