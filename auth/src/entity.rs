//! Entity names: `TYPE.ID`, as Ceph spells them.

use crate::AuthError;
use std::fmt;
use std::str::FromStr;

/// The kind of an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityType {
    /// The monitors (`mon.`: one shared identity, as in Ceph).
    Mon,
    /// One OSD daemon (`osd.N`).
    Osd,
    /// Anything else that talks to the cluster: the CLI, gateways, sync agents.
    Client,
}

/// A validated entity name such as `client.admin` or `osd.3`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityName {
    kind: EntityType,
    id: String,
}

/// Longest id accepted (names travel in every request).
const MAX_ID_LEN: usize = 128;

impl EntityName {
    /// The entity's kind.
    pub fn kind(&self) -> EntityType {
        self.kind
    }

    /// The part after the dot (`admin` in `client.admin`; empty for `mon.`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `client.admin`, the bootstrap administrator.
    pub fn admin() -> Self {
        Self {
            kind: EntityType::Client,
            id: "admin".into(),
        }
    }
}

impl FromStr for EntityName {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, AuthError> {
        let bad = || AuthError::BadEntity(s.to_string());
        let (kind, id) = s.split_once('.').ok_or_else(bad)?;
        let kind = match kind {
            "mon" => EntityType::Mon,
            "osd" => EntityType::Osd,
            "client" => EntityType::Client,
            _ => return Err(bad()),
        };
        let ok = match kind {
            EntityType::Mon => id.is_empty(),
            EntityType::Osd => {
                !id.is_empty() && id.len() <= 9 && id.bytes().all(|b| b.is_ascii_digit())
            }
            EntityType::Client => {
                !id.is_empty()
                    && id.len() <= MAX_ID_LEN
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            }
        };
        if !ok {
            return Err(bad());
        }
        Ok(Self {
            kind,
            id: id.to_string(),
        })
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            EntityType::Mon => "mon",
            EntityType::Osd => "osd",
            EntityType::Client => "client",
        };
        write!(f, "{kind}.{}", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_as_ceph_spells_them() {
        for ok in [
            "mon.",
            "osd.0",
            "osd.12",
            "client.admin",
            "client.gateway.0",
            "client.sync-a_1",
        ] {
            let n: EntityName = ok.parse().unwrap();
            assert_eq!(n.to_string(), ok);
        }
        for bad in [
            "",
            "admin",
            "client.",
            "osd.",
            "osd.x",
            "mon.a",
            "mgr.x",
            "client.a b",
            "client.ü",
        ] {
            assert_eq!(
                bad.parse::<EntityName>(),
                Err(AuthError::BadEntity(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(EntityName::admin().to_string(), "client.admin");
    }
}
