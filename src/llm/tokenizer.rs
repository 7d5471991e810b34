//! Text ↔ token ids for the engine: SentencePiece vocabularies built from GGUF metadata
//! (tokenized exactly as llama.cpp does), or a `tokenizer.json` next to the weights.
//!
//! The SentencePiece path follows llama.cpp's algorithm so that ids match `llama-tokenize`:
//! user-defined pieces are cut out of the raw text first, spaces become `▁`, characters are
//! merged pairwise by highest piece score (leftmost on ties), and characters outside the
//! vocabulary fall back to `<0xXX>` byte pieces.

use super::gguf::GgufFile;
use crate::error::{Error, Result};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;

/// GGUF `tokenizer.ggml.token_type` values.
const TYPE_UNKNOWN: i32 = 2;
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;
const TYPE_BYTE: i32 = 6;

const SPACE_MARK: &str = "\u{2581}";

/// A tokenizer the engine can use.
pub enum Tokenizer {
    SentencePiece(SentencePiece),
    HuggingFace(Box<tokenizers::Tokenizer>),
}

/// Ids and flags the engine needs besides the vocabulary itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
}

impl Tokenizer {
    /// `tokenizer.json` beside the weights when there is one, else the GGUF vocabulary.
    pub fn load(gguf: Option<&GgufFile>, model_path: &Path) -> Result<Self> {
        let json = model_path.with_file_name("tokenizer.json");
        if json.is_file() {
            let tok = tokenizers::Tokenizer::from_file(&json)
                .map_err(|e| Error::Model(format!("{}: {e}", json.display())))?;
            return Ok(Tokenizer::HuggingFace(Box::new(tok)));
        }
        let gguf = gguf.ok_or_else(|| {
            Error::Model(format!(
                "{}: no tokenizer.json beside the weights",
                model_path.display()
            ))
        })?;
        match gguf.string("tokenizer.ggml.model") {
            Some("llama") => Ok(Tokenizer::SentencePiece(SentencePiece::from_gguf(gguf)?)),
            Some(other) => Err(Error::Model(format!(
                "{}: the GGUF vocabulary is of type {other:?}; place the model's tokenizer.json beside it",
                gguf.path().display()
            ))),
            None => Err(Error::Model(format!(
                "{}: no tokenizer in the GGUF metadata and no tokenizer.json beside it",
                gguf.path().display()
            ))),
        }
    }

    /// Token ids of `text`; special tokens written in the text are matched only when
    /// `parse_special` (never for user or document text).
    pub fn encode(&self, text: &str, add_bos: bool, parse_special: bool) -> Result<Vec<u32>> {
        match self {
            Tokenizer::SentencePiece(spm) => Ok(spm.encode(text, add_bos, parse_special)),
            Tokenizer::HuggingFace(tok) => {
                let enc = tok
                    .encode(text, add_bos)
                    .map_err(|e| Error::Model(format!("tokenizer: {e}")))?;
                Ok(enc.get_ids().to_vec())
            }
        }
    }

    /// The bytes token `id` stands for (control tokens stand for nothing).
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        match self {
            Tokenizer::SentencePiece(spm) => spm.token_bytes(id),
            Tokenizer::HuggingFace(tok) => tok
                .decode(&[id], true)
                .map(String::into_bytes)
                .unwrap_or_default(),
        }
    }

    /// The piece's own text, control tokens included (e.g. `<bos>` for a template).
    pub fn token_bytes_raw(&self, id: u32) -> Vec<u8> {
        match self {
            Tokenizer::SentencePiece(spm) => spm
                .pieces
                .get(id as usize)
                .map(|p| p.replace(SPACE_MARK, " ").into_bytes())
                .unwrap_or_default(),
            Tokenizer::HuggingFace(tok) => tok.id_to_token(id).unwrap_or_default().into_bytes(),
        }
    }

    /// Whether `text` spells out one of the model's control tokens.
    pub fn contains_special(&self, text: &str) -> bool {
        match self {
            Tokenizer::SentencePiece(spm) => spm.specials.iter().any(|&id| {
                spm.types[id as usize] == TYPE_CONTROL
                    && text.contains(spm.pieces[id as usize].as_str())
            }),
            Tokenizer::HuggingFace(tok) => tok
                .get_added_tokens_decoder()
                .values()
                .any(|t| t.special && text.contains(t.content.as_str())),
        }
    }

    /// Text of a whole id sequence (lossy at invalid UTF-8).
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend(self.token_bytes(id));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::SentencePiece(spm) => spm.pieces.len(),
            Tokenizer::HuggingFace(tok) => tok.get_vocab_size(true),
        }
    }

    pub fn special(&self) -> SpecialIds {
        match self {
            Tokenizer::SentencePiece(spm) => spm.special,
            Tokenizer::HuggingFace(tok) => {
                let find = |names: &[&str]| names.iter().find_map(|n| tok.token_to_id(n));
                SpecialIds {
                    bos: find(&["<s>", "<bos>", "<|begin_of_text|>"]),
                    eos: find(&["</s>", "<eos>", "<|end_of_text|>", "<|endoftext|>"]),
                    add_bos: false,
                }
            }
        }
    }

    /// The id of a piece written exactly as `text`, if the vocabulary has it.
    pub fn piece_id(&self, text: &str) -> Option<u32> {
        match self {
            Tokenizer::SentencePiece(spm) => spm.ids.get(text).copied(),
            Tokenizer::HuggingFace(tok) => tok.token_to_id(text),
        }
    }
}

/// A SentencePiece vocabulary as llama.cpp reads it from GGUF.
pub struct SentencePiece {
    pieces: Vec<String>,
    scores: Vec<f32>,
    types: Vec<i32>,
    ids: HashMap<String, u32>,
    /// User-defined and control pieces, longest first (matched before SentencePiece).
    specials: Vec<u32>,
    /// The `<0xXX>` piece of each byte value.
    bytes: Vec<Option<u32>>,
    unknown: Option<u32>,
    add_space_prefix: bool,
    special: SpecialIds,
}

#[derive(PartialEq)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}

impl Eq for Bigram {}

impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        // highest score first; on ties the leftmost pair
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl SentencePiece {
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let bad = |what: &str| Error::Model(format!("{}: {what}", gguf.path().display()));
        let pieces: Vec<String> = gguf
            .array("tokenizer.ggml.tokens")
            .ok_or_else(|| bad("tokenizer.ggml.tokens is missing"))?
            .iter()
            .map(|v| v.to_string().cloned())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| bad("tokenizer.ggml.tokens holds a non-string"))?;
        let scores: Vec<f32> = match gguf.array("tokenizer.ggml.scores") {
            Some(a) => a.iter().map(|v| v.to_f32().unwrap_or(0.0)).collect(),
            None => vec![0.0; pieces.len()],
        };
        let types: Vec<i32> = match gguf.array("tokenizer.ggml.token_type") {
            Some(a) => a.iter().map(|v| v.to_i32().unwrap_or(1)).collect(),
            None => vec![1; pieces.len()],
        };
        if scores.len() != pieces.len() || types.len() != pieces.len() {
            return Err(bad("tokenizer arrays differ in length"));
        }
        let mut ids = HashMap::with_capacity(pieces.len());
        let mut bytes = vec![None; 256];
        let mut specials = Vec::new();
        let mut unknown = None;
        for (id, piece) in pieces.iter().enumerate() {
            let id = id as u32;
            ids.entry(piece.clone()).or_insert(id);
            match types[id as usize] {
                TYPE_BYTE => {
                    if let Some(b) = piece
                        .strip_prefix("<0x")
                        .and_then(|h| h.strip_suffix('>'))
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
                        bytes[b as usize] = Some(id);
                    }
                }
                TYPE_CONTROL | TYPE_USER_DEFINED => specials.push(id),
                TYPE_UNKNOWN => {
                    unknown.get_or_insert(id);
                    specials.push(id);
                }
                _ => {}
            }
        }
        specials.sort_by_key(|&id| std::cmp::Reverse(pieces[id as usize].len()));
        specials.retain(|&id| !pieces[id as usize].is_empty());
        let id_of = |key: &str| {
            gguf.get(key)
                .and_then(super::gguf::value_usize)
                .map(|v| v as u32)
        };
        let special = SpecialIds {
            bos: id_of("tokenizer.ggml.bos_token_id"),
            eos: id_of("tokenizer.ggml.eos_token_id"),
            add_bos: gguf.bool_or("tokenizer.ggml.add_bos_token", true),
        };
        Ok(SentencePiece {
            add_space_prefix: gguf.bool_or("tokenizer.ggml.add_space_prefix", true),
            pieces,
            scores,
            types,
            ids,
            specials,
            bytes,
            unknown,
            special,
        })
    }

    pub fn encode(&self, text: &str, add_bos: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if add_bos {
            out.extend(self.special.bos);
        }
        let mut first_text = true;
        let mut rest = text;
        while !rest.is_empty() {
            let (plain, special) = self.next_special(rest, parse_special);
            if plain > 0 {
                let fragment = &rest[..plain];
                let mut escaped = String::with_capacity(fragment.len() + 3);
                if self.add_space_prefix && first_text {
                    escaped.push_str(SPACE_MARK);
                }
                escaped.push_str(&fragment.replace(' ', SPACE_MARK));
                self.encode_fragment(&escaped, &mut out);
                first_text = false;
            }
            rest = &rest[plain..];
            if let Some(id) = special {
                out.push(id);
                rest = &rest[self.pieces[id as usize].len()..];
            }
        }
        out
    }

    /// Bytes of plain text before the first special piece in `text`, and that piece.
    fn next_special(&self, text: &str, parse_special: bool) -> (usize, Option<u32>) {
        let mut best: Option<(usize, u32)> = None;
        for &id in &self.specials {
            if !parse_special && self.types[id as usize] != TYPE_USER_DEFINED {
                continue;
            }
            if let Some(pos) = text.find(self.pieces[id as usize].as_str()) {
                // earliest match wins; `specials` is longest first, so ties keep the longest
                if best.is_none_or(|(b, _)| pos < b) {
                    best = Some((pos, id));
                }
            }
        }
        match best {
            Some((pos, id)) => (pos, Some(id)),
            None => (text.len(), None),
        }
    }

    fn encode_fragment(&self, text: &str, out: &mut Vec<u32>) {
        let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
        for (i, (start, ch)) in text.char_indices().enumerate() {
            symbols.push(Symbol {
                start,
                len: ch.len_utf8(),
                prev: i.checked_sub(1),
                next: None,
            });
            if i > 0 {
                symbols[i - 1].next = Some(i);
            }
        }
        let mut queue = BinaryHeap::new();
        let try_pair =
            |symbols: &[Symbol], queue: &mut BinaryHeap<Bigram>, left: usize, right: usize| {
                let (l, r) = (&symbols[left], &symbols[right]);
                let merged = &text[l.start..r.start + r.len];
                if let Some(&id) = self.ids.get(merged) {
                    queue.push(Bigram {
                        score: self.scores[id as usize],
                        left,
                        right,
                        len: merged.len(),
                    });
                }
            };
        for i in 1..symbols.len() {
            try_pair(&symbols, &mut queue, i - 1, i);
        }
        while let Some(bigram) = queue.pop() {
            let (l, r) = (&symbols[bigram.left], &symbols[bigram.right]);
            if l.len == 0 || r.len == 0 || l.len + r.len != bigram.len {
                continue;
            }
            let next = r.next;
            symbols[bigram.left].len += symbols[bigram.right].len;
            symbols[bigram.right].len = 0;
            symbols[bigram.left].next = next;
            if let Some(n) = next {
                symbols[n].prev = Some(bigram.left);
            }
            if let Some(p) = symbols[bigram.left].prev {
                try_pair(&symbols, &mut queue, p, bigram.left);
            }
            if let Some(n) = next {
                try_pair(&symbols, &mut queue, bigram.left, n);
            }
        }
        let mut at = if symbols.is_empty() { None } else { Some(0) };
        while let Some(i) = at {
            let s = &symbols[i];
            let piece = &text[s.start..s.start + s.len];
            match self.ids.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        if let Some(id) = self.bytes[b as usize].or(self.unknown) {
                            out.push(id);
                        }
                    }
                }
            }
            at = s.next;
        }
    }

    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(piece) = self.pieces.get(id as usize) else {
            return Vec::new();
        };
        match self.types[id as usize] {
            TYPE_CONTROL | TYPE_UNKNOWN => Vec::new(),
            TYPE_BYTE => self
                .bytes
                .iter()
                .position(|b| *b == Some(id))
                .map(|b| vec![b as u8])
                .unwrap_or_default(),
            _ => piece.replace(SPACE_MARK, " ").into_bytes(),
        }
    }
}

/// Turns a stream of token ids into text pieces that never split a UTF-8 character: bytes of
/// an incomplete character wait for the token that completes it.
#[derive(Default)]
pub struct Detokenizer {
    pending: Vec<u8>,
}

impl Detokenizer {
    /// Text that can be shown after `id`, possibly empty.
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> String {
        self.pending.extend(tokenizer.token_bytes(id));
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            // an invalid sequence (not just an unfinished one) is shown as U+FFFD
            Err(e) => e.valid_up_to() + e.error_len().unwrap_or(0),
        };
        let ready: Vec<u8> = self.pending.drain(..valid).collect();
        String::from_utf8_lossy(&ready).into_owned()
    }

    /// Whatever is still held back at the end of the stream.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        String::from_utf8_lossy(&rest).into_owned()
    }
}
