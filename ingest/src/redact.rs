//! PII redaction for public-facing text and logs: resident registration numbers
//! (주민등록번호), phone numbers, e-mail addresses and business registration numbers (사업자등록번호).

use regex::Regex;
use std::borrow::Cow;
use std::sync::OnceLock;

/// A kind of personal or identifying data, with the mask that replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiKind {
    ResidentNumber,
    BusinessNumber,
    Email,
    Phone,
}

impl PiiKind {
    /// What the data is replaced with: says what was there, keeps none of it.
    pub fn mask(self) -> &'static str {
        match self {
            PiiKind::ResidentNumber => "[주민등록번호 비공개]",
            PiiKind::BusinessNumber => "[사업자등록번호 비공개]",
            PiiKind::Email => "[이메일 비공개]",
            PiiKind::Phone => "[전화번호 비공개]",
        }
    }
}

/// Patterns in the order they are applied: the longest, most specific first, so a resident
/// number is never half-eaten by the phone pattern. Digits must not touch other digits, so
/// article numbers, amounts and dates inside longer numbers stay.
fn patterns() -> &'static [(PiiKind, Regex)] {
    static PATTERNS: OnceLock<Vec<(PiiKind, Regex)>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let build = |kind, re: &str| {
            // The patterns are constants; a typo is caught by the tests on first use.
            (kind, Regex::new(re).unwrap_or_else(|e| panic!("PII pattern {re}: {e}")))
        };
        vec![
            // YYMMDD-GNNNNNN; the seventh digit (1–4, 5–8 for foreigners) marks it.
            build(
                PiiKind::ResidentNumber,
                r"(?:^|[^0-9])(\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\s?[-–]\s?[1-8]\d{6})(?:[^0-9]|$)",
            ),
            build(
                PiiKind::BusinessNumber,
                r"(?:^|[^0-9])(\d{3}-\d{2}-\d{5})(?:[^0-9]|$)",
            ),
            build(
                PiiKind::Email,
                r"([A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})",
            ),
            // Mobile (010-1234-5678), area codes (02-123-4567, 031-…), 15xx/16xx/18xx
            // representative numbers (1577-1255), with -, . or space between groups.
            build(
                PiiKind::Phone,
                r"(?:^|[^0-9])((?:01[016789]|0[2-6][0-9]?|070)[-. ]?\d{3,4}[-. ]\d{4}|1[5-8]\d{2}-\d{4})(?:[^0-9]|$)",
            ),
        ]
    })
}

/// Where PII was found: byte range in the text and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiiMatch {
    pub kind: PiiKind,
    pub range: std::ops::Range<usize>,
}

/// Every PII span in `text`, in order, not overlapping.
pub fn find_pii(text: &str) -> Vec<PiiMatch> {
    let mut found: Vec<PiiMatch> = Vec::new();
    for (kind, re) in patterns() {
        let mut at = 0;
        while at <= text.len() {
            let Some(caps) = re.captures_at(text, at) else {
                break;
            };
            let Some(m) = caps.get(1) else { break };
            if !found
                .iter()
                .any(|f| f.range.start < m.end() && m.start() < f.range.end)
            {
                found.push(PiiMatch {
                    kind: *kind,
                    range: m.range(),
                });
            }
            // The group's trailing context may be the next match's leading context.
            at = m.end();
        }
    }
    found.sort_by_key(|m| m.range.start);
    found
}

/// `text` with every PII span replaced by its kind's mask; borrowed when there is none.
pub fn redact(text: &str) -> Cow<'_, str> {
    let found = find_pii(text);
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for m in found {
        out.push_str(&text[last..m.range.start]);
        out.push_str(m.kind.mask());
        last = m.range.end;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_each_kind() {
        let text = "담당자 홍길동(800101-1234567), 010-1234-5678, hong@mfds.go.kr, \
                    사업자등록번호 123-45-67890, 대표번호 1577-1255, 서울 02-123-4567.";
        let out = redact(text);
        for leaked in [
            "800101-1234567",
            "010-1234-5678",
            "hong@mfds.go.kr",
            "123-45-67890",
            "1577-1255",
            "02-123-4567",
        ] {
            assert!(!out.contains(leaked), "{leaked} in {out}");
        }
        for mask in ["주민등록번호", "전화번호", "이메일", "사업자등록번호"] {
            assert!(out.contains(&format!("[{mask} 비공개]")), "{out}");
        }
        assert!(out.starts_with("담당자 홍길동("));
    }

    #[test]
    fn leaves_legal_text_alone() {
        for text in [
            "제44조제1항에 따라 2025-12-31까지 30일 이내에 실시해야 한다.",
            "총투자액 기준 141.5억 달러로 전년 동기(163.4억 달러) 대비 13.4% 감소",
            "법률 제20000호, 2024. 1. 2., 일부개정",
            "1일 노출 허용량(PDE)인 200㎍/day 미만",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn adjacent_matches_are_all_found() {
        let out = redact("010-1111-2222,010-3333-4444");
        assert_eq!(out, "[전화번호 비공개],[전화번호 비공개]");
        assert_eq!(find_pii("a@b.co b@c.kr").len(), 2);
    }
}
