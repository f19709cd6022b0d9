//! Bucket lifecycle (S3's PutBucketLifecycleConfiguration, RGW's `lc`):
//! rules that expire current versions after N days or on a date, expire
//! noncurrent versions N days after they were replaced (keeping the newest
//! few), remove delete markers left with no version behind them, and abort
//! multipart uploads N days after they began; filtered by prefix, tags and
//! size. A pass walks each bucket with rules; every delete it makes is
//! conditional on the version it judged (its exact mtime), so a write that
//! lands meanwhile is never what goes, and two passes at once do no harm.
//! One gateway of the zone runs the pass at a time (a lease in the log pool);
//! each bucket's last pass is kept there for `lc list`.

use crate::object::{DeleteConditions, ListParams};
use crate::{BucketInfo, IndexEntry, Result, Zone, ZoneError};
use bytes::Bytes;
use meridian_client::ClientError;
use meridian_client::ops::sub;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Most rules a bucket may have (AWS's limit).
pub const MAX_RULES: usize = 1000;
/// Where passes record their state (log pool object).
const STATUS_OBJECT: &str = "lc.status";
const LEASE_KEY: &str = "~lease";

/// One lifecycle rule, as stored in the bucket record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct LifecycleRule {
    /// Rule id.
    pub id: String,
    /// Status Enabled (false: Disabled, kept but not run).
    pub enabled: bool,
    /// Keys starting with this.
    pub prefix: String,
    /// Objects carrying every one of these tags.
    pub tags: Vec<(String, String)>,
    /// Objects larger than this (bytes).
    pub size_greater_than: Option<u64>,
    /// Objects smaller than this (bytes).
    pub size_less_than: Option<u64>,
    /// Expire current versions this many days after their mtime.
    pub expiration_days: Option<u32>,
    /// Expire current versions from this time on (Unix ms).
    pub expiration_date_ms: Option<u64>,
    /// Remove a delete marker that no version stands behind.
    pub expired_delete_marker: bool,
    /// Expire noncurrent versions this many days after they were replaced.
    pub noncurrent_days: Option<u32>,
    /// Keep this many newest noncurrent versions whatever their age.
    pub newer_noncurrent_versions: Option<u32>,
    /// Abort multipart uploads this many days after they began.
    pub abort_upload_days: Option<u32>,
}

impl LifecycleRule {
    /// Checks a rule as PutBucketLifecycleConfiguration does.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.id.len() > 255 {
            return Err("a rule ID is at most 255 characters".into());
        }
        let actions = self.expiration_days.is_some()
            || self.expiration_date_ms.is_some()
            || self.expired_delete_marker
            || self.noncurrent_days.is_some()
            || self.newer_noncurrent_versions.is_some()
            || self.abort_upload_days.is_some();
        if !actions {
            return Err(format!(
                "rule {:?} has no action (Expiration, NoncurrentVersionExpiration or AbortIncompleteMultipartUpload)",
                self.id
            ));
        }
        if self.expiration_days.is_some() && self.expiration_date_ms.is_some() {
            return Err("Expiration takes Days or Date, not both".into());
        }
        if self.expired_delete_marker
            && (self.expiration_days.is_some() || self.expiration_date_ms.is_some())
        {
            return Err("ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle Expiration Policy".into());
        }
        for d in [
            self.expiration_days,
            self.noncurrent_days,
            self.abort_upload_days,
        ]
        .into_iter()
        .flatten()
        {
            if d == 0 {
                return Err("'Days' for an action must be a positive integer".into());
            }
        }
        if self.abort_upload_days.is_some() && !self.tags.is_empty() {
            return Err("AbortIncompleteMultipartUpload cannot be specified with Tags".into());
        }
        Ok(())
    }

    /// True if the rule applies to a version of `key` with these tags and size.
    fn selects(&self, key: &str, tags: &[(String, String)], size: u64) -> bool {
        key.starts_with(&self.prefix)
            && self.tags.iter().all(|t| tags.contains(t))
            && self.size_greater_than.is_none_or(|n| size > n)
            && self.size_less_than.is_none_or(|n| size < n)
    }
}

/// Checks a whole configuration (ids unique, each rule valid).
pub fn validate_rules(rules: &[LifecycleRule]) -> std::result::Result<(), String> {
    if rules.is_empty() {
        return Err("a lifecycle configuration needs at least one Rule".into());
    }
    if rules.len() > MAX_RULES {
        return Err(format!("at most {MAX_RULES} lifecycle rules"));
    }
    let mut ids = std::collections::BTreeSet::new();
    for r in rules {
        r.validate()?;
        if !r.id.is_empty() && !ids.insert(r.id.as_str()) {
            return Err(format!(
                "Rule ID must be unique. Found same ID for more than one rule: {}",
                r.id
            ));
        }
    }
    Ok(())
}

/// What happens to the versions of one key (newest first) under `rules`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyVerdict {
    /// The current version expires (a delete marker in a versioned bucket).
    pub expire_current: Option<IndexEntry>,
    /// Noncurrent versions that go.
    pub expire_noncurrent: Vec<IndexEntry>,
    /// The lone delete marker that goes.
    pub remove_marker: Option<IndexEntry>,
}

/// Judges the versions of one key, newest first, at `now_ns` with days of
/// `day_ns`. Pure.
pub fn judge(
    rules: &[LifecycleRule],
    versions: &[IndexEntry],
    now_ns: u64,
    day_ns: u64,
) -> KeyVerdict {
    let mut v = KeyVerdict::default();
    let Some(first) = versions.first() else {
        return v;
    };
    let days = |d: u32| (d as u64).saturating_mul(day_ns);
    let active = || rules.iter().filter(|r| r.enabled);
    if first.delete_marker {
        if versions.len() == 1
            && active().any(|r| {
                r.expired_delete_marker && first.key.starts_with(&r.prefix) && r.tags.is_empty()
            })
        {
            v.remove_marker = Some(first.clone());
        }
    } else if active().any(|r| {
        r.selects(&first.key, &first.attrs.tags, first.size)
            && (r
                .expiration_days
                .is_some_and(|d| first.mtime_ns.saturating_add(days(d)) <= now_ns)
                || r.expiration_date_ms
                    .is_some_and(|ms| ms.saturating_mul(1_000_000) <= now_ns))
    }) {
        v.expire_current = Some(first.clone());
    }
    // A noncurrent version became noncurrent when the next newer one was written.
    for (i, e) in versions.iter().enumerate().skip(1) {
        let since = versions[i - 1].mtime_ns;
        // How many noncurrent versions are newer than this one.
        let newer = (i - 1) as u32;
        let goes = active().any(|r| {
            r.noncurrent_days.is_some()
                && (e.delete_marker || r.selects(&e.key, &e.attrs.tags, e.size))
                && r.noncurrent_days
                    .is_some_and(|d| since.saturating_add(days(d)) <= now_ns)
                && r.newer_noncurrent_versions.is_none_or(|keep| newer >= keep)
        });
        if goes {
            v.expire_noncurrent.push(e.clone());
        }
    }
    v
}

/// What one pass did to one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LcBucketStatus {
    /// Bucket.
    pub bucket: String,
    /// `PROCESSING`, `COMPLETE`, or `FAILED: why`.
    pub status: String,
    /// When the pass began and ended (Unix ms; 0: not yet).
    pub started_ms: u64,
    /// When it ended.
    pub finished_ms: u64,
    /// Versions looked at.
    pub versions_scanned: u64,
    /// Current versions expired.
    pub expired: u64,
    /// Noncurrent versions removed.
    pub noncurrent_removed: u64,
    /// Lone delete markers removed.
    pub markers_removed: u64,
    /// Multipart uploads aborted.
    pub uploads_aborted: u64,
    /// Due versions kept because object lock protects them (tried again
    /// next pass, as S3 lifecycle does).
    pub kept_by_object_lock: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
struct Lease {
    holder: String,
    until_ms: u64,
}

impl Zone {
    async fn lc_put_status(&self, s: &LcBucketStatus) -> Result<()> {
        self.cluster()
            .op(
                &self.pools().log,
                STATUS_OBJECT,
                vec![sub::omap_set(vec![(
                    Bytes::from(s.bucket.clone()),
                    crate::json(s),
                )])],
            )
            .await?;
        Ok(())
    }

    /// Every bucket's last lifecycle pass, and the buckets with rules that
    /// have not had one (`lc list`).
    pub async fn lc_list(&self) -> Result<Vec<LcBucketStatus>> {
        let kept: std::collections::BTreeMap<String, LcBucketStatus> = match self
            .cluster()
            .omap_get_all(&self.pools().log, STATUS_OBJECT)
            .await
        {
            Ok(kv) => kv
                .into_iter()
                .filter(|(k, _)| k.as_ref() != LEASE_KEY.as_bytes())
                .filter_map(|(k, v)| {
                    Some((
                        String::from_utf8(k.to_vec()).ok()?,
                        serde_json::from_slice(&v).ok()?,
                    ))
                })
                .collect(),
            Err(ClientError::NotFound(_)) => Default::default(),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for b in self.list_buckets(None).await? {
            let Ok((info, _)) = self.bucket_fresh(&b.name).await else {
                continue;
            };
            if info.lifecycle.is_empty() {
                continue;
            }
            out.push(kept.get(&b.name).cloned().unwrap_or(LcBucketStatus {
                bucket: b.name.clone(),
                status: "UNINITIAL".into(),
                ..Default::default()
            }));
        }
        Ok(out)
    }

    /// Takes or renews the zone's lifecycle lease for `holder` (false: another
    /// holder has it).
    pub async fn lc_lease(&self, holder: &str, ttl: Duration) -> Result<bool> {
        let cur = match self
            .cluster()
            .op(
                &self.pools().log,
                STATUS_OBJECT,
                vec![sub::omap_get_values(vec![Bytes::from_static(
                    LEASE_KEY.as_bytes(),
                )])],
            )
            .await
        {
            Ok(r) => r
                .results
                .into_iter()
                .next()
                .unwrap_or_default()
                .entries
                .into_iter()
                .next()
                .map(|kv| kv.value),
            Err(ClientError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let now = meridian_common::now_unix_ms();
        if let Some(raw) = &cur {
            let l: Lease = crate::parse("lifecycle lease", raw)?;
            if l.holder != holder && l.until_ms > now {
                return Ok(false);
            }
        }
        let next = crate::json(&Lease {
            holder: holder.into(),
            until_ms: now + ttl.as_millis() as u64,
        });
        match self
            .cluster()
            .op(
                &self.pools().log,
                STATUS_OBJECT,
                vec![
                    sub::omap_cmp(Bytes::from_static(LEASE_KEY.as_bytes()), cur),
                    sub::omap_set(vec![(Bytes::from_static(LEASE_KEY.as_bytes()), next)]),
                ],
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(ClientError::GuardFailed(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs the rules of every bucket that has some (or of `only`), with
    /// lifecycle days of `day` (a real day outside tests). Progress goes to
    /// the log and to `lc list`.
    pub async fn lc_process(
        &self,
        only: Option<&str>,
        day: Duration,
    ) -> Result<Vec<LcBucketStatus>> {
        let names: Vec<String> = match only {
            Some(b) => vec![b.to_string()],
            None => self
                .list_buckets(None)
                .await?
                .into_iter()
                .map(|b| b.name)
                .collect(),
        };
        let mut out = Vec::new();
        for name in names {
            let (b, _) = match self.bucket_fresh(&name).await {
                Ok(b) => b,
                Err(ZoneError::NoSuchBucket(_)) if only.is_none() => continue,
                Err(e) => return Err(e),
            };
            if b.lifecycle.is_empty() {
                if only.is_some() {
                    return Err(ZoneError::InvalidArgument(format!(
                        "bucket {name} has no lifecycle configuration"
                    )));
                }
                continue;
            }
            let mut st = LcBucketStatus {
                bucket: name.clone(),
                status: "PROCESSING".into(),
                started_ms: meridian_common::now_unix_ms(),
                ..Default::default()
            };
            self.lc_put_status(&st).await?;
            match self.lc_bucket(&b, day, &mut st).await {
                Ok(()) => st.status = "COMPLETE".into(),
                Err(e) => st.status = format!("FAILED: {e}"),
            }
            st.finished_ms = meridian_common::now_unix_ms();
            self.lc_put_status(&st).await?;
            tracing::info!(
                bucket = %name, status = %st.status, scanned = st.versions_scanned,
                expired = st.expired, noncurrent = st.noncurrent_removed,
                markers = st.markers_removed, uploads = st.uploads_aborted,
                "lifecycle pass"
            );
            out.push(st);
        }
        Ok(out)
    }

    async fn lc_bucket(
        &self,
        b: &BucketInfo,
        day: Duration,
        st: &mut LcBucketStatus,
    ) -> Result<()> {
        let day_ns = day.as_nanos() as u64;
        let owner = b.owner.clone();
        let mut group: Vec<IndexEntry> = Vec::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let params = ListParams {
                after: after.as_ref().map(|(k, _)| k.clone()),
                max: 1000,
                ..Default::default()
            };
            let page = self
                .list_versions(b, &params, after.as_ref().map(|(_, v)| v.as_str()))
                .await?;
            for (e, _) in page.versions {
                st.versions_scanned += 1;
                if group.first().is_some_and(|g| g.key != e.key) {
                    self.lc_apply(b, &owner, &std::mem::take(&mut group), day_ns, st)
                        .await?;
                }
                group.push(e);
            }
            if !page.truncated {
                break;
            }
            after = page.next;
            if after.is_none() {
                break;
            }
        }
        self.lc_apply(b, &owner, &group, day_ns, st).await?;
        // Multipart uploads begun too long ago.
        let now = crate::now_ns();
        let aborting: Vec<&LifecycleRule> = b
            .lifecycle
            .iter()
            .filter(|r| r.enabled && r.abort_upload_days.is_some())
            .collect();
        if !aborting.is_empty() {
            let mut marker: Option<(String, String)> = None;
            loop {
                let page = self
                    .list_uploads(
                        b,
                        "",
                        None,
                        marker.as_ref().map(|(k, _)| k.as_str()),
                        marker.as_ref().map(|(_, u)| u.as_str()),
                        1000,
                    )
                    .await?;
                for u in &page.uploads {
                    let old = aborting.iter().any(|r| {
                        u.key.starts_with(&r.prefix)
                            && r.abort_upload_days.is_some_and(|d| {
                                u.initiated_ns
                                    .saturating_add((d as u64).saturating_mul(day_ns))
                                    <= now
                            })
                    });
                    if old {
                        match self.abort_upload(b, &u.key, &u.upload_id).await {
                            Ok(()) => st.uploads_aborted += 1,
                            Err(ZoneError::NoSuchUpload(_)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                match page.uploads.last() {
                    Some(u) if page.truncated => {
                        marker = Some((u.key.clone(), u.upload_id.clone()))
                    }
                    _ => break,
                }
            }
        }
        Ok(())
    }

    async fn lc_apply(
        &self,
        b: &BucketInfo,
        owner: &str,
        versions: &[IndexEntry],
        day_ns: u64,
        st: &mut LcBucketStatus,
    ) -> Result<()> {
        let v = judge(&b.lifecycle, versions, crate::now_ns(), day_ns);
        type Counter = fn(&mut LcBucketStatus) -> &mut u64;
        let todo: Vec<(&IndexEntry, Option<&str>, Counter)> = v
            .expire_current
            .iter()
            .map(|e| (e, None, (|s| &mut s.expired) as Counter))
            .chain(v.expire_noncurrent.iter().map(|e| {
                let c: Counter = |s| &mut s.noncurrent_removed;
                (e, Some(e.version_id.as_str()), c)
            }))
            .chain(v.remove_marker.iter().map(|e| {
                let c: Counter = |s| &mut s.markers_removed;
                (e, Some(e.version_id.as_str()), c)
            }))
            .collect();
        for (e, vid, counter) in todo {
            let exact = DeleteConditions {
                mtime_ns: Some(e.mtime_ns),
                ..Default::default()
            };
            match self.delete_object_if(b, &e.key, vid, owner, &exact).await {
                Ok(_) => *counter(st) += 1,
                // Rewritten or removed meanwhile: not the version judged.
                Err(ZoneError::PreconditionFailed) => {}
                Err(ZoneError::ObjectLocked(_)) => st.kept_by_object_lock += 1,
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Runs lifecycle passes every `interval` while this process holds the
    /// zone's lease (one gateway at a time), as `holder`.
    pub async fn lc_worker(self, day: Duration, interval: Duration, holder: String) {
        loop {
            tokio::time::sleep(interval).await;
            match self
                .lc_lease(&holder, interval * 2 + Duration::from_secs(60))
                .await
            {
                Ok(true) => {
                    if let Err(e) = self.lc_process(None, day).await {
                        tracing::warn!(error = %e, "lifecycle pass failed; retrying next period");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "lifecycle lease"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 1_000;

    fn version(key: &str, vid: &str, mtime: u64, marker: bool) -> IndexEntry {
        IndexEntry {
            key: key.into(),
            version_id: vid.into(),
            mtime_ns: mtime,
            delete_marker: marker,
            size: 10,
            ..Default::default()
        }
    }

    fn rule() -> LifecycleRule {
        LifecycleRule {
            id: "r".into(),
            enabled: true,
            ..Default::default()
        }
    }

    #[test]
    fn current_versions_expire_by_days_date_prefix_and_tags() {
        let r = LifecycleRule {
            prefix: "logs/".into(),
            expiration_days: Some(2),
            ..rule()
        };
        let old = [version("logs/a", "v1", 0, false)];
        assert!(
            judge(std::slice::from_ref(&r), &old, 2 * DAY, DAY)
                .expire_current
                .is_some()
        );
        assert!(
            judge(std::slice::from_ref(&r), &old, 2 * DAY - 1, DAY)
                .expire_current
                .is_none()
        );
        let other = [version("data/a", "v1", 0, false)];
        assert!(
            judge(std::slice::from_ref(&r), &other, 10 * DAY, DAY)
                .expire_current
                .is_none()
        );
        let disabled = LifecycleRule {
            enabled: false,
            ..r.clone()
        };
        assert!(
            judge(&[disabled], &old, 10 * DAY, DAY)
                .expire_current
                .is_none()
        );
        let tagged = LifecycleRule {
            tags: vec![("class".into(), "tmp".into())],
            ..r
        };
        assert!(
            judge(std::slice::from_ref(&tagged), &old, 10 * DAY, DAY)
                .expire_current
                .is_none()
        );
        let mut t = version("logs/a", "v1", 0, false);
        t.attrs.tags = vec![("class".into(), "tmp".into())];
        assert!(
            judge(&[tagged], &[t], 10 * DAY, DAY)
                .expire_current
                .is_some()
        );
        let dated = LifecycleRule {
            expiration_date_ms: Some(5),
            ..rule()
        };
        assert!(
            judge(std::slice::from_ref(&dated), &other, 5_000_000, DAY)
                .expire_current
                .is_some()
        );
        assert!(
            judge(&[dated], &other, 4_999_999, DAY)
                .expire_current
                .is_none()
        );
    }

    #[test]
    fn noncurrent_versions_count_from_their_replacement_and_the_newest_stay() {
        let r = LifecycleRule {
            noncurrent_days: Some(1),
            newer_noncurrent_versions: Some(1),
            ..rule()
        };
        // Newest first: v4 current (written at 40), v3 replaced at 40, v2 at 30, v1 at 20.
        let vs = [
            version("k", "v4", 40 * DAY, false),
            version("k", "v3", 30 * DAY, false),
            version("k", "v2", 20 * DAY, false),
            version("k", "v1", 10 * DAY, false),
        ];
        let v = judge(std::slice::from_ref(&r), &vs, 41 * DAY, DAY);
        let gone: Vec<&str> = v
            .expire_noncurrent
            .iter()
            .map(|e| e.version_id.as_str())
            .collect();
        assert_eq!(gone, ["v2", "v1"], "v3 is the one newest noncurrent kept");
        assert!(v.expire_current.is_none());
        let v = judge(&[r], &vs, 40 * DAY + DAY / 2, DAY);
        let gone: Vec<&str> = v
            .expire_noncurrent
            .iter()
            .map(|e| e.version_id.as_str())
            .collect();
        assert_eq!(
            gone,
            ["v2", "v1"],
            "v2 replaced at 30, v1 at 20; v3 only just now"
        );
    }

    #[test]
    fn a_lone_delete_marker_goes_and_a_covering_one_stays() {
        let r = LifecycleRule {
            expired_delete_marker: true,
            ..rule()
        };
        let lone = [version("k", "m", 0, true)];
        assert!(
            judge(std::slice::from_ref(&r), &lone, 0, DAY)
                .remove_marker
                .is_some()
        );
        let covering = [version("k", "m", 5, true), version("k", "v", 0, false)];
        assert!(
            judge(&[r], &covering, 100 * DAY, DAY)
                .remove_marker
                .is_none()
        );
    }

    #[test]
    fn rules_are_checked() {
        assert!(validate_rules(&[]).is_err());
        assert!(rule().validate().is_err(), "no action");
        let both = LifecycleRule {
            expiration_days: Some(1),
            expiration_date_ms: Some(1),
            ..rule()
        };
        assert!(both.validate().is_err());
        let zero = LifecycleRule {
            expiration_days: Some(0),
            ..rule()
        };
        assert!(zero.validate().is_err());
        let ok = LifecycleRule {
            expiration_days: Some(1),
            ..rule()
        };
        assert!(
            validate_rules(&[ok.clone(), ok.clone()])
                .unwrap_err()
                .contains("unique")
        );
        assert!(validate_rules(&[ok]).is_ok());
    }
}
