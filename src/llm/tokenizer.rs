//! Text ↔ token ids for the engine: SentencePiece vocabularies built from GGUF metadata
//! (tokenized exactly as llama.cpp does), or a `tokenizer.json` next to the weights.
//!
//! The SentencePiece path follows llama.cpp's algorithm so that ids match `llama-tokenize`:
//! user-defined pieces are cut out of the raw text first, spaces become `▁`, characters are
//! merged pairwise by highest piece score (leftmost on ties), and characters outside the
//! vocabulary fall back to `<0xXX>` byte pieces.

use super::bpe::ByteBpe;
use super::gguf::GgufFile;
use crate::error::{Error, Result};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;

/// GGUF `tokenizer.ggml.token_type` values.
pub(super) const TYPE_UNKNOWN: i32 = 2;
pub(super) const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;
const TYPE_BYTE: i32 = 6;

const SPACE_MARK: &str = "\u{2581}";

/// A tokenizer the engine can use.
pub enum Tokenizer {
    SentencePiece(SentencePiece),
    ByteBpe(Box<ByteBpe>),
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
            Some("gpt2") => Ok(Tokenizer::ByteBpe(Box::new(ByteBpe::from_gguf(gguf)?))),
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

    /// The GGUF vocabulary, for the tokenizers built from one.
    fn vocab(&self) -> Option<&Vocab> {
        match self {
            Tokenizer::SentencePiece(spm) => Some(&spm.vocab),
            Tokenizer::ByteBpe(bpe) => Some(&bpe.vocab),
            Tokenizer::HuggingFace(_) => None,
        }
    }

    /// Token ids of `text`; special tokens written in the text are matched only when
    /// `parse_special` (never for user or document text).
    pub fn encode(&self, text: &str, add_bos: bool, parse_special: bool) -> Result<Vec<u32>> {
        match self {
            Tokenizer::SentencePiece(spm) => Ok(spm.encode(text, add_bos, parse_special)),
            Tokenizer::ByteBpe(bpe) => Ok(bpe.encode(text, add_bos, parse_special)),
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
            Tokenizer::ByteBpe(bpe) => bpe.token_bytes(id),
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
                .vocab
                .pieces
                .get(id as usize)
                .map(|p| p.replace(SPACE_MARK, " ").into_bytes())
                .unwrap_or_default(),
            Tokenizer::ByteBpe(bpe) => bpe.token_bytes_raw(id),
            Tokenizer::HuggingFace(tok) => tok.id_to_token(id).unwrap_or_default().into_bytes(),
        }
    }

    /// Whether `text` spells out one of the model's control tokens.
    pub fn contains_special(&self, text: &str) -> bool {
        match self {
            Tokenizer::HuggingFace(tok) => tok
                .get_added_tokens_decoder()
                .values()
                .any(|t| t.special && text.contains(t.content.as_str())),
            _ => self.vocab().is_some_and(|v| v.contains_control(text)),
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
            Tokenizer::HuggingFace(tok) => tok.get_vocab_size(true),
            _ => self.vocab().map_or(0, |v| v.pieces.len()),
        }
    }

    pub fn special(&self) -> SpecialIds {
        match self {
            Tokenizer::HuggingFace(tok) => {
                let find = |names: &[&str]| names.iter().find_map(|n| tok.token_to_id(n));
                SpecialIds {
                    bos: find(&["<s>", "<bos>", "<|begin_of_text|>"]),
                    eos: find(&["</s>", "<eos>", "<|end_of_text|>", "<|endoftext|>"]),
                    add_bos: false,
                }
            }
            _ => self.vocab().map(|v| v.special).unwrap_or_default(),
        }
    }

    /// The id of a piece written exactly as `text`, if the vocabulary has it.
    pub fn piece_id(&self, text: &str) -> Option<u32> {
        match self {
            Tokenizer::HuggingFace(tok) => tok.token_to_id(text),
            _ => self.vocab().and_then(|v| v.ids.get(text).copied()),
        }
    }
}

/// What every GGUF vocabulary has: the pieces, their types, and the special pieces that are
/// cut out of the text before the model's own algorithm runs.
pub(super) struct Vocab {
    pub(super) pieces: Vec<String>,
    pub(super) types: Vec<i32>,
    pub(super) ids: HashMap<String, u32>,
    /// User-defined, control and unknown pieces, longest first.
    pub(super) specials: Vec<u32>,
    pub(super) special: SpecialIds,
}

/// A stretch of input: plain text for the vocabulary's algorithm, or a special piece.
pub(super) enum Fragment<'a> {
    Text(&'a str),
    Special(u32),
}

impl Vocab {
    /// Reads the pieces and types; `add_bos_default` applies when the file does not say.
    pub(super) fn from_gguf(gguf: &GgufFile, add_bos_default: bool) -> Result<Vocab> {
        let bad = |what: &str| Error::Model(format!("{}: {what}", gguf.path().display()));
        let pieces: Vec<String> = gguf
            .array("tokenizer.ggml.tokens")
            .ok_or_else(|| bad("tokenizer.ggml.tokens is missing"))?
            .iter()
            .map(|v| v.to_string().cloned())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| bad("tokenizer.ggml.tokens holds a non-string"))?;
        let types: Vec<i32> = match gguf.array("tokenizer.ggml.token_type") {
            Some(a) => a.iter().map(|v| v.to_i32().unwrap_or(1)).collect(),
            None => vec![1; pieces.len()],
        };
        if types.len() != pieces.len() {
            return Err(bad("tokenizer arrays differ in length"));
        }
        let mut ids = HashMap::with_capacity(pieces.len());
        let mut specials = Vec::new();
        for (id, piece) in pieces.iter().enumerate() {
            ids.entry(piece.clone()).or_insert(id as u32);
            if matches!(types[id], TYPE_CONTROL | TYPE_USER_DEFINED | TYPE_UNKNOWN)
                && !piece.is_empty()
            {
                specials.push(id as u32);
            }
        }
        specials.sort_by_key(|&id| std::cmp::Reverse(pieces[id as usize].len()));
        let id_of = |key: &str| {
            gguf.get(key)
                .and_then(super::gguf::value_usize)
                .map(|v| v as u32)
        };
        let special = SpecialIds {
            bos: id_of("tokenizer.ggml.bos_token_id"),
            eos: id_of("tokenizer.ggml.eos_token_id"),
            add_bos: gguf.bool_or("tokenizer.ggml.add_bos_token", add_bos_default),
        };
        Ok(Vocab {
            pieces,
            types,
            ids,
            specials,
            special,
        })
    }

    /// `text` cut at the special pieces it spells: user-defined pieces always, control
    /// pieces only when `parse_special` (as llama.cpp partitions its input).
    pub(super) fn fragments<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let mut out = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let (plain, special) = self.next_special(rest, parse_special);
            if plain > 0 {
                out.push(Fragment::Text(&rest[..plain]));
            }
            rest = &rest[plain..];
            if let Some(id) = special {
                out.push(Fragment::Special(id));
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

    /// Whether `text` spells out one of the control pieces.
    fn contains_control(&self, text: &str) -> bool {
        self.specials.iter().any(|&id| {
            self.types[id as usize] == TYPE_CONTROL
                && text.contains(self.pieces[id as usize].as_str())
        })
    }
}

/// A SentencePiece vocabulary as llama.cpp reads it from GGUF.
pub struct SentencePiece {
    vocab: Vocab,
    scores: Vec<f32>,
    /// The `<0xXX>` piece of each byte value.
    bytes: Vec<Option<u32>>,
    unknown: Option<u32>,
    add_space_prefix: bool,
}

/// A queued merge of two adjacent symbols; the greatest priority pops first, the leftmost
/// on ties.
struct Candidate<P> {
    priority: P,
    left: usize,
    right: usize,
    len: usize,
}

impl<P: Ord> PartialEq for Candidate<P> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<P: Ord> Eq for Candidate<P> {}

impl<P: Ord> Ord for Candidate<P> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl<P: Ord> PartialOrd for Candidate<P> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

struct Symbol {
    start: usize,
    len: usize,
    next: Option<usize>,
    prev: Option<usize>,
}

/// Merges adjacent symbols of `text` (its characters at first), the best pair first, for as
/// long as `priority(left, right, merged)` ranks some pair; returns the final symbols in order.
/// SentencePiece ranks by the merged piece's score, BPE by the pair's merge rank.
pub(super) fn merge_pairs<P: Ord>(
    text: &str,
    priority: impl Fn(&str, &str, &str) -> Option<P>,
) -> Vec<&str> {
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
    let slice = |s: &Symbol| &text[s.start..s.start + s.len];
    let mut queue = BinaryHeap::new();
    let try_pair = |symbols: &[Symbol], queue: &mut BinaryHeap<Candidate<P>>, left, right| {
        let (l, r): (&Symbol, &Symbol) = (&symbols[left], &symbols[right]);
        let merged = &text[l.start..r.start + r.len];
        if let Some(priority) = priority(slice(l), slice(r), merged) {
            queue.push(Candidate {
                priority,
                left,
                right,
                len: merged.len(),
            });
        }
    };
    for i in 1..symbols.len() {
        try_pair(&symbols, &mut queue, i - 1, i);
    }
    while let Some(pair) = queue.pop() {
        let (l, r) = (&symbols[pair.left], &symbols[pair.right]);
        // a pair whose symbols changed since it was queued is stale
        if l.len == 0 || r.len == 0 || l.len + r.len != pair.len {
            continue;
        }
        let next = r.next;
        symbols[pair.left].len += symbols[pair.right].len;
        symbols[pair.right].len = 0;
        symbols[pair.left].next = next;
        if let Some(n) = next {
            symbols[n].prev = Some(pair.left);
        }
        if let Some(p) = symbols[pair.left].prev {
            try_pair(&symbols, &mut queue, p, pair.left);
        }
        if let Some(n) = next {
            try_pair(&symbols, &mut queue, pair.left, n);
        }
    }
    let mut out = Vec::new();
    let mut at = (!symbols.is_empty()).then_some(0);
    while let Some(i) = at {
        out.push(slice(&symbols[i]));
        at = symbols[i].next;
    }
    out
}

/// A SentencePiece score as a merge priority (higher first).
#[derive(PartialEq)]
struct Score(f32);

impl Eq for Score {}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl SentencePiece {
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let vocab = Vocab::from_gguf(gguf, true)?;
        let scores: Vec<f32> = match gguf.array("tokenizer.ggml.scores") {
            Some(a) => a.iter().map(|v| v.to_f32().unwrap_or(0.0)).collect(),
            None => vec![0.0; vocab.pieces.len()],
        };
        if scores.len() != vocab.pieces.len() {
            return Err(Error::Model(format!(
                "{}: tokenizer arrays differ in length",
                gguf.path().display()
            )));
        }
        let mut bytes = vec![None; 256];
        let mut unknown = None;
        for (id, piece) in vocab.pieces.iter().enumerate() {
            match vocab.types[id] {
                TYPE_BYTE => {
                    if let Some(b) = piece
                        .strip_prefix("<0x")
                        .and_then(|h| h.strip_suffix('>'))
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
                        bytes[b as usize] = Some(id as u32);
                    }
                }
                TYPE_UNKNOWN => {
                    unknown.get_or_insert(id as u32);
                }
                _ => {}
            }
        }
        Ok(SentencePiece {
            add_space_prefix: gguf.bool_or("tokenizer.ggml.add_space_prefix", true),
            vocab,
            scores,
            bytes,
            unknown,
        })
    }

    pub fn encode(&self, text: &str, add_bos: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if add_bos {
            out.extend(self.vocab.special.bos);
        }
        let mut first_text = true;
        for fragment in self.vocab.fragments(text, parse_special) {
            match fragment {
                Fragment::Special(id) => out.push(id),
                Fragment::Text(fragment) => {
                    let mut escaped = String::with_capacity(fragment.len() + 3);
                    if self.add_space_prefix && first_text {
                        escaped.push_str(SPACE_MARK);
                    }
                    escaped.push_str(&fragment.replace(' ', SPACE_MARK));
                    self.encode_fragment(&escaped, &mut out);
                    first_text = false;
                }
            }
        }
        out
    }

    fn encode_fragment(&self, text: &str, out: &mut Vec<u32>) {
        let pieces = merge_pairs(text, |_, _, merged| {
            let id = *self.vocab.ids.get(merged)?;
            Some(Score(self.scores[id as usize]))
        });
        for piece in pieces {
            match self.vocab.ids.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        if let Some(id) = self.bytes[b as usize].or(self.unknown) {
                            out.push(id);
                        }
                    }
                }
            }
        }
    }

    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(piece) = self.vocab.pieces.get(id as usize) else {
            return Vec::new();
        };
        match self.vocab.types[id as usize] {
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
