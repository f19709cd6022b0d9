//! Keyring files in Ceph's format:
//!
//! ```text
//! [client.admin]
//!     key = <base64>
//!     caps mon = "allow *"
//!     caps osd = "allow *"
//! ```

use crate::{AuthError, EntityName, validate_key};
use std::collections::BTreeMap;
use std::fmt;

/// One entity of a keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringEntry {
    /// Who.
    pub name: EntityName,
    /// The secret key.
    pub key: String,
    /// Capabilities per service (informational in a keyring: the monitors'
    /// copy is the one that counts).
    pub caps: BTreeMap<String, String>,
}

/// The entities of one keyring file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Keyring {
    /// The entries.
    pub entries: Vec<KeyringEntry>,
}

impl Keyring {
    /// Parses keyring text.
    pub fn parse(text: &str) -> Result<Keyring, AuthError> {
        let mut entries: Vec<KeyringEntry> = Vec::new();
        let mut key_seen = true;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let bad = |why: String| AuthError::BadKeyring { line: i + 1, why };
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                if let Some(prev) = entries.last().filter(|_| !key_seen) {
                    return Err(bad(format!("[{}] has no key", prev.name)));
                }
                let name: EntityName = name
                    .trim()
                    .parse()
                    .map_err(|e: AuthError| bad(e.to_string()))?;
                if entries.iter().any(|e| e.name == name) {
                    return Err(bad(format!("[{name}] appears twice")));
                }
                entries.push(KeyringEntry {
                    name,
                    key: String::new(),
                    caps: BTreeMap::new(),
                });
                key_seen = false;
                continue;
            }
            let (lhs, rhs) = line.split_once('=').ok_or_else(|| {
                bad(format!(
                    "expected 'key = ...' or 'caps SERVICE = ...', found '{line}'"
                ))
            })?;
            let entry = entries
                .last_mut()
                .ok_or_else(|| bad("a setting before the first [entity] section".into()))?;
            let value = unquote(rhs.trim());
            let words: Vec<&str> = lhs.split_whitespace().collect();
            match words.as_slice() {
                ["key"] => {
                    validate_key(&entry.name.to_string(), value).map_err(|e| bad(e.to_string()))?;
                    entry.key = value.to_string();
                    key_seen = true;
                }
                ["caps", service] => {
                    entry.caps.insert(service.to_string(), value.to_string());
                }
                _ => return Err(bad(format!("unknown setting '{}'", lhs.trim()))),
            }
        }
        if let Some(last) = entries.last().filter(|_| !key_seen) {
            return Err(AuthError::BadKeyring {
                line: text.lines().count(),
                why: format!("[{}] has no key", last.name),
            });
        }
        Ok(Keyring { entries })
    }

    /// The entry of `name`, if the keyring holds it.
    pub fn get(&self, name: &EntityName) -> Option<&KeyringEntry> {
        self.entries.iter().find(|e| &e.name == name)
    }
}

/// Writes keyring `text` to `path`, readable by its owner only (0600):
/// written to a temporary file, synced, then renamed over `path`, so a
/// crash never leaves a partial keyring.
pub fn write_keyring_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let tmp = stage_keyring_file(path, text)?;
    std::fs::rename(&tmp, path)
}

/// Writes keyring `text` (mode 0600, synced) to a temporary file beside
/// `path` and returns its name, for the caller to move into place.
pub fn stage_keyring_file(
    path: &std::path::Path,
    text: &str,
) -> std::io::Result<std::path::PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(tmp)
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

impl fmt::Display for KeyringEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[{}]", self.name)?;
        writeln!(f, "\tkey = {}", self.key)?;
        for (service, cap) in &self.caps {
            writeln!(f, "\tcaps {service} = \"{cap}\"")?;
        }
        Ok(())
    }
}

impl fmt::Display for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entries {
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate_key;

    #[test]
    fn keyrings_round_trip_in_cephs_format() {
        let key = generate_key();
        let text = format!(
            "# made by hand\n[client.admin]\n    key = {key}\n    caps mon = \"allow *\"\n\tcaps osd = allow *\n\n[osd.3]\nkey={key}\n"
        );
        let k = Keyring::parse(&text).unwrap();
        assert_eq!(k.entries.len(), 2);
        let admin = k.get(&EntityName::admin()).unwrap();
        assert_eq!(admin.key, key);
        assert_eq!(admin.caps["mon"], "allow *");
        assert_eq!(admin.caps["osd"], "allow *");
        assert!(k.get(&"osd.3".parse().unwrap()).unwrap().caps.is_empty());
        assert_eq!(Keyring::parse(&k.to_string()).unwrap(), k);
        assert!(k.to_string().starts_with("[client.admin]\n\tkey = "));
    }

    #[test]
    fn broken_keyrings_name_the_line() {
        let key = generate_key();
        for (text, line, why) in [
            (format!("key = {key}\n"), 1, "before the first"),
            ("[client.a]\n".to_string(), 1, "has no key"),
            (
                format!("[client.a]\n[client.b]\nkey = {key}\n"),
                2,
                "[client.a] has no key",
            ),
            ("[client.a]\nkey = short\n".to_string(), 2, "bad key"),
            (
                format!("[client.a]\nkey = {key}\ncolour = red\n"),
                3,
                "unknown setting",
            ),
            (
                format!("[client.a]\nkey = {key}\njunk\n"),
                3,
                "expected 'key",
            ),
            (format!("[nobody]\nkey = {key}\n"), 1, "bad entity name"),
            (
                format!("[client.a]\nkey = {key}\n[client.a]\nkey = {key}\n"),
                3,
                "twice",
            ),
        ] {
            match Keyring::parse(&text) {
                Err(AuthError::BadKeyring { line: l, why: w }) => {
                    assert_eq!(l, line, "{text}");
                    assert!(w.contains(why), "{text}: {w}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
