//! PDF fonts as text extraction needs them: how show-string bytes split into character
//! codes, what Unicode each code stands for, and how far each glyph advances.

use super::cmap::{self, CMap};
use super::objects::{array_of, deref, dict_get, name_of, number, stream_data};
use lopdf::{Dictionary, Document, Object};
use std::collections::HashMap;
use std::sync::Arc;

/// How a composite font's show-string bytes become character codes and CIDs.
enum CodeScheme {
    /// Simple fonts (Type1, TrueType, Type3): one byte per code.
    OneByte,
    /// `Identity-H`/`Identity-V`: two bytes per code, code = CID.
    Identity,
    /// `Uni*-UCS2-*`/`Uni*-UTF16-*`: the codes are UTF-16 units already.
    Utf16(Arc<CMap>),
    /// Any other embedded or predefined CMap.
    Mapped(Arc<CMap>),
}

enum Widths {
    Simple {
        first: u32,
        widths: Vec<f32>,
        missing: f32,
    },
    Cid {
        default: f32,
        chars: HashMap<u32, f32>,
        ranges: Vec<(u32, u32, f32)>,
    },
}

/// A font resource, resolved once per document.
pub(crate) struct Font {
    scheme: CodeScheme,
    to_unicode: Option<CMap>,
    /// Simple fonts: the base encoding and Differences, resolved through lopdf's glyph tables.
    byte_table: Option<Vec<Option<char>>>,
    /// Composite fonts of an Adobe CJK collection: CID → Unicode from poppler-data.
    cid_unicode: Option<Arc<CMap>>,
    /// Why codes without a ToUnicode entry cannot be read, when poppler-data is missing.
    missing_data: Option<String>,
    widths: Widths,
    /// Glyph-space units → text-space units (1/1000, or a Type3 font's FontMatrix).
    scale: f32,
    vertical: bool,
}

/// One character code of a show string and how many bytes it took.
pub(crate) struct Code {
    pub value: u32,
    pub len: usize,
}

impl Font {
    pub(crate) fn load(doc: &Document, dict: &Dictionary) -> Font {
        let subtype = dict_get(doc, dict, b"Subtype")
            .and_then(name_of)
            .unwrap_or_default();
        let to_unicode = dict_get(doc, dict, b"ToUnicode")
            .and_then(|o| o.as_stream().ok())
            .and_then(stream_data)
            .map(|data| CMap::parse(&data));
        if subtype == b"Type0" {
            Self::load_composite(doc, dict, to_unicode)
        } else {
            Self::load_simple(doc, dict, subtype == b"Type3", to_unicode)
        }
    }

    fn load_composite(doc: &Document, dict: &Dictionary, to_unicode: Option<CMap>) -> Font {
        let name = dict_get(doc, dict, b"BaseFont")
            .and_then(name_of)
            .map_or_else(|| "(unnamed)".into(), String::from_utf8_lossy);
        let descendant = dict_get(doc, dict, b"DescendantFonts")
            .and_then(|o| array_of(doc, o))
            .and_then(|a| a.first())
            .and_then(|o| deref(doc, o).as_dict().ok());
        let ordering = descendant
            .and_then(|d| dict_get(doc, d, b"CIDSystemInfo"))
            .and_then(|o| o.as_dict().ok())
            .and_then(|info| {
                let registry = dict_get(doc, info, b"Registry")?.as_str().ok()?;
                let ordering = dict_get(doc, info, b"Ordering")?.as_str().ok()?;
                Some(format!(
                    "{}-{}",
                    String::from_utf8_lossy(registry),
                    String::from_utf8_lossy(ordering)
                ))
            });
        let (scheme, vertical) = match dict_get(doc, dict, b"Encoding") {
            Some(Object::Name(n)) if n == b"Identity-H" => (CodeScheme::Identity, false),
            Some(Object::Name(n)) if n == b"Identity-V" => (CodeScheme::Identity, true),
            Some(Object::Name(n)) => {
                let cmap_name = String::from_utf8_lossy(n).into_owned();
                match cmap::load_predefined(&cmap_name, ordering.as_deref()) {
                    Some(cmap) => {
                        let vertical = cmap.is_vertical();
                        let utf16 = cmap_name.starts_with("Uni")
                            && (cmap_name.contains("UCS2") || cmap_name.contains("UTF16"));
                        (
                            if utf16 {
                                CodeScheme::Utf16(cmap)
                            } else {
                                CodeScheme::Mapped(cmap)
                            },
                            vertical,
                        )
                    }
                    None => (CodeScheme::Identity, cmap_name.ends_with("-V")),
                }
            }
            Some(Object::Stream(s)) => {
                let cmap = CMap::parse(&stream_data(s).unwrap_or_default());
                let vertical = cmap.is_vertical();
                (CodeScheme::Mapped(Arc::new(cmap)), vertical)
            }
            _ => (CodeScheme::Identity, false),
        };

        // Adobe character collections publish CID → Unicode tables; Identity and the
        // "UCS" ordering some producers write have none.
        let collection = ordering.filter(|o| {
            o.strip_prefix("Adobe-")
                .is_some_and(|rest| !matches!(rest, "Identity" | "UCS"))
        });
        let mut missing_data = None;
        let cid_unicode = match (&collection, &scheme) {
            (_, CodeScheme::Utf16(_)) => None,
            (Some(c), _) => {
                let table = format!("{c}-UCS2");
                let loaded = cmap::load_predefined(&table, Some(c));
                if loaded.is_none() && to_unicode.is_none() {
                    missing_data = Some(format!(
                        "PDF font {name} has no ToUnicode map, and reading its {c} CIDs needs the \
                         {table} CMap of poppler-data, found in none of {}",
                        cmap::search_path_display()
                    ));
                }
                loaded
            }
            (None, _) => None,
        };

        let widths = descendant.map_or_else(
            || Widths::Cid {
                default: 1.0,
                chars: HashMap::new(),
                ranges: Vec::new(),
            },
            |d| cid_widths(doc, d),
        );
        Font {
            scheme,
            to_unicode,
            byte_table: None,
            cid_unicode,
            missing_data,
            widths,
            scale: 0.001,
            vertical,
        }
    }

    fn load_simple(
        doc: &Document,
        dict: &Dictionary,
        type3: bool,
        to_unicode: Option<CMap>,
    ) -> Font {
        let byte_table = dict.get_font_encoding(doc).ok().map(|encoding| {
            (0u8..=255)
                .map(|b| {
                    encoding
                        .bytes_to_string(&[b])
                        .ok()
                        .and_then(|s| s.chars().next())
                        .filter(|c| usable_char(*c))
                })
                .collect()
        });
        let scale = if type3 {
            dict_get(doc, dict, b"FontMatrix")
                .and_then(|o| array_of(doc, o))
                .and_then(|m| m.first())
                .and_then(|o| number(doc, o))
                .map(f32::abs)
                .filter(|s| s.is_finite() && *s > 0.0)
                .unwrap_or(0.001)
        } else {
            0.001
        };
        let first = dict_get(doc, dict, b"FirstChar")
            .and_then(|o| number(doc, o))
            .map_or(0, |f| f.clamp(0.0, 255.0) as u32);
        let widths: Vec<f32> = dict_get(doc, dict, b"Widths")
            .and_then(|o| array_of(doc, o))
            .map(|a| a.iter().map(|w| number(doc, w).unwrap_or(0.0)).collect())
            .unwrap_or_default();
        let missing = dict_get(doc, dict, b"FontDescriptor")
            .and_then(|o| o.as_dict().ok())
            .and_then(|d| dict_get(doc, d, b"MissingWidth"))
            .and_then(|o| number(doc, o))
            .filter(|w| *w > 0.0)
            // The standard 14 fonts come without widths; half an em is a fair average.
            .unwrap_or(0.5 / scale);
        Font {
            scheme: CodeScheme::OneByte,
            to_unicode,
            byte_table,
            cid_unicode: None,
            missing_data: None,
            widths: Widths::Simple {
                first,
                widths,
                missing,
            },
            scale,
            vertical: false,
        }
    }

    pub(crate) fn is_vertical(&self) -> bool {
        self.vertical
    }

    /// Why this font's text cannot be read, if poppler-data it needs is missing.
    pub(crate) fn missing_data(&self) -> Option<&str> {
        self.missing_data.as_deref()
    }

    /// The next character code at the start of `bytes` (which must not be empty).
    pub(crate) fn next_code(&self, bytes: &[u8]) -> Code {
        let len = match &self.scheme {
            CodeScheme::OneByte => 1,
            CodeScheme::Identity => 2,
            CodeScheme::Utf16(cmap) | CodeScheme::Mapped(cmap) => cmap.code_length(bytes),
        }
        .min(bytes.len())
        .max(1);
        let value = bytes
            .iter()
            .take(len)
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        Code { value, len }
    }

    fn cid(&self, code: u32) -> u32 {
        match &self.scheme {
            CodeScheme::OneByte | CodeScheme::Identity => code,
            CodeScheme::Utf16(cmap) | CodeScheme::Mapped(cmap) => cmap.cid(code).unwrap_or(0),
        }
    }

    /// The Unicode text of a code, or `None` when nothing usable is known.
    pub(crate) fn text(&self, code: u32) -> Option<String> {
        if let Some(text) = self.to_unicode.as_ref().and_then(|m| m.unicode(code)) {
            if let Some(clean) = clean_text(&text) {
                return Some(clean);
            }
        }
        match &self.scheme {
            CodeScheme::OneByte => self
                .byte_table
                .as_ref()
                .and_then(|t| t.get(code as usize).copied().flatten())
                .map(String::from),
            CodeScheme::Utf16(_) => u16::try_from(code)
                .ok()
                .and_then(|unit| char::decode_utf16([unit]).next()?.ok())
                .filter(|c| usable_char(*c))
                .map(String::from),
            CodeScheme::Identity | CodeScheme::Mapped(_) => {
                let text = self.cid_unicode.as_ref()?.unicode(self.cid(code))?;
                clean_text(&text)
            }
        }
    }

    /// Advance of a glyph in text space per unit of font size.
    pub(crate) fn advance(&self, code: u32) -> f32 {
        let width = match &self.widths {
            Widths::Simple {
                first,
                widths,
                missing,
            } => code
                .checked_sub(*first)
                .and_then(|i| widths.get(i as usize))
                .copied()
                .unwrap_or(*missing),
            Widths::Cid {
                default,
                chars,
                ranges,
            } => {
                let cid = self.cid(code);
                chars.get(&cid).copied().unwrap_or_else(|| {
                    ranges
                        .iter()
                        .find(|(lo, hi, _)| (*lo..=*hi).contains(&cid))
                        .map_or(*default, |r| r.2)
                })
            }
        };
        let advance = width * self.scale;
        if advance.is_finite() {
            advance
        } else {
            0.0
        }
    }
}

/// `/DW` and `/W` of a CIDFont, in glyph units.
fn cid_widths(doc: &Document, descendant: &Dictionary) -> Widths {
    let default = dict_get(doc, descendant, b"DW")
        .and_then(|o| number(doc, o))
        .unwrap_or(1000.0);
    let mut chars = HashMap::new();
    let mut ranges = Vec::new();
    if let Some(w) = dict_get(doc, descendant, b"W").and_then(|o| array_of(doc, o)) {
        let mut i = 0;
        while i < w.len() {
            let Some(first) = number(doc, &w[i]).filter(|f| *f >= 0.0).map(|f| f as u32) else {
                break;
            };
            match w.get(i + 1).map(|o| deref(doc, o)) {
                Some(Object::Array(list)) => {
                    for (k, width) in list.iter().enumerate() {
                        if let Some(width) = number(doc, width) {
                            chars.insert(first.saturating_add(k as u32), width);
                        }
                    }
                    i += 2;
                }
                Some(last) => {
                    let last = number(doc, last).filter(|f| *f >= 0.0).map(|f| f as u32);
                    let width = w.get(i + 2).and_then(|o| number(doc, o));
                    if let (Some(last), Some(width)) = (last, width) {
                        ranges.push((first, last, width));
                    }
                    i += 3;
                }
                None => break,
            }
        }
    }
    Widths::Cid {
        default,
        chars,
        ranges,
    }
}

/// Characters that carry text: not controls, not the noncharacters some producers map
/// unused codes to, not the replacement character.
fn usable_char(c: char) -> bool {
    !c.is_control() && !matches!(c, '\u{FFFD}' | '\u{FFFE}' | '\u{FFFF}' | '\u{FEFF}')
}

fn clean_text(text: &str) -> Option<String> {
    let clean: String = text.chars().filter(|c| usable_char(*c)).collect();
    (!clean.is_empty()).then_some(clean)
}
