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
    ObjectDigest, PgListRequest, PullRequest, PushRequest, ResultCode, ScrubReply,
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

/// Scrubs one PG from its primary.
pub async fn scrub_pg(
    osd: &Arc<Osd>,
    pg: &Arc<Pg>,
    acting: Vec<u32>,
    deep: bool,
    repair: bool,
) -> Result<ScrubReply, OsdError> {
    // Hold the PG lock so no write lands between the listings.
    let _core = pg.core.lock().await;
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
    let names: BTreeSet<String> = per_osd.values().flat_map(|m| m.keys().cloned()).collect();
    let mut reply = ScrubReply {
        code: ResultCode::Ok as i32,
        objects: names.len() as u64,
        ..Default::default()
    };
    for name in names {
        let copies: Vec<(u32, Option<&Fingerprint>)> = acting
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
        // The good state is the one most intact copies agree on (ties favour the primary).
        let mut votes: BTreeMap<Option<&Fingerprint>, (usize, usize)> = BTreeMap::new();
        for (i, (_, f)) in copies.iter().enumerate() {
            if f.map(|f| f.4).unwrap_or(false) {
                continue;
            }
            let e = votes.entry(*f).or_insert((0, usize::MAX));
            e.0 += 1;
            e.1 = e.1.min(i);
        }
        let good = votes
            .iter()
            .max_by_key(|(_, (n, first_idx))| (*n, std::cmp::Reverse(*first_idx)))
            .map(|(f, (_, idx))| (*f, copies[*idx].0));
        let bad: Vec<u32> = copies
            .iter()
            .filter(|(_, f)| {
                good.map(|(g, _)| *f != g || f.map(|f| f.4).unwrap_or(false))
                    .unwrap_or(true)
            })
            .map(|(o, _)| *o)
            .collect();
        reply.errors.push(format!(
            "{name}: copies on {bad:?} differ from the majority"
        ));
        if !repair {
            continue;
        }
        let Some((_, source)) = good else {
            reply
                .errors
                .push(format!("{name}: no intact copy to repair from"));
            continue;
        };
        let state = {
            let mut c = osd.peer(source)?;
            let r = c
                .pull(PullRequest {
                    pg: pgref(pg.id),
                    map_epoch: pg.routing().interval,
                    object: name.clone(),
                })
                .await
                .map_err(|s| OsdError::Peer {
                    osd: source,
                    reason: s.message().to_string(),
                })?
                .into_inner();
            r.state.unwrap_or_default()
        };
        for o in bad {
            if o == osd.id() {
                let (k, s) = (ObjectKey::new(pg.id, name.clone()), state.clone());
                osd.blocking(move |st| {
                    st.submit(objstate::write_state(Transaction::new(), &k, &s))
                        .map_err(Into::into)
                })
                .await?;
            } else {
                let mut c = osd.peer(o)?;
                c.push(PushRequest {
                    pg: pgref(pg.id),
                    map_epoch: pg.routing().interval,
                    from_osd: osd.id(),
                    objects: vec![state.clone()],
                })
                .await
                .map_err(|s| OsdError::Peer {
                    osd: o,
                    reason: s.message().to_string(),
                })?;
            }
        }
        reply.repaired += 1;
    }
    Ok(reply)
}
