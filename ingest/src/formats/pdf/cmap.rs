//! CMap programs: ToUnicode maps embedded in fonts and the predefined CMaps of
//! poppler-data (code → CID encodings, CID → Unicode tables of the Adobe collections).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where distributions install poppler-data; the CMaps sit in `<dir>/<collection>/<name>`.
const POPPLER_CMAP_DIRS: &[&str] = &[
    "/usr/share/poppler/cMap",
    "/usr/local/share/poppler/cMap",
    "/opt/homebrew/share/poppler/cMap",
    "/opt/local/share/poppler/cMap",
];

/// A `usecmap` chain longer than this is a loop or an attack, not a real CMap.
const MAX_USECMAP_DEPTH: usize = 4;

/// A hostile bfrange/cidrange could span 2^32 codes; ranges are kept unexpanded and
/// lookups binary-search them, so only the number of ranges matters.
const MAX_ENTRIES: usize = 1 << 20;

/// One codespace range: every byte of a code of this length lies within the bounds.
#[derive(Debug, Clone)]
struct Codespace {
    low: Vec<u8>,
    high: Vec<u8>,
}

impl Codespace {
    fn matches(&self, bytes: &[u8]) -> bool {
        bytes.len() == self.low.len()
            && bytes
                .iter()
                .zip(self.low.iter().zip(&self.high))
                .all(|(b, (lo, hi))| lo <= b && b <= hi)
    }
}

/// Destination of a bfrange: consecutive codes map to consecutive strings, or an explicit list.
#[derive(Debug, Clone)]
enum RangeTarget {
    Increment(Vec<u16>),
    List(Vec<String>),
}

#[derive(Debug, Clone)]
struct UnicodeRange {
    low: u32,
    high: u32,
    target: RangeTarget,
}

#[derive(Debug, Clone)]
struct CidRange {
    low: u32,
    high: u32,
    first_cid: u32,
}

/// A parsed CMap. Lookups fall through to the `usecmap` parent when one was loaded.
#[derive(Debug, Clone, Default)]
pub(crate) struct CMap {
    codespaces: Vec<Codespace>,
    unicode_chars: HashMap<u32, String>,
    unicode_ranges: Vec<UnicodeRange>,
    cid_chars: HashMap<u32, u32>,
    cid_ranges: Vec<CidRange>,
    vertical: bool,
    parent: Option<Arc<CMap>>,
}

impl CMap {
    /// Parses a CMap program; `usecmap` parents are looked up among the poppler-data CMaps.
    pub(crate) fn parse(data: &[u8]) -> CMap {
        Self::parse_at_depth(data, 0)
    }

    fn parse_at_depth(data: &[u8], depth: usize) -> CMap {
        let mut cmap = CMap::default();
        let mut parent_name = None;
        let tokens = tokenize(data);
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                Token::Keyword(k) => {
                    let section = k.as_slice();
                    i += 1;
                    match section {
                        b"begincodespacerange" => {
                            while let [Token::Hex(lo), Token::Hex(hi), ..] = &tokens[i..] {
                                if lo.len() == hi.len() && !lo.is_empty() && lo.len() <= 4 {
                                    cmap.codespaces.push(Codespace {
                                        low: lo.clone(),
                                        high: hi.clone(),
                                    });
                                }
                                i += 2;
                            }
                        }
                        b"beginbfchar" => {
                            while let [Token::Hex(src), dst, ..] = &tokens[i..] {
                                if let Some(text) = token_text(dst) {
                                    cmap.add_unicode_char(code_value(src), text);
                                }
                                i += 2;
                            }
                        }
                        b"beginbfrange" => {
                            while let [Token::Hex(lo), Token::Hex(hi), dst, ..] = &tokens[i..] {
                                let (low, high) = (code_value(lo), code_value(hi));
                                let target = match dst {
                                    Token::Hex(bytes) => {
                                        Some(RangeTarget::Increment(utf16_units(bytes)))
                                    }
                                    Token::Array(items) => Some(RangeTarget::List(
                                        items
                                            .iter()
                                            .map(|t| token_text(t).unwrap_or_default())
                                            .collect(),
                                    )),
                                    _ => None,
                                };
                                if let Some(target) = target {
                                    cmap.add_unicode_range(low, high, target);
                                }
                                i += 3;
                            }
                        }
                        b"begincidchar" => {
                            while let [Token::Hex(src), Token::Number(cid), ..] = &tokens[i..] {
                                if cmap.cid_chars.len() < MAX_ENTRIES {
                                    cmap.cid_chars.insert(code_value(src), *cid);
                                }
                                i += 2;
                            }
                        }
                        b"begincidrange" => {
                            while let [Token::Hex(lo), Token::Hex(hi), Token::Number(cid), ..] =
                                &tokens[i..]
                            {
                                let (low, high) = (code_value(lo), code_value(hi));
                                if low <= high && cmap.cid_ranges.len() < MAX_ENTRIES {
                                    cmap.cid_ranges.push(CidRange {
                                        low,
                                        high,
                                        first_cid: *cid,
                                    });
                                }
                                i += 3;
                            }
                        }
                        b"usecmap" => {
                            if let Some(Token::Name(name)) =
                                i.checked_sub(2).and_then(|j| tokens.get(j))
                            {
                                parent_name = Some(String::from_utf8_lossy(name).into_owned());
                            }
                        }
                        _ => {}
                    }
                }
                Token::Name(name) if name == b"WMode" => {
                    cmap.vertical = matches!(tokens.get(i + 1), Some(Token::Number(1)));
                    i += 1;
                }
                _ => i += 1,
            }
        }
        cmap.unicode_ranges.sort_by_key(|r| r.low);
        cmap.cid_ranges.sort_by_key(|r| r.low);
        if let Some(name) = parent_name.filter(|_| depth < MAX_USECMAP_DEPTH) {
            cmap.parent = load_predefined_at_depth(&name, None, depth + 1);
            if let Some(parent) = &cmap.parent {
                cmap.vertical |= parent.vertical;
            }
        }
        cmap
    }

    fn add_unicode_char(&mut self, code: u32, text: String) {
        if self.unicode_chars.len() < MAX_ENTRIES {
            self.unicode_chars.insert(code, text);
        }
    }

    fn add_unicode_range(&mut self, low: u32, high: u32, target: RangeTarget) {
        if low <= high && self.unicode_ranges.len() < MAX_ENTRIES {
            self.unicode_ranges.push(UnicodeRange { low, high, target });
        }
    }

    /// Whether the CMap declares vertical writing (`/WMode 1`).
    pub(crate) fn is_vertical(&self) -> bool {
        self.vertical
    }

    /// Length of the character code starting at `bytes[0]`, per the codespace ranges.
    /// Bytes matching no range are consumed one code of the shortest length at a time,
    /// which is what viewers do and keeps decoding in step.
    pub(crate) fn code_length(&self, bytes: &[u8]) -> usize {
        let spaces = self.all_codespaces();
        for len in 1..=4.min(bytes.len()) {
            if spaces.iter().any(|c| c.matches(&bytes[..len])) {
                return len;
            }
        }
        spaces
            .iter()
            .map(|c| c.low.len())
            .min()
            .unwrap_or(2)
            .clamp(1, bytes.len().max(1))
    }

    fn all_codespaces(&self) -> Vec<&Codespace> {
        let mut out: Vec<&Codespace> = self.codespaces.iter().collect();
        if let Some(parent) = &self.parent {
            out.extend(parent.all_codespaces());
        }
        out
    }

    /// The CID a character code selects, for encoding CMaps.
    pub(crate) fn cid(&self, code: u32) -> Option<u32> {
        if let Some(cid) = self.cid_chars.get(&code) {
            return Some(*cid);
        }
        let idx = self.cid_ranges.partition_point(|r| r.low <= code);
        if let Some(r) = idx.checked_sub(1).and_then(|i| self.cid_ranges.get(i)) {
            if code <= r.high {
                return Some(r.first_cid.saturating_add(code - r.low));
            }
        }
        self.parent.as_ref().and_then(|p| p.cid(code))
    }

    /// The Unicode text a code (ToUnicode) or CID (Adobe-*-UCS2) stands for.
    pub(crate) fn unicode(&self, code: u32) -> Option<String> {
        if let Some(text) = self.unicode_chars.get(&code) {
            return Some(text.clone());
        }
        let idx = self.unicode_ranges.partition_point(|r| r.low <= code);
        if let Some(r) = idx.checked_sub(1).and_then(|i| self.unicode_ranges.get(i)) {
            if code <= r.high {
                let offset = code - r.low;
                return match &r.target {
                    RangeTarget::Increment(units) => {
                        let mut units = units.clone();
                        // Only the last unit counts up; a range crossing it is malformed anyway.
                        if let Some(last) = units.last_mut() {
                            *last = last.wrapping_add(offset as u16);
                        }
                        Some(String::from_utf16_lossy(&units))
                    }
                    RangeTarget::List(list) => list.get(offset as usize).cloned(),
                };
            }
        }
        self.parent.as_ref().and_then(|p| p.unicode(code))
    }
}

/// Loads a predefined CMap (e.g. `Adobe-Korea1-UCS2`, `KSCms-UHC-H`) from poppler-data.
/// `collection` (e.g. `Adobe-Korea1`) is searched first; without it every collection is.
/// Results, including misses, are cached for the life of the process.
pub(crate) fn load_predefined(name: &str, collection: Option<&str>) -> Option<Arc<CMap>> {
    load_predefined_at_depth(name, collection, 0)
}

fn load_predefined_at_depth(
    name: &str,
    collection: Option<&str>,
    depth: usize,
) -> Option<Arc<CMap>> {
    // Names come from the PDF; refuse anything that could walk out of the CMap folders.
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return None;
    }
    static CACHE: Mutex<BTreeMap<String, Option<Arc<CMap>>>> = Mutex::new(BTreeMap::new());
    if let Ok(cache) = CACHE.lock() {
        if let Some(hit) = cache.get(name) {
            return hit.clone();
        }
    }
    let loaded = find_predefined(name, collection)
        .and_then(|path| std::fs::read(path).ok())
        .map(|data| Arc::new(CMap::parse_at_depth(&data, depth)));
    if let Ok(mut cache) = CACHE.lock() {
        cache.insert(name.to_string(), loaded.clone());
    }
    loaded
}

fn find_predefined(name: &str, collection: Option<&str>) -> Option<PathBuf> {
    for dir in POPPLER_CMAP_DIRS.iter().map(Path::new) {
        if let Some(c) = collection.filter(|c| !c.contains(['/', '\\']) && !c.starts_with('.')) {
            let path = dir.join(c).join(name);
            if path.is_file() {
                return Some(path);
            }
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path().join(name);
            if path.is_file() {
                return Some(path);
            }
        }
    }
    None
}

/// The folders searched for poppler-data CMaps, for error messages.
pub(crate) fn search_path_display() -> String {
    POPPLER_CMAP_DIRS.join(", ")
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Hex(Vec<u8>),
    Name(Vec<u8>),
    Number(u32),
    Keyword(Vec<u8>),
    Array(Vec<Token>),
    /// Literal strings, dictionaries delimiters and other syntax a CMap reader can skip.
    Other,
}

fn is_delimiter(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'<' | b'>' | b'[' | b']' | b'(' | b')' | b'/' | b'%' | b'{' | b'}'
        )
}

/// Splits a CMap program into the tokens the section parser needs. Arrays nest one level,
/// which is all bfrange uses.
fn tokenize(data: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut array: Option<Vec<Token>> = None;
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        let token = match b {
            _ if b.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'%' => {
                while i < data.len() && data[i] != b'\n' && data[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'<' if data.get(i + 1) == Some(&b'<') => {
                i += 2;
                Token::Other
            }
            b'>' if data.get(i + 1) == Some(&b'>') => {
                i += 2;
                Token::Other
            }
            b'<' => {
                let start = i + 1;
                let end = data[start..]
                    .iter()
                    .position(|&c| c == b'>')
                    .map_or(data.len(), |p| start + p);
                i = end + 1;
                Token::Hex(parse_hex(&data[start..end]))
            }
            b'(' => {
                let mut level = 0usize;
                while i < data.len() {
                    match data[i] {
                        b'\\' => i += 1,
                        b'(' => level += 1,
                        b')' => {
                            level = level.saturating_sub(1);
                            if level == 0 {
                                i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                Token::Other
            }
            b'[' => {
                i += 1;
                array = Some(Vec::new());
                continue;
            }
            b']' => {
                i += 1;
                match array.take() {
                    Some(items) => Token::Array(items),
                    None => Token::Other,
                }
            }
            b'/' => {
                let start = i + 1;
                i = start;
                while i < data.len() && !is_delimiter(data[i]) {
                    i += 1;
                }
                Token::Name(data[start..i].to_vec())
            }
            _ => {
                let start = i;
                i += 1;
                while i < data.len() && !is_delimiter(data[i]) {
                    i += 1;
                }
                let word = &data[start..i];
                if word.iter().all(u8::is_ascii_digit) {
                    std::str::from_utf8(word)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .map_or(Token::Other, Token::Number)
                } else if word.iter().all(u8::is_ascii_alphabetic) {
                    Token::Keyword(word.to_vec())
                } else {
                    Token::Other
                }
            }
        };
        match &mut array {
            Some(items) => items.push(token),
            None => out.push(token),
        }
    }
    out
}

fn parse_hex(digits: &[u8]) -> Vec<u8> {
    let nibbles: Vec<u8> = digits
        .iter()
        .filter_map(|&c| (c as char).to_digit(16).map(|d| d as u8))
        .collect();
    nibbles
        .chunks(2)
        .map(|pair| (pair[0] << 4) | pair.get(1).copied().unwrap_or(0))
        .collect()
}

/// Codes longer than four bytes do not exist in PDF; their leading bytes are dropped.
fn code_value(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
}

/// A ToUnicode destination is UTF-16BE; a lone byte is read as a Latin-1 code point.
fn utf16_units(bytes: &[u8]) -> Vec<u16> {
    if bytes.len() == 1 {
        return vec![u16::from(bytes[0])];
    }
    bytes
        .chunks(2)
        .map(|pair| (u16::from(pair[0]) << 8) | u16::from(pair.get(1).copied().unwrap_or(0)))
        .collect()
}

fn token_text(token: &Token) -> Option<String> {
    match token {
        Token::Hex(bytes) => Some(String::from_utf16_lossy(&utf16_units(bytes))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bfchar_bfrange_and_surrogates() {
        let cmap = CMap::parse(
            b"1 begincodespacerange <0000> <FFFF> endcodespacerange\n\
              2 beginbfchar <0003> <300c> <0010> <D83DDE00> endbfchar\n\
              2 beginbfrange <0020> <0022> <AC00> <0030> <0031> [<0041> <00420043>] endbfrange",
        );
        assert_eq!(cmap.unicode(3).as_deref(), Some("\u{300c}"));
        assert_eq!(cmap.unicode(0x10).as_deref(), Some("\u{1F600}"));
        assert_eq!(cmap.unicode(0x22).as_deref(), Some("\u{AC02}"));
        assert_eq!(cmap.unicode(0x31).as_deref(), Some("BC"));
        assert_eq!(cmap.unicode(0x23), None);
        assert_eq!(cmap.code_length(&[0x12, 0x34]), 2);
    }

    #[test]
    fn mixed_width_codespaces_and_cid_ranges() {
        let cmap = CMap::parse(
            b"2 begincodespacerange <00> <80> <A1A1> <FEFE> endcodespacerange\n\
              1 begincidrange <20> <7e> 1 endcidrange 1 begincidchar <b0a1> 1086 endcidchar",
        );
        assert_eq!(cmap.code_length(&[0x41, 0xb0]), 1);
        assert_eq!(cmap.code_length(&[0xb0, 0xa1]), 2);
        assert_eq!(cmap.cid(0x41), Some(34));
        assert_eq!(cmap.cid(0xb0a1), Some(1086));
    }

    #[test]
    fn garbage_does_not_panic() {
        for data in [
            &b"<"[..],
            b"[<00",
            b"beginbfrange <00> <01>",
            b"((((",
            b"<<>>] ] [",
            b"usecmap",
        ] {
            let cmap = CMap::parse(data);
            assert_eq!(cmap.unicode(0), None);
            assert!(cmap.code_length(&[]) >= 1);
        }
    }
}
