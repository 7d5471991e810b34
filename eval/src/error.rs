//! The one error type of the eval crate.
//! Each variant names the file, task or record at fault, so the message says what to fix.

use std::path::PathBuf;

/// Why an evaluation could not be defined, loaded, run or judged.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A task definition file that does not parse or contradicts itself.
    #[error("task definition {}: {detail}", path.display())]
    TaskDefinition { path: PathBuf, detail: String },
    /// A data file (or a record in it) that does not match what its task expects.
    #[error("data file {}: {detail}", path.display())]
    Data { path: PathBuf, detail: String },
    /// A task that cannot build its requests, e.g. a template names a field a document lacks.
    #[error("task {task}: {detail}")]
    Task { task: String, detail: String },
    #[error("unknown task {0:?}")]
    UnknownTask(String),
    /// A gate file that does not parse; the CLI maps this to exit code 2.
    #[error("gate file {}: {detail}", path.display())]
    Gate { path: PathBuf, detail: String },
    /// A samples file from an earlier run that cannot be resumed.
    #[error("records {}: {detail}", path.display())]
    Records { path: PathBuf, detail: String },
    /// A question-set file (RAG suite) that does not parse.
    #[error("question set {}: {detail}", path.display())]
    QuestionSet { path: PathBuf, detail: String },
    /// A red-team probe set (RAG suite) that does not parse or contradicts itself.
    #[error("probe set {}: {detail}", path.display())]
    Probes { path: PathBuf, detail: String },
    /// The language model failed or answered with the wrong shape.
    #[error("engine: {0}")]
    Engine(Box<dyn std::error::Error + Send + Sync>),
}

impl EvalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EvalError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn task(task: &str, detail: impl ToString) -> Self {
        EvalError::Task {
            task: task.to_string(),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn data(path: impl Into<PathBuf>, detail: impl ToString) -> Self {
        EvalError::Data {
            path: path.into(),
            detail: detail.to_string(),
        }
    }
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;
