//! Text pieces the pipeline reasons about: sentences of passages and answers, citation
//! markers `[n]`, and the verbatim spans a leak check looks for.

use std::collections::HashSet;

/// One sentence of an answer with the passage numbers it cites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CitedSentence {
    /// The sentence without its citation markers.
    pub text: String,
    pub citations: Vec<usize>,
}

/// Whether a sentence only points elsewhere for its substance: "…은 대통령령으로 정한다",
/// "…은 별표 1과 같다", "…에 따른다" (an amendment note such as "<개정 2013.3.23>" aside).
/// It answers nothing by itself; a sentence that introduces the list after it ("다음 각 호와
/// 같다") is not one, since its items follow.
pub fn is_pointer(sentence: &str) -> bool {
    let s = without_notes(sentence);
    !is_list_intro(sentence)
        && (s.ends_with("으로 정한다")
            || s.ends_with("로 정한다")
            || s.ends_with("과 같다")
            || s.ends_with("와 같다")
            || s.ends_with("에 따른다"))
}

/// `text` reduced for comparing names: no whitespace, quotes or middle dots, so that
/// '고열량·저영양 식품' names "고열량ㆍ저영양 식품".
pub fn compact(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && !NAME_MARKS.contains(*c))
        .collect()
}

/// Quotes and middle dots, which names are written with or without.
const NAME_MARKS: &str = "\"'“”‘’「」『』·ㆍ・‧";

/// The term a sentence defines, compacted: 화장품 for `1. "화장품"이란 …을 말한다.`
pub fn defined_term(sentence: &str) -> Option<String> {
    let s = without_notes(sentence).trim().trim_end_matches('.');
    if !(s.ends_with("말한다") || s.ends_with("말합니다")) {
        return None;
    }
    let at = s.find("란 ")?;
    let head = s[..at].strip_suffix('이').unwrap_or(&s[..at]);
    let head = head.trim_start_matches(|c: char| ('①'..='⑳').contains(&c) || c.is_whitespace());
    let term = compact(after_item_number(head).unwrap_or(head));
    (!term.is_empty() && term.chars().count() <= 30).then_some(term)
}

/// Whether a sentence only introduces the list that follows it ("다음 각 호와 같다",
/// "다음과 같다", or their polite forms, before any amendment notes; or a definition by the
/// list, "…다음 각 목의 어느 하나에 해당하는 것을 말한다"): on its own it answers nothing.
pub fn is_list_intro(sentence: &str) -> bool {
    let s = without_notes(sentence);
    s.ends_with("다음 각 호와 같다")
        || s.ends_with("다음과 같다")
        || s.ends_with("다음 각 호와 같습니다")
        || s.ends_with("다음과 같습니다")
        // a definition by its list: "…다음 각 목의 어느 하나에 해당하는 것을 말한다"
        || (s.contains("다음 각 ") && s.ends_with("말한다"))
}

/// Whether a sentence is a list item that only names a matter ("4. 의료기기의 등급 분류 및
/// 지정에 관한 사항", "다. 그 밖에 필요한 사항"): it says nothing about that matter, so on its
/// own it answers nothing (after its list's introduction it tells what the list covers).
pub fn is_topic_only(sentence: &str) -> bool {
    let s = without_notes(sentence);
    is_list_item(s) && s.ends_with("사항")
}

/// Whether a line is an article's heading ("제15조(영업의 등록 등)", "제44조의2(…)"): it
/// names what the article is about and states nothing.
pub fn is_article_heading(sentence: &str) -> bool {
    let Some(rest) = without_notes(sentence).strip_prefix('제') else {
        return false;
    };
    let digits = |t: &str| t.bytes().take_while(u8::is_ascii_digit).count();
    let number = digits(rest);
    let Some(rest) = rest[number..].strip_prefix('조') else {
        return false;
    };
    // 제44조의2: an article inserted after 제44조
    let rest = match rest.strip_prefix('의') {
        Some(branch) if digits(branch) > 0 => &branch[digits(branch)..],
        _ => rest,
    };
    number > 0 && (rest.is_empty() || (rest.starts_with('(') && rest.ends_with(')')))
}

/// Whether a sentence is a statute's proviso, which qualifies the sentence before it.
pub fn is_proviso(sentence: &str) -> bool {
    sentence.trim_start().starts_with("다만")
}

/// Whether a sentence qualifies the rule before it rather than stating one: a proviso
/// ("다만, …") or a second sentence ("이 경우 …").
pub fn qualifies_previous(sentence: &str) -> bool {
    is_proviso(sentence) || sentence.trim_start().starts_with("이 경우")
}

/// The sentence that introduces the list sentence `j` is an item of: the nearest one before
/// it, past the list's other items, provisos, second sentences ("이 경우 …") and amendment
/// notes, when that one refers to a list ("…은 다음 각 호와 같다", "다음 각 호의 어느 하나에
/// 해당하는 자는 …에게 보고하여야 한다"). An item read without it does not say what the list
/// is of.
pub fn list_intro_of(sentences: &[String], j: usize) -> Option<usize> {
    if !sentences.get(j).is_some_and(|s| is_list_item(s)) {
        return None;
    }
    let k = (0..j).rev().find(|&k| {
        let s = &sentences[k];
        !(is_list_item(s) || qualifies_previous(s) || is_void(s))
    })?;
    (is_list_intro(&sentences[k]) || sentences[k].contains("다음 각 ")).then_some(k)
}

/// Whether a sentence starts with a statute's item number: "4. ", "4의2. ", "다. ".
fn is_list_item(sentence: &str) -> bool {
    after_item_number(sentence).is_some()
}

/// What follows a statute's item number ("4. ", "4의2. ", "다. ") at the start of `sentence`.
fn after_item_number(sentence: &str) -> Option<&str> {
    let (head, rest) = sentence.trim_start().split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    // "4의2": an item inserted after item 4
    let (main, inserted) = match head.split_once('의') {
        Some((main, sub)) => (main, Some(sub)),
        None => (head, None),
    };
    let lettered = main.chars().count() == 1 && main.chars().all(|c| ITEM_LETTERS.contains(c));
    ((digits(main) || lettered) && inserted.is_none_or(digits) && rest.starts_with(' '))
        .then_some(rest)
}

/// The letters of a statute's sub-items (목), in order.
const ITEM_LETTERS: &str = "가나다라마바사아자차카타파하";

/// Whether a sentence says nothing: only amendment notes ("<개정 2016.7.26>", split off the
/// sentence they follow), or a deleted item or paragraph ("1. 삭제 <2011.12.19>").
pub fn is_void(sentence: &str) -> bool {
    let rest = without_notes(sentence);
    let rest = after_item_number(rest).unwrap_or(rest);
    let rest = rest.trim_start_matches(|c: char| is_paragraph_mark(c) || c.is_whitespace());
    rest.is_empty() || rest == "삭제"
}

/// A sentence without its trailing amendment notes ("<개정 2013.3.23>"), full stop and spaces.
fn without_notes(sentence: &str) -> &str {
    let mut s = sentence.trim();
    while let Some(open) = s.rfind('<').filter(|_| s.ends_with('>')) {
        s = s[..open].trim_end();
    }
    s.trim_end_matches(|c: char| c == '.' || c.is_whitespace())
}

/// Splits text into sentences: after `.`, `?`, `!` or `。` followed by whitespace, at line
/// breaks, and before a circled paragraph number (①…⑳) or an item number at a line start,
/// because statute paragraphs are run together in passages. Pieces are trimmed; empty ones
/// are dropped.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    // A full stop inside parentheses ("제조(가공을 포함한다. 이하 같다)") ends no sentence.
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if is_paragraph_mark(c) && !current.trim().is_empty() {
            push_piece(&mut out, &mut current);
            depth = 0;
        }
        if c == '\n' {
            push_piece(&mut out, &mut current);
            depth = 0;
            continue;
        }
        current.push(c);
        match c {
            '(' | '（' => depth += 1,
            ')' | '）' => depth = depth.saturating_sub(1),
            _ => {}
        }
        let ends = depth == 0
            && matches!(c, '.' | '?' | '!' | '。')
            && chars.peek().is_none_or(|n| n.is_whitespace());
        // "1." of a list item or "2024." of a date is no sentence end.
        let after_number = c == '.' && {
            let before: String = current.chars().rev().skip(1).take(5).collect();
            before.chars().next().is_some_and(|d| d.is_ascii_digit())
        };
        if ends && !after_number {
            // Citation markers right after the full stop belong to this sentence.
            while chars.peek() == Some(&' ') {
                let mut look = chars.clone();
                look.next();
                if look.peek() == Some(&'[') {
                    chars.next();
                    current.push(' ');
                    while let Some(&m) = chars.peek() {
                        current.push(m);
                        chars.next();
                        if m == ']' {
                            break;
                        }
                    }
                } else {
                    break;
                }
            }
            push_piece(&mut out, &mut current);
        }
    }
    push_piece(&mut out, &mut current);
    out
}

fn push_piece(out: &mut Vec<String>, current: &mut String) {
    let piece = current.trim();
    if !piece.is_empty() {
        out.push(piece.to_string());
    }
    current.clear();
}

fn is_paragraph_mark(c: char) -> bool {
    ('①'..='⑳').contains(&c)
}

/// Splits an answer into sentences and takes the `[n]` / `[n, m]` / `[n][m]` markers out of
/// each. Numbers outside `1..=max` are dropped (the model may invent them).
pub fn cited_sentences(answer: &str, max: usize) -> Vec<CitedSentence> {
    sentences(answer)
        .into_iter()
        .filter_map(|s| {
            let (text, citations) = take_citations(&s, max);
            (!text.is_empty()).then_some(CitedSentence { text, citations })
        })
        .collect()
}

/// The sentence without `[…]` groups of numbers, and those numbers (in order, unique).
fn take_citations(sentence: &str, max: usize) -> (String, Vec<usize>) {
    let mut text = String::new();
    let mut citations = Vec::new();
    let mut rest = sentence;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|c| open + c) else {
            break;
        };
        let inner = &rest[open + 1..close];
        let numbers: Option<Vec<usize>> = inner
            .split([',', ' ', '，'])
            .filter(|p| !p.is_empty())
            .map(|p| p.trim().parse().ok())
            .collect();
        text.push_str(&rest[..open]);
        match numbers {
            Some(ns) if !ns.is_empty() => {
                for n in ns {
                    if (1..=max).contains(&n) && !citations.contains(&n) {
                        citations.push(n);
                    }
                }
            }
            _ => text.push_str(&rest[open..=close]),
        }
        rest = &rest[close + 1..];
    }
    text.push_str(rest);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = text.replace(" .", ".").trim().to_string();
    (text, citations)
}

/// Text reduced to what a copy keeps: letters and digits only (spacing, punctuation and
/// Markdown escapes vary between a source and a quotation of it).
pub fn squash(text: &str) -> Vec<char> {
    text.chars().filter(|c| c.is_alphanumeric()).collect()
}

/// Whether `a` and `b` share a run of at least `min_chars` letters and digits (spacing
/// and punctuation ignored) that `allowed` does not also contain.
pub fn shares_span(a: &str, b: &str, min_chars: usize, allowed: &[&str]) -> bool {
    let a = squash(a);
    let b = squash(b);
    if a.len() < min_chars || b.len() < min_chars {
        return false;
    }
    let windows: HashSet<&[char]> = b.windows(min_chars).collect();
    let allowed: Vec<String> = allowed
        .iter()
        .map(|t| squash(t).into_iter().collect())
        .collect();
    a.windows(min_chars).any(|w| {
        windows.contains(w) && {
            let s: String = w.iter().collect();
            !allowed.iter().any(|t| t.contains(&s))
        }
    })
}

/// Share of `claim`'s Hangul/letter bigrams (of the squashed text) found in `source`.
pub fn bigram_containment(claim: &str, source: &str) -> f32 {
    let c = squash(claim);
    let s = squash(source);
    if c.len() < 2 {
        return 0.0;
    }
    let source_bigrams: HashSet<(char, char)> = s.windows(2).map(|w| (w[0], w[1])).collect();
    let total = c.len() - 1;
    let found = c
        .windows(2)
        .filter(|w| source_bigrams.contains(&(w[0], w[1])))
        .count();
    found as f32 / total as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_and_deleted_items_say_nothing() {
        assert!(is_void("<개정 2016.7.26>"));
        assert!(is_void(" <개정 2013.3.23> <신설 2015.1.28> "));
        assert!(is_void("1. 삭제 <2011.12.19>"));
        assert!(is_void("③ 삭제 <2012.5.31>"));
        assert!(!is_void("영업은 다음 각 호와 같다. <개정 2016.7.26>"));
        assert!(!is_void("2. 즉석판매제조ㆍ가공업"));
    }

    #[test]
    fn pointers_are_told_from_rules_and_list_introductions() {
        for pointer in [
            "② 제1항에 따른 등급분류의 기준과 절차 등에 관하여 필요한 사항은 총리령으로 정한다. <개정 2013.3.23>",
            "법 제3조제2항에 따른 의료기기의 등급분류 및 지정에 관한 기준과 절차는 별표 1과 같다.",
            "그 밖의 사항은 대통령령으로 정한다.",
            "수수료의 납부 방법은 「전자정부법」에 따른다.",
        ] {
            assert!(is_pointer(pointer), "{pointer}");
        }
        for stated in [
            "영업자는 매년 건강진단을 받아야 한다.",
            "교육시간은 다음 각 호와 같다.",
            "이 법에서 사용하는 용어의 뜻은 다음과 같다. <개정 2016.2.3>",
            "식품의약품안전처장은 의료기기의 등급을 분류하여 지정하여야 한다.",
        ] {
            assert!(!is_pointer(stated), "{stated}");
        }
    }

    #[test]
    fn article_headings_are_told_from_sentences() {
        for heading in [
            "제15조(영업의 등록 등)",
            "제44조의2(안전상비의약품 판매자의 등록)",
            "제3조",
        ] {
            assert!(is_article_heading(heading), "{heading}");
        }
        for sentence in [
            "제15조에 따라 등록한 자는 매년 교육을 받아야 한다.",
            "제2조제12호에 따른 집단급식소는 1회 50명 이상에게 식사를 제공하는 급식소를 말한다.",
            "식품의약품안전처장에게 등록하여야 한다.",
        ] {
            assert!(!is_article_heading(sentence), "{sentence}");
        }
    }

    #[test]
    fn an_item_knows_its_introduction() {
        let list: Vec<String> = [
            "① 다음 각 호의 어느 하나에 해당하는 자는 지체 없이 관할 시장ㆍ군수ㆍ구청장에게 보고하여야 한다.",
            "다만, 제2호의 경우에는 그러하지 아니하다.",
            "이 경우 의사는 혈액을 보관하는 데에 필요한 조치를 하여야 한다.",
            "<개정 2013.3.23>",
            "1. 식중독 환자를 진단한 의사",
            "2. 집단급식소의 설치ㆍ운영자",
            "② 보고의 방법은 총리령으로 정한다.",
            "3. 목록에 없는 항목",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(list_intro_of(&list, 4), Some(0));
        assert_eq!(list_intro_of(&list, 5), Some(0));
        assert_eq!(list_intro_of(&list, 0), None, "not an item");
        assert_eq!(
            list_intro_of(&list, 7),
            None,
            "after a sentence that is no introduction"
        );
    }

    #[test]
    fn definitions_name_their_term() {
        assert_eq!(
            defined_term("1. \"화장품\"이란 인체를 청결ㆍ미화하여 … 물품을 말한다."),
            Some("화장품".into())
        );
        assert_eq!(
            defined_term("2. “어린이 기호식품”이란 … 식품을 말한다. <개정 2018.3.13>"),
            Some("어린이기호식품".into())
        );
        assert_eq!(
            defined_term("가. 기능성원료란 … 원료를 말한다."),
            Some("기능성원료".into())
        );
        assert_eq!(
            defined_term("1의2. \"맞춤형건강기능식품\"이란 … 조합한 것을 말한다."),
            Some("맞춤형건강기능식품".into())
        );
        assert_eq!(
            defined_term("② \"영업\"이란 … 업을 말한다."),
            Some("영업".into())
        );
        assert_eq!(defined_term("영업자는 지체 없이 회수하여야 한다."), None);
    }

    #[test]
    fn items_that_only_name_a_matter_are_told_from_items_that_say_something() {
        for topic in [
            "4. 의료기기의 등급 분류 및 지정에 관한 사항",
            "12의2. 회수계획에 관한 사항 <신설 2015.1.28>",
            "다. 그 밖에 위원회의 운영에 필요한 사항.",
        ] {
            assert!(is_topic_only(topic), "{topic}");
        }
        for said in [
            "1. 완전 포장된 식품을 판매하는 사람은 건강진단 대상에서 제외한다.",
            "가. 단란주점영업: 특별자치시장ㆍ특별자치도지사 또는 시장ㆍ군수ㆍ구청장",
            // not a list item: a paragraph that ends in the word
            "② 위원회의 구성에 필요한 사항",
            "그 밖에 필요한 사항",
        ] {
            assert!(!is_topic_only(said), "{said}");
        }
    }

    #[test]
    fn splits_statute_passages_into_sentences() {
        let text = "③ 건강진단의 유효기간은 1년으로 한다. ④ 건강진단은 만료일 전후 각각 30일 이내에 실시해야 한다. 다만, 천재지변 등은 예외로 한다.\n1. 식품위생법 제2조에 따른 것";
        let s = sentences(text);
        assert_eq!(
            s,
            vec![
                "③ 건강진단의 유효기간은 1년으로 한다.",
                "④ 건강진단은 만료일 전후 각각 30일 이내에 실시해야 한다.",
                "다만, 천재지변 등은 예외로 한다.",
                "1. 식품위생법 제2조에 따른 것",
            ]
        );
        assert_eq!(sentences("법률 제20000호, 2024. 1. 2. 개정").len(), 1);
        assert_eq!(
            sentences(
                "1. \"건강기능식품\"이란 제조(가공을 포함한다. 이하 같다)한 식품을 말한다. 2. 끝."
            ),
            vec![
                "1. \"건강기능식품\"이란 제조(가공을 포함한다. 이하 같다)한 식품을 말한다.",
                "2. 끝."
            ]
        );
    }

    #[test]
    fn takes_citations_out_of_answers() {
        let a = cited_sentences(
            "유효기간은 1년입니다 [1]. 만료일 전후 30일 이내에 받습니다. [2][9] 끝 [2, 3]",
            3,
        );
        assert_eq!(a.len(), 3, "{a:?}");
        assert_eq!(a[0].text, "유효기간은 1년입니다.");
        assert_eq!(a[0].citations, vec![1]);
        assert_eq!(a[1].text, "만료일 전후 30일 이내에 받습니다.");
        assert_eq!(a[1].citations, vec![2]);
        assert_eq!(a[2].citations, vec![2, 3]);
        let kept = cited_sentences("[별표 1]에 따른다 [1]", 3);
        assert_eq!(kept[0].text, "[별표 1]에 따른다");
    }

    #[test]
    fn spans_and_containment() {
        let internal = "내부 감사 결과 A업체의 위반 사항은 2026년 3월 현장점검에서 확인되었으며 과징금 부과 예정임";
        let answer =
            "A업체의 위반 사항은 2026년 3월 현장점검에서 확인되었으며 과징금 부과 예정입니다";
        assert!(shares_span(answer, internal, 30, &[]));
        assert!(!shares_span(answer, internal, 30, &[internal]));
        assert!(!shares_span("짧은 문장", internal, 30, &[]));
        assert!(
            bigram_containment(
                "유효기간 만료일 전후",
                "건강진단의 유효기간 만료일 전후 각각"
            ) > 0.99
        );
        assert!(bigram_containment("모든 식품은 안전하다", "건강진단의 유효기간") < 0.2);
    }
}
