//! Users and access keys, in the meta pool: `user.<uid>` (the [`User`]
//! record), `key.<access key>` (the owning uid; created exclusively, so a key
//! belongs to one user) and the `users` omap directory for listing.

use crate::{AccessKey, MdlogEntry, MdlogPhase, Result, User, Zone, ZoneError, json, parse};
use bytes::Bytes;
use meridian_client::ClientError;
use meridian_client::ops::sub;
use rand::Rng as _;

const USERS_DIR: &str = "users";

/// What `user create` asks for.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct NewUser {
    /// uid.
    pub uid: String,
    /// Display name.
    pub display_name: String,
    /// E-mail.
    pub email: String,
    /// Access key (generated when empty).
    pub access_key: String,
    /// Secret (generated when empty).
    pub secret: String,
    /// System user.
    pub system: bool,
    /// Created suspended.
    pub suspended: bool,
    /// Maximum buckets (0 = unlimited).
    pub max_buckets: u32,
}

/// What `user modify` changes (None = unchanged).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct UserChange {
    /// New display name.
    pub display_name: Option<String>,
    /// New e-mail.
    pub email: Option<String>,
    /// Suspend or reinstate.
    pub suspended: Option<bool>,
    /// Make or unmake a system user.
    pub system: Option<bool>,
    /// New bucket limit.
    pub max_buckets: Option<u32>,
    /// Add this key pair (secret generated when empty).
    pub add_key: Option<(String, String)>,
    /// Remove this access key.
    pub remove_key: Option<String>,
    /// New request limits (`ratelimit set|enable|disable --ratelimit-scope=user`).
    pub ratelimit: Option<crate::RateLimit>,
}

fn user_object(uid: &str) -> String {
    format!("user.{uid}")
}
fn key_object(ak: &str) -> String {
    format!("key.{ak}")
}

/// A 20-character access key id (uppercase letters and digits, like AWS's).
pub fn generate_access_key() -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut r = rand::thread_rng();
    (0..20)
        .map(|_| A[r.gen_range(0..A.len())] as char)
        .collect()
}

/// A 40-character secret.
pub fn generate_secret() -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut r = rand::thread_rng();
    (0..40)
        .map(|_| A[r.gen_range(0..A.len())] as char)
        .collect()
}

fn validate_uid(uid: &str) -> Result<()> {
    if uid.is_empty() || uid.len() > 255 {
        return Err(ZoneError::InvalidArgument(
            "--uid must be 1 to 255 characters".into(),
        ));
    }
    if uid
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(ZoneError::InvalidArgument(format!(
            "--uid {uid:?}: no spaces, control characters or '/'"
        )));
    }
    Ok(())
}

fn validate_key(ak: &str, secret: &str) -> Result<()> {
    if ak.len() < 3 || ak.len() > 128 || !ak.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ZoneError::InvalidArgument(format!(
            "--access-key {ak:?}: 3 to 128 letters or digits"
        )));
    }
    if secret.len() < 8 || secret.len() > 128 || secret.chars().any(|c| c.is_control() || c == ' ')
    {
        return Err(ZoneError::InvalidArgument(
            "--secret must be 8 to 128 printable characters".into(),
        ));
    }
    Ok(())
}

impl Zone {
    /// Reads a JSON record object and its user version.
    pub(crate) async fn read_record<T: serde::de::DeserializeOwned>(
        &self,
        pool: &str,
        name: &str,
    ) -> Result<Option<(T, u64)>> {
        match self.cluster().op(pool, name, vec![sub::read(0, 0)]).await {
            Ok(r) => {
                let data = r.results.into_iter().next().unwrap_or_default().data;
                Ok(Some((parse(name, &data)?, r.user_version)))
            }
            Err(ClientError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a JSON record object; false if it already exists.
    pub(crate) async fn create_record<T: serde::Serialize>(
        &self,
        pool: &str,
        name: &str,
        v: &T,
    ) -> Result<bool> {
        match self
            .cluster()
            .op(
                pool,
                name,
                vec![sub::create(true), sub::write_full(json(v))],
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(ClientError::Exists(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces a record if it is still at `version`; false if it changed.
    pub(crate) async fn replace_record<T: serde::Serialize>(
        &self,
        pool: &str,
        name: &str,
        v: &T,
        version: u64,
    ) -> Result<bool> {
        match self
            .cluster()
            .op(
                pool,
                name,
                vec![sub::assert_version(version), sub::write_full(json(v))],
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(ClientError::GuardFailed(_)) | Err(ClientError::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a record if it is still at `version`; false if it changed.
    pub(crate) async fn remove_record(&self, pool: &str, name: &str, version: u64) -> Result<bool> {
        match self
            .cluster()
            .op(
                pool,
                name,
                vec![sub::assert_version(version), sub::remove()],
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(ClientError::GuardFailed(_)) | Err(ClientError::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Claims `ak` for `uid`; Err(KeyInUse) if another user holds it.
    async fn claim_key(&self, ak: &str, uid: &str) -> Result<()> {
        let meta = &self.pools().meta;
        if self.create_record(meta, &key_object(ak), &uid).await? {
            return Ok(());
        }
        match self.read_record::<String>(meta, &key_object(ak)).await? {
            // Our own claim from an earlier, interrupted attempt.
            Some((owner, _)) if owner == uid => {
                let user = self.user(uid).await;
                match user {
                    Ok(u) if u.keys.iter().any(|k| k.access_key == ak) => {
                        Err(ZoneError::KeyInUse(ak.into()))
                    }
                    _ => Ok(()),
                }
            }
            Some((owner, _)) => {
                // A dangling claim (its user is gone or never got the key) can be taken over.
                match self.user(&owner).await {
                    Ok(u) if u.keys.iter().any(|k| k.access_key == ak) => {
                        Err(ZoneError::KeyInUse(ak.into()))
                    }
                    _ => {
                        self.cluster()
                            .write_full(meta, &key_object(ak), json(&uid))
                            .await?;
                        Ok(())
                    }
                }
            }
            None => Box::pin(self.claim_key(ak, uid)).await,
        }
    }

    async fn release_key(&self, ak: &str) {
        if let Err(e) = self
            .cluster()
            .remove(&self.pools().meta, &key_object(ak))
            .await
            && !matches!(e, ClientError::NotFound(_))
        {
            tracing::warn!(access_key = ak, error = %e, "could not release access key");
        }
    }

    /// `user create`.
    pub async fn create_user(&self, spec: NewUser) -> Result<User> {
        validate_uid(&spec.uid)?;
        let uid = spec.uid.clone();
        self.logged("user", &uid, "write", self.create_user_unlogged(spec))
            .await
    }

    async fn create_user_unlogged(&self, spec: NewUser) -> Result<User> {
        let ak = if spec.access_key.is_empty() {
            generate_access_key()
        } else {
            spec.access_key.clone()
        };
        let sk = if spec.secret.is_empty() {
            generate_secret()
        } else {
            spec.secret.clone()
        };
        validate_key(&ak, &sk)?;
        if self.user(&spec.uid).await.is_ok() {
            return Err(ZoneError::UserExists(spec.uid));
        }
        self.claim_key(&ak, &spec.uid).await?;
        let user = User {
            v: 1,
            user_id: spec.uid.clone(),
            display_name: if spec.display_name.is_empty() {
                spec.uid.clone()
            } else {
                spec.display_name
            },
            email: spec.email,
            suspended: spec.suspended,
            system: spec.system,
            keys: vec![AccessKey {
                user: spec.uid.clone(),
                access_key: ak.clone(),
                secret_key: sk,
            }],
            created_ms: meridian_common::now_unix_ms(),
            max_buckets: spec.max_buckets,
            ratelimit: crate::RateLimit::default(),
        };
        if !self
            .create_record(&self.pools().meta, &user_object(&spec.uid), &user)
            .await?
        {
            self.release_key(&ak).await;
            return Err(ZoneError::UserExists(spec.uid));
        }
        self.cluster()
            .op(
                &self.pools().meta,
                USERS_DIR,
                vec![sub::omap_set(vec![(
                    Bytes::from(spec.uid.clone()),
                    Bytes::new(),
                )])],
            )
            .await?;
        Ok(user)
    }

    /// `user info`.
    pub async fn user(&self, uid: &str) -> Result<User> {
        self.read_record::<User>(&self.pools().meta, &user_object(uid))
            .await?
            .map(|(u, _)| u)
            .ok_or_else(|| ZoneError::NoSuchUser(uid.into()))
    }

    /// The user owning access key `ak` (cached for `rgw_cache_ttl_ms`).
    pub async fn user_by_key(&self, ak: &str) -> Result<std::sync::Arc<User>> {
        if let Some(u) = Self::cache_get(&self.inner.keys, ak, self.params().cache_ttl) {
            return Ok(u);
        }
        let uid = self
            .read_record::<String>(&self.pools().meta, &key_object(ak))
            .await?
            .map(|(u, _)| u)
            .ok_or_else(|| ZoneError::NoSuchAccessKey(ak.into()))?;
        let user = match self.user(&uid).await {
            Ok(u) => u,
            Err(ZoneError::NoSuchUser(_)) => return Err(ZoneError::NoSuchAccessKey(ak.into())),
            Err(e) => return Err(e),
        };
        if !user.keys.iter().any(|k| k.access_key == ak) {
            return Err(ZoneError::NoSuchAccessKey(ak.into()));
        }
        let user = std::sync::Arc::new(user);
        Self::cache_put(&self.inner.keys, ak, user.clone());
        Ok(user)
    }

    /// `user list`: every uid, sorted.
    pub async fn list_users(&self) -> Result<Vec<String>> {
        match self
            .cluster()
            .omap_get_all(&self.pools().meta, USERS_DIR)
            .await
        {
            Ok(v) => Ok(v
                .into_iter()
                .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
                .collect()),
            Err(ClientError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// `user modify`.
    pub async fn modify_user(&self, uid: &str, change: UserChange) -> Result<User> {
        self.logged("user", uid, "write", self.modify_user_unlogged(uid, change))
            .await
    }

    async fn modify_user_unlogged(&self, uid: &str, change: UserChange) -> Result<User> {
        let meta = self.pools().meta.clone();
        if let Some((ak, sk)) = &change.add_key {
            validate_key(ak, if sk.is_empty() { "placeholder" } else { sk })?;
            self.claim_key(ak, uid).await?;
        }
        for _ in 0..32 {
            let (mut user, version) = self
                .read_record::<User>(&meta, &user_object(uid))
                .await?
                .ok_or_else(|| ZoneError::NoSuchUser(uid.into()))?;
            if let Some(v) = &change.display_name {
                user.display_name = v.clone();
            }
            if let Some(v) = &change.email {
                user.email = v.clone();
            }
            if let Some(v) = change.suspended {
                user.suspended = v;
            }
            if let Some(v) = change.system {
                user.system = v;
            }
            if let Some(v) = change.ratelimit {
                user.ratelimit = v;
            }
            if let Some(v) = change.max_buckets {
                user.max_buckets = v;
            }
            if let Some((ak, sk)) = &change.add_key
                && !user.keys.iter().any(|k| &k.access_key == ak)
            {
                user.keys.push(AccessKey {
                    user: uid.into(),
                    access_key: ak.clone(),
                    secret_key: if sk.is_empty() {
                        generate_secret()
                    } else {
                        sk.clone()
                    },
                });
            }
            if let Some(ak) = &change.remove_key {
                if !user.keys.iter().any(|k| &k.access_key == ak) {
                    return Err(ZoneError::NoSuchAccessKey(ak.clone()));
                }
                user.keys.retain(|k| &k.access_key != ak);
            }
            if self
                .replace_record(&meta, &user_object(uid), &user, version)
                .await?
            {
                if let Some(ak) = &change.remove_key {
                    self.release_key(ak).await;
                }
                for k in &user.keys {
                    Self::cache_forget(&self.inner.keys, &k.access_key);
                }
                return Ok(user);
            }
        }
        Err(ZoneError::Contention(format!("user {uid}")))
    }

    /// `user rm`: refused while the user owns buckets.
    pub async fn remove_user(&self, uid: &str) -> Result<()> {
        self.logged("user", uid, "remove", self.remove_user_unlogged(uid))
            .await
    }

    async fn remove_user_unlogged(&self, uid: &str) -> Result<()> {
        let meta = self.pools().meta.clone();
        let (user, version) = self
            .read_record::<User>(&meta, &user_object(uid))
            .await?
            .ok_or_else(|| ZoneError::NoSuchUser(uid.into()))?;
        let owned = self.list_buckets(Some(uid)).await?;
        if !owned.is_empty() {
            return Err(ZoneError::InvalidArgument(format!(
                "user {uid} still owns {} bucket(s) ({}): delete them first",
                owned.len(),
                owned
                    .iter()
                    .take(5)
                    .map(|b| b.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if !self
            .remove_record(&meta, &user_object(uid), version)
            .await?
        {
            return Err(ZoneError::Contention(format!("user {uid}")));
        }
        for k in &user.keys {
            self.release_key(&k.access_key).await;
            Self::cache_forget(&self.inner.keys, &k.access_key);
        }
        match self
            .cluster()
            .op(
                &meta,
                USERS_DIR,
                vec![sub::omap_rm(vec![Bytes::from(uid.to_string())])],
            )
            .await
        {
            Ok(_) | Err(ClientError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Stores a user as the metadata master holds it (metadata sync): its
    /// access keys are claimed for it, keys it no longer has are released.
    pub async fn apply_user(&self, user: &User) -> Result<()> {
        validate_uid(&user.user_id)?;
        let meta = self.pools().meta.clone();
        let old = self
            .read_record::<User>(&meta, &user_object(&user.user_id))
            .await?
            .map(|(u, _)| u);
        if old.as_ref() == Some(user) {
            return Ok(());
        }
        for k in &user.keys {
            self.cluster()
                .write_full(&meta, &key_object(&k.access_key), json(&user.user_id))
                .await?;
        }
        self.cluster()
            .write_full(&meta, &user_object(&user.user_id), json(user))
            .await?;
        self.cluster()
            .op(
                &meta,
                USERS_DIR,
                vec![sub::omap_set(vec![(
                    Bytes::from(user.user_id.clone()),
                    Bytes::new(),
                )])],
            )
            .await?;
        for k in old.iter().flat_map(|o| o.keys.iter()) {
            if !user.keys.iter().any(|n| n.access_key == k.access_key) {
                self.release_key(&k.access_key).await;
            }
            Self::cache_forget(&self.inner.keys, &k.access_key);
        }
        for k in &user.keys {
            Self::cache_forget(&self.inner.keys, &k.access_key);
        }
        Ok(())
    }

    /// Removes a user the metadata master removed (metadata sync).
    pub async fn apply_user_removal(&self, uid: &str) -> Result<()> {
        let meta = self.pools().meta.clone();
        let Some((user, _)) = self.read_record::<User>(&meta, &user_object(uid)).await? else {
            return Ok(());
        };
        match self.cluster().remove(&meta, &user_object(uid)).await {
            Ok(_) | Err(ClientError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        for k in &user.keys {
            self.release_key(&k.access_key).await;
            Self::cache_forget(&self.inner.keys, &k.access_key);
        }
        match self
            .cluster()
            .op(
                &meta,
                USERS_DIR,
                vec![sub::omap_rm(vec![Bytes::from(uid.to_string())])],
            )
            .await
        {
            Ok(_) | Err(ClientError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the `prepare` half of a metadata change's log entry; it is
    /// durable before the change starts (see [`MdlogPhase`]).
    pub(crate) async fn mdlog_prepare(
        &self,
        section: &str,
        name: &str,
        op: &str,
    ) -> Result<MdlogTicket> {
        let shard =
            crate::shard_hash(format!("{section}:{name}").as_bytes()) % self.params().mdlog_shards;
        let entry = MdlogEntry {
            section: section.into(),
            name: name.into(),
            op: op.into(),
            ts_ms: meridian_common::now_unix_ms(),
            id: crate::random_id(),
            phase: MdlogPhase::Prepare,
        };
        self.mdlog_append(shard, &entry).await?;
        Ok(MdlogTicket { shard, entry })
    }

    /// Writes the `commit` half after the change (whether or not it
    /// succeeded: the agent then fetches the record as it is). A commit that
    /// cannot be written is covered by its prepare, which metadata sync
    /// applies once it is old enough.
    pub(crate) async fn mdlog_commit(&self, ticket: MdlogTicket) {
        let mut e = ticket.entry;
        e.phase = MdlogPhase::Commit;
        e.ts_ms = meridian_common::now_unix_ms();
        if let Err(err) = self.mdlog_append(ticket.shard, &e).await {
            tracing::warn!(section = %e.section, name = %e.name, error = %err, "metadata log commit entry not written; its prepare entry stands for it");
        }
    }

    /// Runs `change` between the two halves of its metadata log entry.
    pub(crate) async fn logged<T>(
        &self,
        section: &str,
        name: &str,
        op: &str,
        change: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let ticket = self.mdlog_prepare(section, name, op).await?;
        let r = change.await;
        self.mdlog_commit(ticket).await;
        r
    }

    async fn mdlog_append(&self, shard: u32, e: &MdlogEntry) -> Result<()> {
        self.cluster()
            .op(
                &self.pools().log,
                &crate::log::mdlog_object(shard),
                vec![sub::omap_set_seq(vec![(Bytes::new(), json(e))])],
            )
            .await?;
        self.ring(crate::log::LogKind::Metadata, shard);
        Ok(())
    }
}

/// A metadata change whose `prepare` entry is written.
pub(crate) struct MdlogTicket {
    shard: u32,
    entry: MdlogEntry,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_look_like_aws_keys() {
        let ak = generate_access_key();
        assert_eq!(ak.len(), 20);
        assert!(
            ak.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
        assert_eq!(generate_secret().len(), 40);
        assert_ne!(generate_access_key(), ak);
        validate_key(&ak, &generate_secret()).unwrap();
    }

    #[test]
    fn uids_and_keys_are_validated() {
        assert!(validate_uid("").is_err());
        assert!(validate_uid("a b").is_err());
        assert!(validate_uid("a/b").is_err());
        validate_uid("zone.user").unwrap();
        assert!(validate_key("ab", "secret-ok").is_err());
        assert!(validate_key("ABC-DEF", "secret-ok").is_err());
        assert!(validate_key("ABCDEF", "short").is_err());
    }
}
