//! Byte-level BPE vocabularies built from GGUF metadata (`tokenizer.ggml.model = gpt2`:
//! Llama 3, Qwen, SmolLM, EXAONE 4 …), tokenized as llama.cpp does so ids match
//! `llama-tokenize`.
//!
//! The text is first cut by the pre-tokenizer's regular expressions (chosen by
//! `tokenizer.ggml.pre`; each expression splits every piece further, keeping matches and the
//! text between them); each piece's bytes are spelled in GPT-2's byte alphabet; then adjacent
//! symbols are merged by lowest merge rank (leftmost on ties) until no ranked pair remains.

use super::gguf::GgufFile;
use super::tokenizer::{merge_pairs, Fragment, Vocab, TYPE_CONTROL, TYPE_UNKNOWN};
use crate::error::{Error, Result};
use fancy_regex::Regex;
use std::cmp::Reverse;
use std::collections::HashMap;

/// Pre-tokenizer expressions, as llama.cpp applies them per `tokenizer.ggml.pre` family.
const GPT2: &[&str] = &[r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"];
const SMOLLM: &[&str] = &[
    r"\p{N}",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
];
const LLAMA3: &[&str] = &[
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
];
const QWEN2: &[&str] = &[
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
];
const DEFAULT: &[&str] = &[
    r"[\p{P}\$\+<=>\^~\|]+",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
    r"\p{N}+",
    r"[0-9][0-9][0-9]",
];

/// How a `tokenizer.ggml.pre` name pre-tokenizes: its expressions, whether a word that is
/// itself a piece skips merging, and whether BOS is added when the file does not say.
struct PreTokenizer {
    patterns: &'static [&'static str],
    ignore_merges: bool,
    add_bos: bool,
}

fn pre_tokenizer(name: &str) -> Option<PreTokenizer> {
    let (patterns, ignore_merges, add_bos) = match name {
        "" | "default" => (DEFAULT, false, false),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" | "midm-2.0" => {
            (LLAMA3, true, true)
        }
        "gpt-2" | "phi-2" | "exaone4" | "a.x-4.0" | "mellum" | "olmo" | "mpt" | "jais" => {
            (GPT2, false, false)
        }
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" => {
            (SMOLLM, false, false)
        }
        "qwen2" | "deepseek-r1-qwen" | "stablelm2" | "kormo" => (QWEN2, false, false),
        _ => return None,
    };
    Some(PreTokenizer {
        patterns,
        ignore_merges,
        add_bos,
    })
}

/// GPT-2's byte alphabet: printable bytes stand for themselves, the others for code points
/// from U+0100 upwards, so every byte string is a string of visible characters.
fn byte_alphabet() -> [char; 256] {
    let visible = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        table[b as usize] = if visible(b) {
            char::from(b)
        } else {
            let c = char::from_u32(next).unwrap_or('\u{FFFD}');
            next += 1;
            c
        };
    }
    table
}

/// A byte-level BPE vocabulary with its merge ranks.
pub struct ByteBpe {
    pub(super) vocab: Vocab,
    /// Rank of merging the pieces with these two ids (lower merges first).
    ranks: HashMap<(u32, u32), u32>,
    patterns: Vec<Regex>,
    ignore_merges: bool,
    to_char: [char; 256],
    to_byte: HashMap<char, u8>,
}

impl ByteBpe {
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let bad = |what: String| Error::Model(format!("{}: {what}", gguf.path().display()));
        let pre_name = gguf.string("tokenizer.ggml.pre").unwrap_or("");
        let pre = pre_tokenizer(pre_name).ok_or_else(|| {
            bad(format!(
                "the BPE pre-tokenizer {pre_name:?} is not supported; place the model's tokenizer.json beside it"
            ))
        })?;
        let vocab = Vocab::from_gguf(gguf, pre.add_bos)?;
        let merges = gguf
            .array("tokenizer.ggml.merges")
            .ok_or_else(|| bad("tokenizer.ggml.merges is missing".into()))?;
        let mut ranks = HashMap::with_capacity(merges.len());
        for (rank, merge) in merges.iter().enumerate() {
            let merge = merge
                .to_string()
                .map_err(|_| bad("tokenizer.ggml.merges holds a non-string".into()))?;
            // the first piece may itself start with a space-like character: split after it
            let split = merge
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == ' ')
                .map(|(i, _)| i);
            let Some(split) = split else { continue };
            let (left, right) = (&merge[..split], &merge[split + 1..]);
            if let (Some(&l), Some(&r)) = (vocab.ids.get(left), vocab.ids.get(right)) {
                ranks.entry((l, r)).or_insert(rank as u32);
            }
        }
        let patterns = pre
            .patterns
            .iter()
            .map(|p| Regex::new(p).map_err(|e| bad(format!("pre-tokenizer pattern: {e}"))))
            .collect::<Result<Vec<_>>>()?;
        let to_char = byte_alphabet();
        let to_byte = to_char
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        Ok(ByteBpe {
            vocab,
            ranks,
            patterns,
            ignore_merges: pre.ignore_merges,
            to_char,
            to_byte,
        })
    }

    pub fn encode(&self, text: &str, add_bos: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if add_bos {
            out.extend(self.vocab.special.bos);
        }
        for fragment in self.vocab.fragments(text, parse_special) {
            match fragment {
                Fragment::Special(id) => out.push(id),
                Fragment::Text(fragment) => {
                    for word in self.pre_split(fragment) {
                        let spelled: String =
                            word.bytes().map(|b| self.to_char[b as usize]).collect();
                        self.encode_word(&spelled, &mut out);
                    }
                }
            }
        }
        out
    }

    /// The pre-tokenizer's words: each expression cuts every piece so far into its matches
    /// and the stretches between them.
    fn pre_split<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let mut words = vec![text];
        for pattern in &self.patterns {
            let mut next = Vec::with_capacity(words.len() * 2);
            for word in words {
                let mut at = 0;
                for m in pattern.find_iter(word).flatten() {
                    if m.start() > at {
                        next.push(&word[at..m.start()]);
                    }
                    if m.end() > m.start() {
                        next.push(m.as_str());
                    }
                    at = m.end();
                }
                if at < word.len() {
                    next.push(&word[at..]);
                }
            }
            words = next;
        }
        words
    }

    fn rank(&self, left: &str, right: &str) -> Option<u32> {
        let l = *self.vocab.ids.get(left)?;
        let r = *self.vocab.ids.get(right)?;
        self.ranks.get(&(l, r)).copied()
    }

    fn encode_word(&self, word: &str, out: &mut Vec<u32>) {
        if self.ignore_merges {
            if let Some(&id) = self.vocab.ids.get(word) {
                out.push(id);
                return;
            }
        }
        // lowest rank merges first
        let pieces = merge_pairs(word, |left, right, _| self.rank(left, right).map(Reverse));
        for piece in pieces {
            match self.vocab.ids.get(piece) {
                Some(&id) => out.push(id),
                // a symbol outside the vocabulary falls back to its single characters
                None => out.extend(
                    piece
                        .chars()
                        .filter_map(|c| self.vocab.ids.get(c.encode_utf8(&mut [0; 4]) as &str)),
                ),
            }
        }
    }

    /// The bytes a piece stands for: byte-alphabet spelling undone; control pieces are empty.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(piece) = self.vocab.pieces.get(id as usize) else {
            return Vec::new();
        };
        match self.vocab.types[id as usize] {
            TYPE_CONTROL | TYPE_UNKNOWN => Vec::new(),
            _ => self.spelled_bytes(piece),
        }
    }

    /// A piece's own text in bytes, control pieces included.
    pub fn token_bytes_raw(&self, id: u32) -> Vec<u8> {
        self.vocab
            .pieces
            .get(id as usize)
            .map(|p| self.spelled_bytes(p))
            .unwrap_or_default()
    }

    fn spelled_bytes(&self, piece: &str) -> Vec<u8> {
        // user-defined and control pieces are stored as plain text, not in the byte alphabet
        if piece.chars().all(|c| self.to_byte.contains_key(&c)) {
            piece.chars().map(|c| self.to_byte[&c]).collect()
        } else {
            piece.as_bytes().to_vec()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_alphabet_is_a_bijection_onto_visible_characters() {
        let table = byte_alphabet();
        let distinct: std::collections::HashSet<char> = table.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
        assert_eq!(table[b' ' as usize], '\u{120}');
        assert_eq!(table[b'\n' as usize], '\u{10A}');
        assert_eq!(table[b'A' as usize], 'A');
        assert!(table.iter().all(|c| !c.is_whitespace() && !c.is_control()));
    }

    #[test]
    fn every_supported_pre_tokenizer_compiles() {
        for name in ["", "llama-bpe", "gpt-2", "smollm", "qwen2", "exaone"] {
            let pre = pre_tokenizer(name).unwrap();
            for p in pre.patterns {
                Regex::new(p).unwrap();
            }
        }
        assert!(pre_tokenizer("no-such-model").is_none());
    }
}
