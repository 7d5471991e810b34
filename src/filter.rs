//! Search filters shared by the lexical (tantivy) and the dense (Qdrant) side, so that
//! both apply the same restrictions inside the index query, never after it.

use serde::{Deserialize, Serialize};

/// Who may see a document. Stored with every passage; a caller's role maps to the set
/// of levels it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    #[default]
    Public,
    Internal,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Internal => "internal",
        }
    }
}

impl std::str::FromStr for Access {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "public" => Ok(Access::Public),
            "internal" => Ok(Access::Internal),
            other => Err(format!("unknown access level '{other}' (public|internal)")),
        }
    }
}

/// Restrictions on which passages a search may return. Empty lists mean "any".
/// Dates are integers `YYYYMMDD` so both stores can compare them as ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchFilter {
    /// Access levels the caller may read; never empty in practice (public at least).
    pub access: Vec<Access>,
    /// Document kinds (`statute`, `pdf`, `safety_letter`, ...).
    pub kinds: Vec<String>,
    /// Exact law name, e.g. "식품위생법".
    pub law: Option<String>,
    /// Source document key (file name).
    pub doc: Option<String>,
    pub date_from: Option<i64>,
    pub date_to: Option<i64>,
}

/// What the vector store keeps beside each vector: enough to filter, nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointPayload {
    /// Source document key (file name).
    pub doc: String,
    pub kind: String,
    pub law: Option<String>,
    pub access: Access,
    /// Effective or publication date as `YYYYMMDD`.
    pub date: Option<i64>,
}
