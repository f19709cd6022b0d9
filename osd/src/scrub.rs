//! Scrub: compare every object of a PG across its acting set (size and
//! version; with `deep`, blake3 of data and of xattrs + omap), and with
//! `repair` overwrite bad copies with the state most replicas agree on.

use crate::daemon::Osd;
use crate::error::OsdError;
use crate::objstate;
use crate::pg::Pg;
use crate::pglog::pgref;
use bytes::Bytes;
use meridian_objectstore::{ObjectKey, Transaction};
use meridian_proto::osd::{
    ObjectDigest, ObjectState, PgListRequest, PullRequest, PushRequest, ResultCode, ScrubReply,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

type Fingerprint = (u64, (u64, u64), Bytes, Bytes, bool);

fn fingerprint(d: &ObjectDigest) -> Fingerprint {
    (
        d.size,
        crate::pglog::ev(&d.version),
        d.data_digest.clone(),
        d.meta_digest.clone(),
        d.corrupt,
    )
}

async fn list_all(
    osd: &Arc<Osd>,
    pg: &Pg,
    who: u32,
    deep: bool,
) -> Result<Vec<ObjectDigest>, OsdError> {
    let mut c = osd.peer(who)?;
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let r = c
            .pg_list(PgListRequest {
                pg: pgref(pg.id),
                start_after: after.clone(),
                max: 500,
                deep,
            })
            .await
            .map_err(|s| OsdError::Peer {
                osd: who,
                reason: s.message().to_string(),
            })?
            .into_inner();
        if r.code != ResultCode::Ok as i32 {
            return Err(OsdError::Peer {
                osd: who,
                reason: format!("pg list refused ({})", r.code),
            });
        }
        if let Some(l) = r.objects.last() {
            after = l.name.clone();
        }
        out.extend(r.objects);
        if !r.more {
            return Ok(out);
        }
    }
}

/// What scrub found for one object on one copy.
type Copy<'a> = (u32, Option<&'a Fingerprint>);

/// The state every copy of an object should have, chosen without trusting
/// what cannot be verified (pure, unit tested):
/// * a copy whose data failed its checksum (deep scrub) never counts;
/// * a present copy beats an absent one, unless the PG log says the object
///   was deleted after that version (then absence is right);
/// * among present copies the newest version wins, then the most copies,
///   then the earliest in the acting set.
///
/// `None` means "absent"; `Err` means no copy can be trusted.
fn choose_good<'a>(
    copies: &[Copy<'a>],
    deleted_after: Option<crate::pglog::Ev>,
) -> Result<Option<&'a Fingerprint>, String> {
    let intact: Vec<(usize, Option<&Fingerprint>)> = copies
        .iter()
        .enumerate()
        .filter(|(_, (_, f))| !f.is_some_and(|f| f.4))
        .map(|(i, (_, f))| (i, *f))
        .collect();
    if intact.is_empty() {
        return Err("every copy failed its checksum".into());
    }
    let best_present = intact
        .iter()
        .filter_map(|(i, f)| f.map(|f| (*i, f)))
        .max_by_key(|(i, f)| {
            let votes = intact.iter().filter(|(_, g)| *g == Some(*f)).count();
            (f.1, votes, std::cmp::Reverse(*i))
        });
    match best_present {
        Some((_, f)) if deleted_after.is_none_or(|d| d <= f.1) => Ok(Some(f)),
        Some(_) => Ok(None),
        None => Ok(None),
    }
}

/// Newest delete of each object in the local (primary) log.
async fn deletes_in_log(
    osd: &Arc<Osd>,
    pg: &Pg,
) -> Result<BTreeMap<String, crate::pglog::Ev>, OsdError> {
    let id = pg.id;
    let log = osd.blocking(move |s| crate::pglog::load_log(s, id)).await?;
    let mut out = BTreeMap::new();
    for e in log {
        let v = crate::pglog::ev(&e.version);
        if e.op == meridian_proto::osd::LogOp::Delete as i32 {
            out.insert(e.object, v);
        } else {
            out.remove(&e.object);
        }
    }
    Ok(out)
}

/// Scrubs one PG from its primary.
pub async fn scrub_pg(
    osd: &Arc<Osd>,
    pg: &Arc<Pg>,
    acting: Vec<u32>,
    deep: bool,
    repair: bool,
) -> Result<ScrubReply, OsdError> {
    // No write may land between the listings: hold the PG's submission
    // order and wait for ops in flight to finish.
    let _order = pg.submit.lock().await;
    while pg.core().ops.in_flight() > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    pg.drain_local().await;
    let interval = pg.core().peering.interval().first;
    let mut per_osd: BTreeMap<u32, BTreeMap<String, Fingerprint>> = BTreeMap::new();
    for &o in &acting {
        let list = list_all(osd, pg, o, deep).await?;
        per_osd.insert(
            o,
            list.iter()
                .map(|d| (d.name.clone(), fingerprint(d)))
                .collect(),
        );
    }
    let deletes = deletes_in_log(osd, pg).await?;
    let names: BTreeSet<String> = per_osd.values().flat_map(|m| m.keys().cloned()).collect();
    let mut reply = ScrubReply {
        code: ResultCode::Ok as i32,
        objects: names.len() as u64,
        ..Default::default()
    };
    for name in names {
        let copies: Vec<Copy> = acting
            .iter()
            .map(|o| (*o, per_osd.get(o).and_then(|m| m.get(&name))))
            .collect();
        let first = copies[0].1;
        let consistent = copies
            .iter()
            .all(|(_, f)| *f == first && f.map(|f| !f.4).unwrap_or(true));
        if consistent {
            continue;
        }
        reply.inconsistent += 1;
        let good = match choose_good(&copies, deletes.get(&name).copied()) {
            Ok(g) => g,
            Err(why) => {
                reply
                    .errors
                    .push(format!("{name}: {why}; no verified copy to repair from"));
                continue;
            }
        };
        let mut bad: Vec<u32> = copies
            .iter()
            .filter(|(_, f)| *f != good || f.is_some_and(|f| f.4))
            .map(|(o, _)| *o)
            .collect();
        reply.errors.push(format!(
            "{name}: copies on {bad:?} differ from the authoritative one"
        ));
        if !repair {
            continue;
        }
        // The state to write: absent, or read from a copy that verifies.
        let state = match good {
            None => ObjectState {
                name: name.clone(),
                exists: false,
                ..Default::default()
            },
            Some(g) => {
                let sources: Vec<u32> = copies
                    .iter()
                    .filter(|(_, f)| *f == Some(g))
                    .map(|(o, _)| *o)
                    .collect();
                let mut found = None;
                for src in sources {
                    match pull_verified(osd, pg, src, interval, &name, g, deep).await {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(e) => {
                            reply.errors.push(format!(
                                "{name}: copy on osd.{src} could not be read intact: {e}"
                            ));
                            if !bad.contains(&src) {
                                bad.push(src);
                            }
                        }
                    }
                }
                let Some(s) = found else {
                    reply.errors.push(format!(
                        "{name}: no verified copy to repair from; nothing changed"
                    ));
                    continue;
                };
                s
            }
        };
        for o in bad {
            if o == osd.id() {
                let k = ObjectKey::new(pg.id, name.clone());
                // The order lock is ours already (held for the whole scrub).
                pg.queue(
                    &osd.store,
                    objstate::write_state(Transaction::new(), &k, &state),
                )
                .await?
                .wait()
                .await?;
            } else {
                let mut c = osd.peer(o)?;
                let r = c
                    .push(PushRequest {
                        pg: pgref(pg.id),
                        map_epoch: interval,
                        from_osd: osd.id(),
                        objects: vec![state.clone()],
                        start_backfill: false,
                    })
                    .await
                    .map_err(|s| OsdError::Peer {
                        osd: o,
                        reason: s.message().to_string(),
                    })?
                    .into_inner();
                if r.code != ResultCode::Ok as i32 {
                    return Err(OsdError::Peer {
                        osd: o,
                        reason: format!("repair push refused: {}", r.message),
                    });
                }
            }
        }
        reply.repaired += 1;
    }
    Ok(reply)
}

/// Reads `name` from `src` and checks it is the copy scrub chose (size,
/// version, and with `deep` the digests); any read error is an error.
async fn pull_verified(
    osd: &Arc<Osd>,
    pg: &Pg,
    src: u32,
    interval: u64,
    name: &str,
    want: &Fingerprint,
    deep: bool,
) -> Result<ObjectState, String> {
    let mut c = osd.peer(src).map_err(|e| e.to_string())?;
    let r = c
        .pull(PullRequest {
            pg: pgref(pg.id),
            map_epoch: interval,
            object: name.to_string(),
        })
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    if r.code != ResultCode::Ok as i32 {
        return Err(ResultCode::try_from(r.code)
            .map(|c| c.as_str_name().to_string())
            .unwrap_or_else(|_| format!("code {}", r.code)));
    }
    let s = r.state.ok_or("empty pull reply")?;
    if !s.exists {
        return Err("the copy vanished".into());
    }
    if s.data.len() as u64 != want.0 || crate::pglog::ev(&s.version) != want.1 {
        return Err("the copy changed since it was listed".into());
    }
    if deep {
        let (d, m) = objstate::digests(&s);
        if d != want.2 || m != want.3 {
            return Err("digest mismatch".into());
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(v: u64, corrupt: bool) -> Fingerprint {
        (10, (1, v), Bytes::new(), Bytes::new(), corrupt)
    }

    #[test]
    fn a_missing_primary_copy_is_restored_not_propagated() {
        let present = fp(5, false);
        // Size-2 pool: the primary lost the object, the replica has it.
        let copies: Vec<Copy> = vec![(0, None), (1, Some(&present))];
        assert_eq!(choose_good(&copies, None), Ok(Some(&present)));
    }

    #[test]
    fn a_logged_delete_after_the_version_makes_absence_right() {
        let present = fp(5, false);
        let copies: Vec<Copy> = vec![(0, None), (1, Some(&present))];
        assert_eq!(choose_good(&copies, Some((1, 9))), Ok(None));
        assert_eq!(choose_good(&copies, Some((1, 2))), Ok(Some(&present)));
    }

    #[test]
    fn corrupt_copies_never_vote_and_all_corrupt_means_no_repair() {
        let bad = fp(5, true);
        let good = fp(5, false);
        let copies: Vec<Copy> = vec![(0, Some(&bad)), (1, Some(&good)), (2, Some(&bad))];
        assert_eq!(choose_good(&copies, None), Ok(Some(&good)));
        let all_bad: Vec<Copy> = vec![(0, Some(&bad)), (1, Some(&bad))];
        assert!(choose_good(&all_bad, None).is_err());
    }

    #[test]
    fn the_newest_version_wins_over_a_stale_majority() {
        let old = fp(3, false);
        let new = fp(4, false);
        let copies: Vec<Copy> = vec![(0, Some(&old)), (1, Some(&old)), (2, Some(&new))];
        assert_eq!(choose_good(&copies, None), Ok(Some(&new)));
    }
}
