//! Question understanding: Unicode and whitespace normalisation, follow-up questions made
//! standalone from the conversation, and detection of questions about one's own medical case
//! and of questions that a law's definitions answer.

use super::text::{compact, defined_term};
use unicode_normalization::UnicodeNormalization;

/// Longest question accepted, in characters (longer input is a paste, not a question).
pub const MAX_QUESTION_CHARS: usize = 1000;

/// NFC, control characters removed, runs of whitespace collapsed to one space.
pub fn normalise(text: &str) -> String {
    let nfc: String = text.nfc().collect();
    nfc.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Words that point back into the conversation: a question containing one leans on the
/// previous question for its subject.
const ANAPHORA: [&str; 16] = [
    "그거",
    "그것",
    "그건",
    "그게",
    "이거",
    "이것",
    "이건",
    "저거",
    "거기",
    "그럼",
    "그러면",
    "그렇다면",
    "그 경우",
    "그때",
    "해당",
    "그 밖",
];
/// A follow-up this short (in characters, without spaces) rarely names its own subject.
const SHORT_FOLLOW_UP_CHARS: usize = 12;

/// Whether `question` needs the conversation to be understood: it is short, or it refers back
/// with a demonstrative or a connective (그럼, 그건, 해당 …).
pub fn is_follow_up(question: &str) -> bool {
    let chars = question.chars().filter(|c| !c.is_whitespace()).count();
    chars <= SHORT_FOLLOW_UP_CHARS || ANAPHORA.iter().any(|a| question.contains(a))
}

/// The standalone form of a follow-up: the previous standalone question's content terms
/// that the follow-up does not repeat, prepended to it. A base model cannot be trusted to
/// rewrite; this keeps the user's words and adds only the subject they left out.
///
/// `previous_terms` are the analysed content terms (morphemes) of the previous standalone
/// question, `own_terms` those of the follow-up.
pub fn rewrite_follow_up(
    question: &str,
    previous_terms: &[String],
    own_terms: &[String],
) -> String {
    let mut carried: Vec<&str> = Vec::new();
    for t in previous_terms {
        // Single syllables (다, 제) and numbers alone carry no subject.
        let meaningful = t.chars().count() >= 2 && !t.chars().all(|c| c.is_ascii_digit());
        if meaningful && !own_terms.contains(t) && !carried.contains(&t.as_str()) {
            carried.push(t);
        }
    }
    if carried.is_empty() {
        return question.to_string();
    }
    format!("{} — {question}", carried.join(" "))
}

/// Words by which a person speaks of their own (or their child's) case.
const OWN_CASE: [&str; 13] = [
    "제가",
    "저는",
    "저도",
    "내가",
    "나는",
    "저희 아이",
    "우리 아이",
    "제 아이",
    "아이가",
    "임신 중",
    "임신중",
    "먹고 있",
    "복용 중",
];
/// Words of a medical decision.
const MEDICAL: [&str; 16] = [
    "복용",
    "먹어도",
    "먹으면",
    "마셔도",
    "처방",
    "증상",
    "부작용",
    "질환",
    "병",
    "임신",
    "수유",
    "투약",
    "약을",
    "약이",
    "치료",
    "진단",
];

/// Whether the question asks for a judgement on the asker's own health: such questions get a
/// referral to a doctor or pharmacist before any general information.
pub fn is_own_medical_case(question: &str) -> bool {
    OWN_CASE.iter().any(|w| question.contains(w)) && MEDICAL.iter().any(|w| question.contains(w))
}

/// Phrasings that ask what a term means (뜻, 정의, "…이란 무엇") or whether something counts
/// as what a term names ("…으로 볼 수 있나요", "…에 해당하나요", "…대상인가요"): questions a
/// law answers in its definitions.
const DEFINITION_ASKS: [&str; 14] = [
    "뜻",
    "정의",
    "의미",
    "이란 무엇",
    "란 무엇",
    "으로 볼 수",
    "로 볼 수",
    "에 해당하나요",
    "에 해당되나요",
    "에 해당합니까",
    "에 포함되나요",
    "에 포함됩니까",
    "대상인가요",
    "대상이 되나요",
];

/// What a question that asks for a definition asks about, to tell the definition that
/// answers it from its neighbours in a law's list of definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskedTerms {
    /// Terms the question quotes ('기능성'), compacted ([`compact`]).
    quoted: Vec<String>,
    /// Every run of up to three consecutive words that name things, joined: 어린이기호식품
    /// for "어린이 기호식품은", but not 식품 for "식품첨가물이란".
    named: Vec<String>,
}

/// Longest run of consecutive nouns a defined term is matched against.
const MAX_NAME_WORDS: usize = 3;

impl AskedTerms {
    /// The terms `question` asks about, when it asks what a term means or whether something
    /// counts as it (뜻, 정의, "…으로 볼 수 있나요", "…대상인가요"); else `None`. `nouns` are
    /// its words that name things, grouped as written together ([`crate::index::Index::nouns`]).
    pub fn of(question: &str, nouns: &[Vec<String>]) -> Option<AskedTerms> {
        if !DEFINITION_ASKS.iter().any(|w| question.contains(w)) {
            return None;
        }
        let quoted = quoted_spans(question);
        let words: Vec<String> = nouns.iter().map(|group| compact(&group.concat())).collect();
        let named = (0..words.len())
            .flat_map(|i| (i + 1..=(i + MAX_NAME_WORDS).min(words.len())).map(move |j| (i, j)))
            .map(|(i, j)| words[i..j].concat())
            .collect();
        Some(AskedTerms { quoted, named })
    }

    /// Whether the question asks about `term` (compacted): the term it quotes, when it
    /// quotes one; else a word or run of words it names (건강기능식품법 names a law, not
    /// 건강기능식품).
    pub fn names(&self, term: &str) -> bool {
        if self.quoted.is_empty() {
            self.named.iter().any(|n| n == term)
        } else {
            self.quoted.iter().any(|q| q == term)
        }
    }

    /// Whether `sentence` defines a term the question asks about.
    pub fn defined_in(&self, sentence: &str) -> bool {
        defined_term(sentence).is_some_and(|t| self.names(&t))
    }
}

/// What a question that asks who or where wants: a body or office (식품의약품안전처장,
/// 시장ㆍ군수ㆍ구청장, 한국의약품안전관리원), in the role the particle after its question word
/// gives it. The passage that answers it names such a body in that role, in the sentence
/// that also says what the question is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskedAgent {
    /// 어디에, 어디로, 누구에게: the body something is reported, filed or sent to
    /// ("…한국의약품안전관리원에 보고").
    Recipient,
    /// 어디서, 누구로부터: the body a permit or a document comes from ("…의 허가", or the
    /// body a list gives for each case: "…유흥주점영업: 시장ㆍ군수ㆍ구청장").
    Source,
    /// 누가, 어느 기관이: the body that decides or designates ("식품의약품안전처장은 …
    /// 고시하여야 한다").
    Subject,
    /// 어디인가요: a body in any role.
    Any,
}

/// Question words that ask for a body.
const AGENT_ASKS: [&str; 5] = ["어디", "누구", "누가", "어느 기관", "어떤 기관"];
/// What follows a question word that asks no body: 어디까지 (how far), 누구나 (anyone).
const NOT_AGENT_ASKS: [&str; 3] = ["까지", "나", "든지"];

/// Endings of words that name a body or office of the state (…장관, …처장, 시ㆍ도지사,
/// 허가관청, 검사기관, 한국의약품안전관리원, 보건소 …).
const AGENCY_ENDINGS: [&str; 24] = [
    "장관",
    "처장",
    "청장",
    "도지사",
    "시장",
    "군수",
    "구청장",
    "원장",
    "소장",
    "관청",
    "기관",
    "관리원",
    "소비자원",
    "인증원",
    "정보원",
    "진흥원",
    "평가원",
    "안전처",
    "식약처",
    "보건소",
    "위원회",
    "협회",
    "센터",
    "자치단체",
];

/// The role each particle gives the word it ends, longest first within a role; a copula
/// (…이다) leaves the word unmarked, as a list or a table does.
const PARTICLE_ROLES: [(&str, Role); 25] = [
    ("으로부터", Role::Source),
    ("로부터", Role::Source),
    ("에게서", Role::Source),
    ("한테서", Role::Source),
    ("에서", Role::Source),
    ("의", Role::Source),
    ("에게로", Role::Recipient),
    ("에게", Role::Recipient),
    ("한테", Role::Recipient),
    ("으로", Role::Recipient),
    ("께", Role::Recipient),
    ("에", Role::Recipient),
    ("로", Role::Recipient),
    ("께서", Role::Subject),
    ("은", Role::Subject),
    ("는", Role::Subject),
    ("이", Role::Subject),
    ("가", Role::Subject),
    ("입니다", Role::Unmarked),
    ("이다", Role::Unmarked),
    ("이며", Role::Unmarked),
    ("이고", Role::Unmarked),
    ("과", Role::Other),
    ("와", Role::Other),
    ("도", Role::Other),
];

/// The role of a body's name in a sentence, by its particle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Recipient,
    Source,
    Subject,
    Unmarked,
    Other,
}

impl AskedAgent {
    /// The body `question` asks for, when it asks who or where; else `None`.
    pub fn of(question: &str) -> Option<AskedAgent> {
        let (at, ask) = AGENT_ASKS
            .iter()
            .filter_map(|a| question.find(a).map(|at| (at, *a)))
            .min_by_key(|&(at, _)| at)?;
        let after = &question[at + ask.len()..];
        if NOT_AGENT_ASKS.iter().any(|p| after.starts_with(p)) {
            return None;
        }
        if ask == "누가" {
            return Some(AskedAgent::Subject);
        }
        // 어디서 is 어디에서 shortened
        if after.starts_with('서') {
            return Some(AskedAgent::Source);
        }
        Some(
            match PARTICLE_ROLES
                .iter()
                .find(|(p, _)| after.starts_with(p))
                .map(|&(_, role)| role)
            {
                Some(Role::Recipient) => AskedAgent::Recipient,
                Some(Role::Source) => AskedAgent::Source,
                Some(Role::Subject) => AskedAgent::Subject,
                _ => AskedAgent::Any,
            },
        )
    }

    /// Whether `sentence` names a body in the role the question asks for: as a recipient
    /// ("한국의약품안전관리원에 보고", "시장ㆍ군수ㆍ구청장에게 신고"), a source, or a subject
    /// ("식품의약품안전처장은 … 고시하여야"). A body a list or a table gives without a
    /// particle ("…유흥주점영업: 특별자치시장ㆍ…") answers a source or a subject.
    pub fn named_in(self, sentence: &str) -> bool {
        sentence.split_whitespace().any(|word| {
            let word = word.trim_end_matches(|c: char| !c.is_alphanumeric());
            agency_role(word).is_some_and(|role| match self {
                AskedAgent::Recipient => role == Role::Recipient,
                AskedAgent::Source => matches!(role, Role::Source | Role::Unmarked),
                AskedAgent::Subject => matches!(role, Role::Subject | Role::Unmarked),
                AskedAgent::Any => true,
            })
        })
    }
}

/// For a word that names a body (its particle removed; of a list such as 시장ㆍ군수ㆍ구청장
/// the last name), the role its particle gives it; `None` for any other word.
fn agency_role(word: &str) -> Option<Role> {
    PARTICLE_ROLES
        .iter()
        .find_map(|&(p, role)| {
            word.strip_suffix(p)
                .filter(|stem| is_agency(stem))
                .map(|_| role)
        })
        .or_else(|| is_agency(word).then_some(Role::Unmarked))
}

/// Whether `name` (the last of a list joined by ㆍ or ·) ends like a body's name.
fn is_agency(name: &str) -> bool {
    let last = name.rsplit(['ㆍ', '·', '(', ')']).next().unwrap_or(name);
    AGENCY_ENDINGS.iter().any(|e| last.ends_with(e))
}

/// What `text` puts in quotation marks, each compacted.
fn quoted_spans(text: &str) -> Vec<String> {
    let mut spans = Vec::new();
    for (open, close) in QUOTES {
        let mut rest = text;
        while let Some(at) = rest.find(open) {
            let after = &rest[at + open.len_utf8()..];
            let Some(end) = after.find(close) else { break };
            spans.push(compact(&after[..end]));
            rest = &after[end + close.len_utf8()..];
        }
    }
    spans.retain(|s| !s.is_empty());
    spans
}

/// Quotation marks a question may put around the term it asks about.
const QUOTES: [(char, char); 5] = [
    ('\'', '\''),
    ('"', '"'),
    ('‘', '’'),
    ('“', '”'),
    ('「', '」'),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(question: &str, nouns: &[&[&str]]) -> Option<AskedTerms> {
        let nouns: Vec<Vec<String>> = nouns
            .iter()
            .map(|g| g.iter().map(|n| n.to_string()).collect())
            .collect();
        AskedTerms::of(question, &nouns)
    }

    #[test]
    fn questions_about_what_a_term_covers_name_the_term() {
        let quoted = asked(
            "건강기능식품법에서 '기능성'은 무슨 뜻인가요?",
            &[&["건강기능식품", "법"], &["기능", "성"], &["뜻"]],
        )
        .unwrap();
        assert!(quoted.defined_in("2. \"기능성\"이란 … 효과를 얻는 것을 말한다."));
        assert!(!quoted.defined_in("1. \"건강기능식품\"이란 … 식품을 말한다."));
        let dotted = asked("'고열량·저영양 식품'의 법적 정의는 무엇인가요?", &[]).unwrap();
        assert!(dotted.defined_in("5. \"고열량ㆍ저영양 식품\"이란 … 어린이 기호식품을 말한다."));
        let named = asked(
            "의약품에 해당하는 제품도 화장품으로 볼 수 있나요?",
            &[&["의약품"], &["해당"], &["제품"], &["화장품"]],
        )
        .unwrap();
        assert!(named.defined_in("1. \"화장품\"이란 … 물품을 말한다."));
        assert!(!named.defined_in("2. \"기능성화장품\"이란 … 화장품을 말한다."));
        let spaced = asked(
            "어린이 기호식품은 무슨 뜻인가요?",
            &[&["어린이"], &["기호식품"], &["뜻"]],
        );
        assert!(spaced
            .unwrap()
            .defined_in("2. \"어린이 기호식품\"이란 … 식품을 말한다."));
        let longer = asked("식품첨가물이란 무엇인가요?", &[&["식품첨가물"]]).unwrap();
        assert!(longer.defined_in("2. \"식품첨가물\"이란 … 물질을 말한다."));
        assert!(!longer.defined_in("1. \"식품\"이란 … 음식물을 말한다."));
        let law = asked(
            "건강기능식품법의 정의 조항을 알려주세요",
            &[&["건강기능식품", "법"], &["정의"], &["조항"]],
        )
        .unwrap();
        assert!(!law.defined_in("1. \"건강기능식품\"이란 … 식품을 말한다."));
        assert!(asked("포장된 물수건도 위생용품 관리 대상인가요?", &[]).is_some());
        assert!(asked("건강진단은 언제까지 다시 받아야 하나요?", &[]).is_none());
        assert!(asked("안전상비의약품은 몇 개 품목까지 지정되나요?", &[]).is_none());
    }

    #[test]
    fn who_and_where_questions_ask_for_a_body_in_a_role() {
        use AskedAgent::{Any, Recipient, Source, Subject};
        let of = AskedAgent::of;
        assert_eq!(of("부작용이 생기면 어디에 보고하나요?"), Some(Recipient));
        assert_eq!(of("이물 신고는 누구에게 해야 하나요?"), Some(Recipient));
        assert_eq!(of("단란주점은 어디서 허가를 받아야 하나요?"), Some(Source));
        assert_eq!(of("사용할 수 없는 원료는 누가 정하나요?"), Some(Subject));
        assert_eq!(of("담당 기관은 어디인가요?"), Some(Any));
        assert_eq!(of("광고는 어디까지 허용되나요?"), None);
        assert_eq!(of("누구나 살 수 있나요?"), None);
        assert_eq!(of("건강진단은 언제 받아야 하나요?"), None);

        let reported =
            "조치대상 의약품으로 인해 발생하는 부작용은 한국의약품안전관리원에 보고하시기 바람";
        assert!(Recipient.named_in(reported));
        assert!(!Subject.named_in(reported));
        assert!(Recipient.named_in("… 시ㆍ도지사 또는 시장ㆍ군수ㆍ구청장에게 보고하여야 한다."));
        let decides = "식품의약품안전처장은 화장품의 제조 등에 사용할 수 없는 원료를 지정하여 고시하여야 한다.";
        assert!(Subject.named_in(decides));
        assert!(!Recipient.named_in(decides));
        assert!(!Source.named_in(decides));
        let listed = "2. 제21조제8호다목의 단란주점영업과 같은 호 라목의 유흥주점영업: 특별자치시장ㆍ특별자치도지사 또는 시장ㆍ군수ㆍ구청장";
        assert!(Source.named_in(listed));
        assert!(Any.named_in(listed));
        // the office that checks a document is not the one a permit comes from
        assert!(!Source.named_in(
            "④ 신고서를 제출 받은 허가관청은 소방서장이 발급하는 완비증명서(단란주점영업만 해당한다)를 확인해야 한다."
        ));
        // the body that receives a plan is not the one a report goes to
        assert!(!Recipient.named_in(
            "① 식품의약품안전처장은 의약품등의 회수계획을 보고받으면 수입자에게 회수계획을 공표하도록 명할 수 있다."
        ));
        assert!(
            !Any.named_in("3. 액화석유가스 사용시설완성검사증명서(단란주점영업을 하려는 자 중 …)")
        );
    }

    #[test]
    fn normalises_nfd_and_whitespace() {
        let nfd: String = "건강진단".nfd().collect();
        assert_ne!(nfd, "건강진단");
        assert_eq!(
            normalise(&format!("  {nfd}은\t\n언제\u{0007} 받나요? ")),
            "건강진단은 언제 받나요?"
        );
    }

    #[test]
    fn detects_follow_ups() {
        assert!(is_follow_up("비용은요?"));
        assert!(is_follow_up("그럼 영업자는 몇 시간 받아야 하나요?"));
        assert!(is_follow_up("해당 제품은 회수 대상인가요?"));
        assert!(!is_follow_up(
            "HACCP 적용업소 종업원의 신규 교육훈련 시간은 얼마인가요?"
        ));
    }

    #[test]
    fn follow_ups_borrow_the_missing_subject() {
        let previous: Vec<String> = ["건강", "진단", "유효", "기간", "다시", "받"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let own: Vec<String> = ["비용", "진단"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            rewrite_follow_up("그럼 진단 비용은요?", &previous, &own),
            "건강 유효 기간 다시 — 그럼 진단 비용은요?"
        );
        assert_eq!(rewrite_follow_up("비용은요?", &[], &own), "비용은요?");
    }

    #[test]
    fn own_medical_cases() {
        assert!(is_own_medical_case(
            "제가 임신 중인데 이 건강기능식품을 먹어도 되나요?"
        ));
        assert!(is_own_medical_case(
            "우리 아이가 감기약을 먹고 있는데 부작용이 있나요?"
        ));
        assert!(!is_own_medical_case(
            "안전상비의약품은 몇 개 품목까지 지정되나요?"
        ));
        assert!(!is_own_medical_case(
            "제가 식당을 열려면 위생교육을 받아야 하나요?"
        ));
    }
}
