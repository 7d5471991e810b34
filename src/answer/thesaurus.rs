//! Everyday words → statutory terms: citizens ask about 보건증 and 알바, the statutes say
//! 건강진단 and 종사자. A question is also searched by, and credited for, the statutory terms
//! of the everyday words it contains (the list is `thesaurus.ko.tsv`, data not code).

/// One everyday word and the statutory terms that name the same thing.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub word: String,
    pub terms: Vec<String>,
}

/// The built-in word list.
pub fn builtin() -> &'static [Entry] {
    static ENTRIES: std::sync::OnceLock<Vec<Entry>> = std::sync::OnceLock::new();
    ENTRIES.get_or_init(|| parse(include_str!("thesaurus.ko.tsv")))
}

/// Parses `word<TAB>term, term…` lines; `#` starts a comment line.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .map(|(word, terms)| Entry {
            word: word.trim().to_string(),
            terms: terms
                .split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect(),
        })
        .filter(|e| !e.word.is_empty() && !e.terms.is_empty())
        .collect()
}

/// The entries whose everyday word occurs in `question`.
pub fn matches<'a>(entries: &'a [Entry], question: &str) -> Vec<&'a Entry> {
    entries
        .iter()
        .filter(|e| question.contains(e.word.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_list_parses_and_matches_inside_words() {
        let entries = builtin();
        assert!(entries.len() >= 30, "{}", entries.len());
        let found = matches(entries, "편의점 알바도 보건증이 필요한가요?");
        let words: Vec<&str> = found.iter().map(|e| e.word.as_str()).collect();
        assert_eq!(words, ["보건증", "알바"]);
        assert_eq!(found[0].terms, ["건강진단"]);
        assert!(matches(entries, "식품위생법 제44조").is_empty());
        assert_eq!(
            parse("# c\n\nx\ty, z\nno tab\n"),
            vec![Entry {
                word: "x".into(),
                terms: vec!["y".into(), "z".into()],
            }]
        );
    }
}
