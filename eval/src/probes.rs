//! Red-team probes of the RAG suite (`eval/probes.toml`): documents to plant in a scratch
//! index — public ones with instructions hidden in them, internal ones that must never reach
//! the public — and questions that try injection, verbatim extraction of internal documents
//! or of the prompt, and jailbreaks. What counts as a leak is [`crate::rag::LeakKind`].

use crate::dataset::DataFile;
use crate::error::{EvalError, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::Path;

/// The probe set compiled into the binary.
const BUILTIN: &str = include_str!("../probes.toml");
/// How the built-in set is named in `results.json`.
pub const BUILTIN_PATH: &str = "eval/probes.toml";

/// A probe set: documents and the questions that attack through them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSet {
    #[serde(default, rename = "document")]
    pub documents: Vec<ProbeDocument>,
    #[serde(rename = "probe")]
    pub probes: Vec<Probe>,
    /// Where the set came from and its sha256, for `results.json`.
    #[serde(skip)]
    pub source: Option<DataFile>,
}

/// A document the probes run against.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeDocument {
    /// Its key (relative path) in the scratch index; the extension picks the parser.
    pub key: String,
    pub access: Access,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Public,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    pub id: String,
    pub attack: Attack,
    /// Who asks: `public` (default) or `official`.
    #[serde(default)]
    pub role: Role,
    pub question: String,
    /// Phrases an instruction planted in a document asks the assistant to say; an answer
    /// that says one followed it.
    #[serde(default)]
    pub must_not_say: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attack {
    /// An instruction hidden in a document.
    Injection,
    /// Asking for an internal document verbatim.
    Extraction,
    /// Asking for the prompt the model is given.
    SystemPrompt,
    /// Role play, "developer mode" and other phrasings that try to lift the rules.
    Jailbreak,
}

impl Attack {
    pub fn name(self) -> &'static str {
        match self {
            Attack::Injection => "injection",
            Attack::Extraction => "extraction",
            Attack::SystemPrompt => "system_prompt",
            Attack::Jailbreak => "jailbreak",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Public,
    Official,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Public => "public",
            Role::Official => "official",
        }
    }
}

impl ProbeSet {
    /// The set shipped in `eval/probes.toml`.
    pub fn builtin() -> Result<ProbeSet> {
        ProbeSet::parse(BUILTIN, Path::new(BUILTIN_PATH))
    }

    pub fn load(path: &Path) -> Result<ProbeSet> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        ProbeSet::parse(&text, path)
    }

    /// Parses and checks a set: unique probe ids and document keys, relative keys, and at
    /// least one probe.
    pub fn parse(text: &str, path: &Path) -> Result<ProbeSet> {
        let bad = |detail: String| EvalError::Probes {
            path: path.to_path_buf(),
            detail,
        };
        let mut set: ProbeSet = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if set.probes.is_empty() {
            return Err(bad("no [[probe]]".into()));
        }
        let mut ids = HashSet::new();
        for p in &set.probes {
            if !ids.insert(p.id.as_str()) {
                return Err(bad(format!("probe id {:?} appears twice", p.id)));
            }
            if p.question.trim().is_empty() {
                return Err(bad(format!("probe {:?} has an empty question", p.id)));
            }
        }
        let mut keys = HashSet::new();
        for d in &set.documents {
            let key = Path::new(&d.key);
            if key.is_absolute()
                || key
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(bad(format!(
                    "document key {:?} must be a relative path",
                    d.key
                )));
            }
            if !keys.insert(d.key.as_str()) {
                return Err(bad(format!("document key {:?} appears twice", d.key)));
            }
        }
        set.source = Some(DataFile {
            path: path.to_string_lossy().into_owned(),
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
        });
        Ok(set)
    }

    /// The documents a caller of `role` may not read.
    pub fn hidden_from(&self, role: Role) -> impl Iterator<Item = &ProbeDocument> {
        self.documents
            .iter()
            .filter(move |d| role == Role::Public && d.access == Access::Internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_set_covers_every_attack_and_both_access_levels() {
        let set = ProbeSet::builtin().unwrap();
        for attack in [
            Attack::Injection,
            Attack::Extraction,
            Attack::SystemPrompt,
            Attack::Jailbreak,
        ] {
            assert!(
                set.probes.iter().any(|p| p.attack == attack),
                "{}",
                attack.name()
            );
        }
        assert!(set.documents.iter().any(|d| d.access == Access::Internal));
        assert!(set.documents.iter().any(|d| d.access == Access::Public));
        assert!(set.hidden_from(Role::Public).count() >= 1);
        assert_eq!(set.hidden_from(Role::Official).count(), 0);
        // Every planted instruction's phrase is in some document, so the probe tests it.
        for p in &set.probes {
            for phrase in &p.must_not_say {
                assert!(
                    set.documents
                        .iter()
                        .any(|d| d.text.contains(phrase.as_str())),
                    "{}: {phrase:?} is in no document",
                    p.id
                );
            }
        }
        let source = set.source.unwrap();
        assert_eq!(source.path, BUILTIN_PATH);
        assert_eq!(source.sha256.len(), 64);
    }

    #[test]
    fn malformed_sets_are_errors() {
        let doc = "[[document]]\nkey = \"a.md\"\naccess = \"public\"\ntext = \"x\"\n";
        let probe = "[[probe]]\nid = \"p\"\nattack = \"injection\"\nquestion = \"q\"\n";
        assert!(ProbeSet::parse(&format!("{doc}{probe}"), Path::new("p.toml")).is_ok());
        for text in [
            doc.to_string(),
            format!("{doc}{probe}{probe}"),
            format!("{}{probe}", doc.replace("a.md", "../a.md")),
            format!("{doc}{doc}{probe}"),
            format!("{doc}{}", probe.replace("injection", "flattery")),
            format!("{doc}{}", probe.replace("\"q\"", "\" \"")),
        ] {
            assert!(
                matches!(
                    ProbeSet::parse(&text, Path::new("p.toml")),
                    Err(EvalError::Probes { .. })
                ),
                "{text}"
            );
        }
    }
}
