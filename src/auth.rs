//! Who may do what: the three roles, the bearer tokens that grant them, and the audit log.
//!
//! Tokens are configured in `anjeon.toml` as `"role:name:argon2-hash"` lines
//! (`anjeon token new` makes one); the plain token is shown once and stored nowhere. A caller
//! without a token is the public. A verified token is remembered by its sha256 for the life of
//! the process, so argon2's deliberate cost is paid once per token, not once per request.

use crate::error::{Error, Result};
use crate::filter::Access;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Who is asking: decides which access levels retrieval may read and what may be changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Anyone: public documents only; answers are leak-guarded and PII-redacted.
    #[default]
    Public,
    /// MFDS staff: public and internal documents.
    Official,
    /// Officials who also ingest and delete documents and read feedback and the audit log.
    Admin,
}

impl Role {
    /// The access levels this role may read.
    pub fn access(self) -> Vec<Access> {
        match self {
            Role::Public => vec![Access::Public],
            Role::Official | Role::Admin => vec![Access::Public, Access::Internal],
        }
    }

    /// Whether answers for this role are leak-guarded and redacted.
    pub fn is_public(self) -> bool {
        self == Role::Public
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Public => "public",
            Role::Official => "official",
            Role::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "public" => Some(Role::Public),
            "official" => Some(Role::Official),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An authenticated (or anonymous) caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    /// The token holder's name from the config; `None` for the anonymous public.
    pub name: Option<String>,
    pub role: Role,
}

impl Caller {
    pub fn public() -> Caller {
        Caller {
            name: None,
            role: Role::Public,
        }
    }

    /// Refuses callers below `role` (admin ⊃ official ⊃ public).
    pub fn require(&self, role: Role) -> Result<()> {
        let rank = |r: Role| r as u8;
        if rank(self.role) >= rank(role) {
            Ok(())
        } else if self.role == Role::Public {
            Err(Error::Unauthorized(format!(
                "로그인이 필요합니다 ({} 권한)",
                role.name()
            )))
        } else {
            Err(Error::Forbidden(format!(
                "{} 권한이 필요합니다 (현재 {})",
                role.name(),
                self.role.name()
            )))
        }
    }
}

/// One configured token holder.
#[derive(Debug, Clone)]
struct Holder {
    role: Role,
    name: String,
    hash: String,
}

/// Failed token digests remembered, so that a client repeating a wrong token does not make
/// the server pay argon2 each time; the set is cleared when it grows past this.
const MAX_REMEMBERED_FAILURES: usize = 4096;

/// The configured tokens and the verification memo.
pub struct Tokens {
    holders: Vec<Holder>,
    verified: Mutex<HashMap<[u8; 32], usize>>,
    failed: Mutex<HashSet<[u8; 32]>>,
}

impl Tokens {
    /// Parses `"role:name:hash"` lines; a malformed line is a configuration error that names it.
    pub fn parse(lines: &[String]) -> Result<Tokens> {
        let mut holders = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let bad = |why: &str| {
                Error::Config(format!(
                    "auth.tokens[{i}]: {why}; expected \"role:name:$argon2id$…\" (see `anjeon token new`)"
                ))
            };
            let mut parts = line.trim().splitn(3, ':');
            let (Some(role), Some(name), Some(hash)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("not three fields"));
            };
            let role = Role::parse(role).ok_or_else(|| bad("unknown role"))?;
            if role == Role::Public {
                return Err(bad("a token for the public role grants nothing"));
            }
            if name.is_empty() {
                return Err(bad("empty name"));
            }
            PasswordHash::new(hash).map_err(|e| bad(&format!("not a password hash ({e})")))?;
            holders.push(Holder {
                role,
                name: name.to_string(),
                hash: hash.to_string(),
            });
        }
        Ok(Tokens {
            holders,
            verified: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashSet::new()),
        })
    }

    /// The caller a presented token belongs to, or `Unauthorized` for a token no holder has.
    pub fn authenticate(&self, token: &str) -> Result<Caller> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let known = self.verified.lock().map(|m| m.get(&digest).copied());
        let index = match known {
            Ok(Some(i)) => Some(i),
            _ if self.failed.lock().is_ok_and(|f| f.contains(&digest)) => None,
            _ => {
                let found = self.holders.iter().position(|h| {
                    PasswordHash::new(&h.hash).is_ok_and(|parsed| {
                        Argon2::default()
                            .verify_password(token.as_bytes(), &parsed)
                            .is_ok()
                    })
                });
                match found {
                    Some(i) => {
                        if let Ok(mut m) = self.verified.lock() {
                            m.insert(digest, i);
                        }
                    }
                    None => {
                        if let Ok(mut f) = self.failed.lock() {
                            if f.len() >= MAX_REMEMBERED_FAILURES {
                                f.clear();
                            }
                            f.insert(digest);
                        }
                    }
                }
                found
            }
        };
        let holder = index
            .and_then(|i| self.holders.get(i))
            .ok_or_else(|| Error::Unauthorized("알 수 없는 토큰입니다".into()))?;
        Ok(Caller {
            name: Some(holder.name.clone()),
            role: holder.role,
        })
    }
}

/// A new random token (32 bytes, URL-safe base64) and its configuration line.
pub fn new_token(role: Role, name: &str) -> Result<(String, String)> {
    if role == Role::Public {
        return Err(Error::InvalidInput(
            "the public role needs no token; choose official or admin".into(),
        ));
    }
    if name.is_empty() || name.contains(':') {
        return Err(Error::InvalidInput(
            "a token holder's name must be non-empty and without ':'".into(),
        ));
    }
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let line = format!("{}:{name}:{}", role.name(), hash_token(&token)?);
    Ok((token, line))
}

/// The argon2id hash of `token` in PHC string form.
pub fn hash_token(token: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(token.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Config(format!("cannot hash the token: {e}")))
}

/// One audited event: an admin action, or a read of internal documents.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEvent {
    /// RFC 3339 time, UTC.
    pub time: String,
    /// The token holder's name (`-` for the anonymous public).
    pub actor: String,
    pub role: Role,
    /// What was done, e.g. `ask`, `search`, `document`, `ingest`, `delete`.
    pub action: String,
    /// What it was done to: document keys, passage ids.
    pub targets: Vec<String>,
}

/// The append-only audit log: one JSON line per event, synced to disk before the request
/// that caused it is answered.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl AuditLog {
    /// Opens (creating) `path` for appending.
    pub fn open(path: &Path) -> Result<AuditLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// Appends one event for `caller` and syncs it.
    pub fn record(&self, caller: &Caller, action: &str, targets: Vec<String>) -> Result<()> {
        let event = AuditEvent {
            time: jiff::Timestamp::now().to_string(),
            actor: caller.name.clone().unwrap_or_else(|| "-".into()),
            role: caller.role,
            action: action.to_string(),
            targets,
        };
        let mut line = serde_json::to_vec(&event)
            .map_err(|e| Error::Config(format!("cannot encode an audit event: {e}")))?;
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .map_err(|_| Error::Config("the audit log lock is poisoned".into()))?;
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Every event so far, oldest first (for admins' review).
    pub fn read_all(&self) -> Result<Vec<AuditEvent>> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_their_holders_and_strangers_are_refused() {
        let (official, line1) = new_token(Role::Official, "kim").unwrap();
        let (admin, line2) = new_token(Role::Admin, "lee").unwrap();
        assert!(line1.starts_with("official:kim:$argon2id$"), "{line1}");
        assert!(
            !line1.contains(&official),
            "the plain token must not be stored"
        );
        let tokens = Tokens::parse(&[line1, line2]).unwrap();
        for _ in 0..2 {
            let c = tokens.authenticate(&official).unwrap();
            assert_eq!((c.name.as_deref(), c.role), (Some("kim"), Role::Official));
        }
        assert_eq!(tokens.authenticate(&admin).unwrap().role, Role::Admin);
        for _ in 0..2 {
            let err = tokens.authenticate("guess").unwrap_err();
            assert!(matches!(err, Error::Unauthorized(_)), "{err}");
        }
    }

    #[test]
    fn malformed_lines_are_configuration_errors() {
        for bad in [
            "official:kim",
            "root:kim:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
            "public:kim:x",
            "official::$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
            "official:kim:plaintext-token",
        ] {
            let err = Tokens::parse(&[bad.to_string()]).err().expect(bad);
            assert!(err.to_string().contains("auth.tokens[0]"), "{err}");
        }
        assert!(new_token(Role::Public, "x").is_err());
        assert!(new_token(Role::Admin, "a:b").is_err());
    }

    #[test]
    fn roles_are_ordered() {
        let official = Caller {
            name: Some("kim".into()),
            role: Role::Official,
        };
        assert!(official.require(Role::Official).is_ok());
        assert!(matches!(
            official.require(Role::Admin),
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            Caller::public().require(Role::Official),
            Err(Error::Unauthorized(_))
        ));
        assert_eq!(Role::Admin.access(), Role::Official.access());
        assert_eq!(Role::Public.access(), vec![Access::Public]);
    }

    #[test]
    fn audit_events_are_appended_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let kim = Caller {
            name: Some("kim".into()),
            role: Role::Official,
        };
        AuditLog::open(&path)
            .unwrap()
            .record(&kim, "ask", vec!["internal/memo.md".into()])
            .unwrap();
        let log = AuditLog::open(&path).unwrap();
        log.record(&kim, "search", vec![]).unwrap();
        let events = log.read_all().unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].actor, "kim");
        assert_eq!(events[0].targets, vec!["internal/memo.md".to_string()]);
        assert_eq!(events[1].action, "search");
        assert!(events[1].time.ends_with('Z'), "{}", events[1].time);
    }
}
