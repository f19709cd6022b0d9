//! `meridian zone failover --to=ZONE`: the planned failover runbook (wait
//! for sync, read-only, promote, commit, lift read-only) as one command that
//! checks each step before taking the next, so nothing acknowledged by the
//! old master is left behind (recovery point zero).
//!
//! Run it on a cluster that holds ZONE (the zone to promote). It reaches the
//! other zones over the zone-to-zone service, signed with ZONE's system key:
//! the old master's cluster sets and lifts its read-only flag, and every
//! gateway reports its read-only flag, the period it serves and the writes
//! it is handling. Until the promotion is committed, any failure puts the
//! old master back as it was and changes nothing else.

use super::Ctx;
use super::multisite::{commit_staging, run as mon_run, state};
use super::rgw::{ZoneArg, open_zone};
use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use meridian_client::Cluster;
use meridian_gateway::peer;
use meridian_proto::multisite::multisite_command::Cmd as M;
use meridian_proto::multisite::*;
use meridian_sync::SyncSettings;
use meridian_sync::report::sync_report;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Arguments of `zone failover`.
#[derive(clap::Args, Debug)]
pub struct FailoverArgs {
    /// The zone to promote (a zone of this cluster).
    #[arg(long = "to")]
    pub to: String,
    /// Give up (and put the old master back) if a wait takes longer (seconds).
    #[arg(long = "timeout", default_value_t = 300)]
    pub timeout_s: u64,
    /// Go on although some buckets have sync disabled (their writes on the
    /// old master stay there, as they already do).
    #[arg(long = "leave-unsynced-buckets")]
    pub leave_unsynced_buckets: bool,
}

/// How long one zone call may take before the zone counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A zone of the period, as the failover addresses it.
#[derive(Debug, Clone)]
struct PeerZone {
    id: String,
    name: String,
    endpoints: Vec<String>,
}

/// The steps taken so far, printed as they finish.
struct Steps {
    started: Instant,
    done: Vec<Value>,
    json: bool,
}

impl Steps {
    fn begin(&self, n: usize, what: &str) -> Instant {
        if !self.json {
            eprintln!("[{n}/7] {what} ...");
        }
        Instant::now()
    }

    fn end(&mut self, n: usize, what: &str, t: Instant, detail: &str) {
        let s = t.elapsed().as_secs_f64();
        if !self.json {
            let sep = if detail.is_empty() { "" } else { ": " };
            eprintln!("[{n}/7] {what}: done in {s:.2} s{sep}{detail}");
        }
        self.done
            .push(json!({"step": n, "what": what, "seconds": s, "detail": detail}));
    }

    fn progress(&self, line: &str) {
        if !self.json {
            eprintln!("      {line}");
        }
    }
}

fn signed<T: peer::Signed>(req: T, key: &SystemKey) -> T {
    peer::sign(req, key)
}

/// The state of whichever gateway answers at `endpoints`.
async fn gateway_state(
    endpoints: &[String],
    key: &SystemKey,
) -> Result<GatewayStateReply, tonic::Status> {
    peer::on_any_with(endpoints, Some(CALL_TIMEOUT), |mut c| {
        let req = signed(GatewayStateRequest { auth: None }, key);
        async move { c.gateway_state(req).await }
    })
    .await
}

async fn set_read_only(z: &PeerZone, on: bool, key: &SystemKey) -> anyhow::Result<()> {
    peer::on_any_with(&z.endpoints, Some(Duration::from_secs(30)), |mut c| {
        let req = signed(
            SetZoneReadOnlyRequest {
                auth: None,
                zone: z.name.clone(),
                read_only: on,
            },
            key,
        );
        async move { c.set_zone_read_only(req).await }
    })
    .await
    .map(|_| ())
    .map_err(|s| {
        anyhow::anyhow!(
            "zone {} ({}) did not {} its read-only flag: {}",
            z.name,
            z.endpoints.join(", "),
            if on { "set" } else { "lift" },
            s.message()
        )
    })
}

/// The URL of a gateway that beacons `url`, with the host `endpoint` is
/// reached at when the gateway listens on a wildcard address.
fn gateway_url(endpoint: &str, url: &str) -> String {
    let host_of = |u: &str| -> String {
        let rest = u.split_once("://").map(|(_, r)| r).unwrap_or(u);
        let hostport = rest.split('/').next().unwrap_or("");
        hostport
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(hostport)
            .to_string()
    };
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, ""));
    let host = if matches!(host, "0.0.0.0" | "[::]" | "::" | "") {
        host_of(endpoint)
    } else {
        host.to_string()
    };
    format!("{scheme}://{host}:{port}")
}

/// Every gateway of zone `z` (as its monitors know them), with its state;
/// a gateway that does not answer is listed with its error.
async fn zone_gateways(
    z: &PeerZone,
    key: &SystemKey,
) -> anyhow::Result<Vec<(String, Result<GatewayStateReply, String>)>> {
    let first = gateway_state(&z.endpoints, key).await.map_err(|s| {
        anyhow::anyhow!(
            "zone {} is unreachable at {}: {}",
            z.name,
            z.endpoints.join(", "),
            s.message()
        )
    })?;
    let endpoint = z.endpoints.first().cloned().unwrap_or_default();
    let urls: Vec<String> = first
        .zone_gateways
        .iter()
        .map(|a| gateway_url(&endpoint, a))
        .collect();
    let mut out = Vec::new();
    let mut each = futures::stream::iter(urls.into_iter().map(|u| async move {
        let r = gateway_state(std::slice::from_ref(&u), key)
            .await
            .map_err(|s| s.message().to_string());
        (u, r)
    }))
    .buffer_unordered(16);
    while let Some(r) = each.next().await {
        out.push(r);
    }
    if out.is_empty() {
        // Monitors that have not heard a beacon yet: the endpoint's answer.
        out.push((endpoint, Ok(first)));
    }
    Ok(out)
}

/// Waits until `ok` holds for every gateway of `z`; `what` describes the
/// wait for progress lines. Gateways that stopped beaconing drop out of the
/// list after the monitors' grace.
async fn wait_gateways(
    steps: &Steps,
    z: &PeerZone,
    key: &SystemKey,
    deadline: Instant,
    what: &str,
    ok: impl Fn(&GatewayStateReply) -> bool,
) -> anyhow::Result<usize> {
    let mut last_said = Instant::now();
    loop {
        let gws = zone_gateways(z, key).await;
        let pending: Vec<String> = match &gws {
            Ok(g) => g
                .iter()
                .filter_map(|(u, r)| match r {
                    Ok(s) if ok(s) => None,
                    Ok(s) => Some(format!(
                        "{u} (period epoch {}, read-only {}, {} writes in flight)",
                        s.period_epoch, s.read_only, s.writes_in_flight
                    )),
                    Err(e) => Some(format!("{u} (unreachable: {e})")),
                })
                .collect(),
            Err(e) => vec![e.to_string()],
        };
        if pending.is_empty() {
            return Ok(gws.map(|g| g.len()).unwrap_or(0));
        }
        if Instant::now() > deadline {
            bail!(
                "zone {}: gateways not yet {what}: {}",
                z.name,
                pending.join("; ")
            );
        }
        if last_said.elapsed() > Duration::from_secs(5) {
            steps.progress(&format!("waiting for: {}", pending.join("; ")));
            last_said = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the checks found: the zones involved and the period they serve.
struct Plan {
    realm: Realm,
    period: Period,
    zonegroup: String,
    target: PeerZone,
    master: PeerZone,
    metadata_master: bool,
    zones: Vec<PeerZone>,
    key: SystemKey,
    master_was_read_only: bool,
}

fn plan(ms: &MultisiteState, to: &str) -> anyhow::Result<Plan> {
    let local = ms.zones.iter().find(|z| z.name == to).with_context(|| {
        format!(
            "zone {to} is not a zone of this cluster: run `zone failover` on a cluster of the zone to promote"
        )
    })?;
    let key = local.system_key.clone().with_context(|| {
        format!("zone {to} has no system key to reach the other zones with (zone modify --access-key --secret)")
    })?;
    let realm = ms
        .realms
        .iter()
        .find(|r| r.id == local.realm_id)
        .with_context(|| format!("zone {to} is in no realm: there is nothing to fail over"))?
        .clone();
    let period = meridian_mon::multisite::current_period(ms, &realm)
        .with_context(|| format!("realm {} has no committed period", realm.name))?
        .clone();
    let g = period
        .zonegroups
        .iter()
        .find(|g| g.zones.iter().any(|z| z.id == local.id))
        .cloned()
        .with_context(|| {
            format!(
                "zone {to} is not in the current period of realm {}: add it and commit first",
                realm.name
            )
        })?;
    let peer = |z: &Zone| PeerZone {
        id: z.id.clone(),
        name: z.name.clone(),
        endpoints: z.endpoints.clone(),
    };
    let master = g
        .zones
        .iter()
        .find(|z| z.id == g.master_zone)
        .with_context(|| format!("zonegroup {} has no master zone", g.name))?;
    if master.id == local.id {
        bail!(
            "zone {to} is already the master zone of zonegroup {}",
            g.name
        );
    }
    let zones: Vec<PeerZone> = period
        .zonegroups
        .iter()
        .flat_map(|g| g.zones.iter())
        .map(peer)
        .collect();
    if let Some(z) = zones.iter().find(|z| z.endpoints.is_empty()) {
        bail!(
            "zone {} has no endpoints, so its gateways cannot be checked (zone modify --endpoints)",
            z.name
        );
    }
    Ok(Plan {
        metadata_master: period.master_zone == master.id,
        target: peer(local),
        master: peer(master),
        zonegroup: g.name.clone(),
        zones,
        key,
        realm,
        period,
        master_was_read_only: master.read_only,
    })
}

/// Buckets whose sync from the master to the target is disabled, or that
/// a sync policy keeps from it (their writes would stay behind).
async fn unsynced_buckets(zone: &meridian_zone::Zone, p: &Plan) -> anyhow::Result<Vec<String>> {
    use meridian_zone::sync_policy::{ZoneRef, bucket_verdict};
    let zg = p
        .period
        .zonegroups
        .iter()
        .find(|g| g.zones.iter().any(|z| z.id == p.target.id))
        .and_then(|g| g.sync_policy.clone());
    let (from, to) = (
        ZoneRef {
            name: &p.master.name,
            id: &p.master.id,
        },
        ZoneRef {
            name: &p.target.name,
            id: &p.target.id,
        },
    );
    let names = zone.list_buckets(None).await?;
    let mut out = Vec::new();
    let mut each = futures::stream::iter(names.into_iter().map(|b| async move {
        let r = zone.bucket_fresh(&b.name).await;
        (b.name, r)
    }))
    .buffer_unordered(32);
    while let Some((name, r)) = each.next().await {
        match r {
            Ok((info, _)) if !bucket_verdict(zg.as_ref(), &info, from, to).syncs() => {
                out.push(name)
            }
            Ok(_) | Err(meridian_zone::ZoneError::NoSuchBucket(_)) => {}
            Err(e) => return Err(e).with_context(|| format!("read bucket {name}")),
        }
    }
    out.sort();
    Ok(out)
}

/// Whether ZONE has applied everything the old master committed, by the
/// test `sync status` uses; Err(reason) when not (yet).
async fn caught_up(
    zone: &meridian_zone::Zone,
    settings: &SyncSettings,
    p: &Plan,
) -> anyhow::Result<Result<(), String>> {
    let r = sync_report(zone, settings).await?;
    if p.metadata_master {
        match &r.metadata {
            None => bail!(
                "zone {} does not sync metadata from {} (is it in the realm's period?)",
                p.target.name,
                p.master.name
            ),
            Some(m) if !m.caught_up => {
                return Ok(Err(format!(
                    "metadata: {}",
                    m.error.clone().unwrap_or_else(|| format!(
                        "{} shards behind, {} errors",
                        m.behind_shards.len(),
                        m.errors
                    ))
                )));
            }
            Some(_) => {}
        }
    }
    let Some(d) = r
        .data
        .iter()
        .find(|d| d.source_id == p.master.id || d.source_name == p.master.name)
    else {
        bail!(
            "zone {} does not sync data from {}: its writes would be left behind",
            p.target.name,
            p.master.name
        );
    };
    if d.caught_up {
        return Ok(Ok(()));
    }
    Ok(Err(format!(
        "data: {}",
        d.error.clone().unwrap_or_else(|| format!(
            "phase {}, {} log shards behind, {} bucket shards recovering, {} errors",
            d.phase,
            d.behind_shards.len(),
            d.recovering_shards,
            d.errors
        ))
    )))
}

/// Promotes the target in this cluster's configuration and commits the period.
async fn promote(c: &Cluster, p: &Plan) -> anyhow::Result<Period> {
    mon_run(
        c,
        M::ZoneModify(ZoneModify {
            name: p.target.name.clone(),
            master: Some(true),
            default: true,
            ..Default::default()
        }),
    )
    .await?;
    mon_run(
        c,
        M::ZoneModify(ZoneModify {
            name: p.master.name.clone(),
            zonegroup: p.zonegroup.clone(),
            master: Some(false),
            ..Default::default()
        }),
    )
    .await?;
    mon_run(
        c,
        M::ZonegroupModify(ZonegroupModify {
            name: p.zonegroup.clone(),
            master_zone: p.target.name.clone(),
            ..Default::default()
        }),
    )
    .await?;
    mon_run(
        c,
        M::PeriodUpdate(PeriodUpdate {
            realm: p.realm.id.clone(),
        }),
    )
    .await?;
    commit_staging(c, &p.realm.id).await
}

/// Puts the old master back in this cluster's configuration (a failed commit).
async fn unpromote(c: &Cluster, p: &Plan) {
    let undo = [
        M::ZonegroupModify(ZonegroupModify {
            name: p.zonegroup.clone(),
            master_zone: p.master.name.clone(),
            ..Default::default()
        }),
        M::ZoneModify(ZoneModify {
            name: p.master.name.clone(),
            zonegroup: p.zonegroup.clone(),
            master: Some(true),
            ..Default::default()
        }),
        M::ZoneModify(ZoneModify {
            name: p.target.name.clone(),
            master: Some(false),
            ..Default::default()
        }),
    ];
    for cmd in undo {
        if let Err(e) = mon_run(c, cmd).await {
            eprintln!("could not undo the promotion in this cluster's configuration: {e:#}");
        }
    }
}

/// `meridian zone failover --to=ZONE`.
pub async fn run(ctx: &Ctx, args: FailoverArgs) -> anyhow::Result<()> {
    let cfg = ctx.config()?;
    let settings = SyncSettings::from_global(&cfg.global);
    let zone = open_zone(
        ctx,
        &ZoneArg {
            zone: Some(args.to.clone()),
        },
    )
    .await?;
    let c = zone.cluster().clone();
    let timeout = Duration::from_secs(args.timeout_s.max(1));
    let mut steps = Steps {
        started: Instant::now(),
        done: Vec::new(),
        json: ctx.format == super::Format::Json,
    };

    // 1. Every zone answers, on the current period; the target can catch up.
    let what = "check every zone and gateway";
    let t = steps.begin(1, what);
    let p = plan(&state(&c).await, &args.to)?;
    let mut gateways = 0;
    for z in &p.zones {
        let gws = zone_gateways(z, &p.key)
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}; nothing was changed"))?;
        for (u, r) in gws {
            let s = r.map_err(|e| {
                anyhow::anyhow!(
                    "gateway {u} of zone {} is unreachable: {e}; nothing was changed",
                    z.name
                )
            })?;
            if s.period_id != p.period.id || s.period_epoch != p.period.epoch {
                bail!(
                    "gateway {u} of zone {} serves period {} epoch {}, not the current {} epoch {}: wait until every zone has the period (period pull), then retry; nothing was changed",
                    z.name,
                    s.period_id,
                    s.period_epoch,
                    p.period.id,
                    p.period.epoch
                );
            }
            gateways += 1;
        }
    }
    if !args.leave_unsynced_buckets {
        let unsynced = unsynced_buckets(&zone, &p).await?;
        if !unsynced.is_empty() {
            bail!(
                "buckets {} do not sync from {} (bucket sync disable, or a sync policy: see `sync info --bucket`): what it holds of them would stay behind. Enable their sync or pass --leave-unsynced-buckets; nothing was changed",
                unsynced.join(", "),
                p.master.name
            );
        }
    }
    // Fails now (not after the master went read-only) if the target does
    // not sync from the master at all (whether it is caught up yet does not
    // matter here).
    let _lag = caught_up(&zone, &settings, &p).await?;
    steps.end(
        1,
        what,
        t,
        &format!(
            "{} zones, {gateways} gateways on period {} epoch {}; master {} → {}",
            p.zones.len(),
            p.period.id,
            p.period.epoch,
            p.master.name,
            p.target.name
        ),
    );

    // 2-4: read-only, drain, catch up; undone on any failure.
    let read_only_at = Instant::now();
    let ready = async {
        let what = format!("make {} read-only", p.master.name);
        let t = steps.begin(2, &what);
        set_read_only(&p.master, true, &p.key).await?;
        steps.end(2, &what, t, "");

        let what = format!(
            "wait until every gateway of {} refuses writes",
            p.master.name
        );
        let t = steps.begin(3, &what);
        let n = wait_gateways(
            &steps,
            &p.master,
            &p.key,
            Instant::now() + timeout,
            "refusing writes with none in flight",
            |s| s.read_only && s.writes_in_flight == 0,
        )
        .await?;
        steps.end(3, &what, t, &format!("{n} gateways, no write in flight"));

        let what = format!(
            "wait until {} has every change of {}",
            p.target.name, p.master.name
        );
        let t = steps.begin(4, &what);
        let deadline = Instant::now() + timeout;
        let mut last_said = Instant::now();
        loop {
            match caught_up(&zone, &settings, &p).await? {
                Ok(()) => break,
                Err(why) if Instant::now() > deadline => {
                    bail!(
                        "{} did not catch up within {} s: {why}",
                        p.target.name,
                        timeout.as_secs()
                    )
                }
                Err(why) => {
                    if last_said.elapsed() > Duration::from_secs(5) {
                        steps.progress(&why);
                        last_said = Instant::now();
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        steps.end(4, &what, t, "sync status: caught up");
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = ready {
        if !p.master_was_read_only
            && let Err(undo) = set_read_only(&p.master, false, &p.key).await
        {
            bail!(
                "{e:#}; and putting {} back failed: {undo:#} — lift it by hand: zone modify --rgw-zone={} --read-only=false on its cluster",
                p.master.name,
                p.master.name
            );
        }
        bail!(
            "{e:#}; {} takes writes again and nothing else was changed",
            p.master.name
        );
    }

    // 5. Promote and commit.
    let what = format!("promote {} and commit the period", p.target.name);
    let t = steps.begin(5, &what);
    let new = match promote(&c, &p).await {
        Ok(new) => new,
        Err(e) => {
            unpromote(&c, &p).await;
            if !p.master_was_read_only {
                let _ = set_read_only(&p.master, false, &p.key).await;
            }
            bail!(
                "the promotion was not committed: {e:#}; {} stays the master and takes writes again",
                p.master.name
            );
        }
    };
    steps.end(
        5,
        &what,
        t,
        &format!("period {} epoch {}", new.id, new.epoch),
    );

    // 6. The old master takes writes again, as a secondary.
    let what = format!("lift read-only on {}", p.master.name);
    let t = steps.begin(6, &what);
    if p.master_was_read_only {
        steps.end(
            6,
            &what,
            t,
            "left read-only: it was read-only before the failover",
        );
    } else {
        set_read_only(&p.master, false, &p.key)
            .await
            .context("the failover is committed, but the old master is still read-only")?;
        steps.end(6, &what, t, "");
    }

    // 7. Every gateway serves the new period.
    let what = "wait until every gateway serves the new period";
    let t = steps.begin(7, what);
    let deadline = Instant::now() + timeout;
    let mut total = 0;
    let mut writable_at = None;
    // The old master first: its wait ends the write-unavailability window.
    let mut zones = p.zones.clone();
    zones.sort_by_key(|z| z.id != p.master.id);
    for z in &zones {
        let must_take_writes = z.id == p.master.id && !p.master_was_read_only;
        total += wait_gateways(&steps, z, &p.key, deadline, "on the new period", |s| {
            s.period_id == new.id
                && s.period_epoch >= new.epoch
                && !(must_take_writes && s.read_only)
        })
        .await
        .context("the failover is committed, but not every gateway follows it yet")?;
        if z.id == p.master.id {
            writable_at = Some(read_only_at.elapsed());
        }
    }
    steps.end(7, what, t, &format!("{total} gateways"));

    let window = writable_at.unwrap_or_default().as_secs_f64();
    let total_s = steps.started.elapsed().as_secs_f64();
    ctx.print(
        &json!({
            "new_master": p.target.name, "old_master": p.master.name,
            "period": {"id": new.id, "epoch": new.epoch},
            "write_unavailable_seconds": window, "seconds": total_s,
            "steps": steps.done,
        }),
        || {
            format!(
                "zone {} is the master of zonegroup {} (period {} epoch {}); {} refused writes for {window:.2} s; failover took {total_s:.2} s",
                p.target.name, p.zonegroup, new.id, new.epoch, p.master.name
            )
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::gateway_url;

    #[test]
    fn gateway_urls_replace_wildcard_hosts_with_the_endpoint_host() {
        assert_eq!(
            gateway_url("http://zone-a.example:80", "https://10.0.0.5:7480"),
            "https://10.0.0.5:7480"
        );
        assert_eq!(
            gateway_url("https://10.1.1.1:8443", "http://0.0.0.0:7481"),
            "http://10.1.1.1:7481"
        );
        assert_eq!(
            gateway_url("http://[::1]:8000", "https://[::]:7481"),
            "https://[::1]:7481"
        );
        assert_eq!(
            gateway_url("10.1.1.1:8000", "127.0.0.1:9"),
            "http://127.0.0.1:9"
        );
    }
}
