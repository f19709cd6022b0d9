//! The zone-to-zone gRPC service a gateway serves on its S3 port: realm and
//! period pulls, period pushes from the master, commits forwarded by
//! secondary zones, and bucket metadata writes forwarded to the master.
//! Every request must be signed with a system key of this zone (a zone's
//! `--access-key/--secret`, or a `--system` user's key).

use crate::peer::{self, Signed};
use crate::site::Site;
use meridian_client::{ClientError, Cluster};
use meridian_proto::mon::mon_command::Cmd;
use meridian_proto::multisite::zone_service_server::ZoneService;
use meridian_proto::multisite::*;
use meridian_zone::{CannedAcl, Zone, ZoneError};
use sha2::{Digest as _, Sha256};
use tonic::{Request, Response, Status};

/// The service of one gateway.
#[derive(Clone)]
pub struct ZoneEndpoint {
    zone: Zone,
    site: Site,
    replays: std::sync::Arc<peer::ReplayGuard>,
}

impl ZoneEndpoint {
    /// Serves `zone` as `site` says it is.
    pub fn new(zone: Zone, site: Site) -> Self {
        Self {
            zone,
            site,
            replays: Default::default(),
        }
    }

    fn cluster(&self) -> &Cluster {
        self.zone.cluster()
    }

    /// The secret of a system access key: a zone system key of this cluster,
    /// or a system user of this zone.
    async fn system_secret(&self, access_key: &str) -> Option<String> {
        let map = self.cluster().map();
        if let Some(k) = map
            .map
            .multisite
            .as_ref()
            .into_iter()
            .flat_map(|ms| ms.zones.iter())
            .filter_map(|z| z.system_key.as_ref())
            .find(|k| k.access_key == access_key)
        {
            return Some(k.secret_key.clone());
        }
        match self.zone.user_by_key(access_key).await {
            Ok(u) if u.system && !u.suspended => u
                .keys
                .iter()
                .find(|k| k.access_key == access_key)
                .map(|k| k.secret_key.clone()),
            _ => None,
        }
    }

    async fn authorize<T: Signed>(&self, msg: &T) -> Result<(), Status> {
        metrics::counter!("meridian_zone_service_requests_total", "method" => T::METHOD)
            .increment(1);
        let ak = msg.auth().map(|a| a.access_key.clone()).unwrap_or_default();
        let secret = self.system_secret(&ak).await;
        peer::verify(msg, |k| (k == ak).then_some(secret).flatten())
            .and_then(|_| {
                let auth = msg.auth().ok_or(peer::AuthError::Missing)?;
                self.replays.admit(auth, meridian_common::now_unix_ms())
            })
            .map_err(|e| match e {
                peer::AuthError::Busy => Status::resource_exhausted(e.to_string()),
                e => Status::unauthenticated(e.to_string()),
            })
    }

    fn multisite(&self) -> MultisiteState {
        self.cluster()
            .map()
            .map
            .multisite
            .clone()
            .unwrap_or_default()
    }

    /// The zonegroup a forwarded bucket create is recorded in: the
    /// forwarding zone's, which must be one of the realm's.
    fn bucket_zonegroup(&self, asked: &str) -> Result<String, Status> {
        let own = self.zone.params().zonegroup.clone();
        if asked.is_empty() || asked == own {
            return Ok(own);
        }
        let map = &self.cluster().map().map;
        let known = map.multisite.as_ref().is_some_and(|ms| {
            ms.zonegroups.iter().any(|g| g.name == asked)
                || ms
                    .periods
                    .iter()
                    .any(|p| p.zonegroups.iter().any(|g| g.name == asked))
        });
        if known {
            Ok(asked.to_string())
        } else {
            Err(Status::invalid_argument(format!(
                "InvalidLocationConstraint: zonegroup {asked} is not in the realm"
            )))
        }
    }

    fn require_master(&self) -> Result<(), Status> {
        let role = self.site.role();
        if role.is_master {
            return Ok(());
        }
        Err(Status::failed_precondition(format!(
            "zone {} is not the metadata master; the master is {} at {}",
            role.zone,
            role.master_zone,
            role.master_endpoints.join(", ")
        )))
    }

    async fn mon(&self, cmd: MultisiteCommand) -> Result<String, Status> {
        self.cluster()
            .mon_command(Cmd::Multisite(cmd))
            .await
            .map(|r| r.message)
            .map_err(|e| match e {
                ClientError::Command(m) => Status::failed_precondition(m),
                e => Status::unavailable(e.to_string()),
            })
    }
}

fn find_realm<'a>(ms: &'a MultisiteState, name: &str) -> Result<&'a Realm, Status> {
    let found = if name.is_empty() {
        ms.realms
            .iter()
            .find(|r| r.id == ms.default_realm)
            .or_else(|| (ms.realms.len() == 1).then(|| &ms.realms[0]))
    } else {
        ms.realms.iter().find(|r| r.name == name || r.id == name)
    };
    found.ok_or_else(|| Status::not_found(format!("realm '{name}' is not configured on this zone")))
}

fn current(ms: &MultisiteState, r: &Realm) -> Result<Period, Status> {
    ms.periods
        .iter()
        .find(|p| p.id == r.current_period)
        .cloned()
        .ok_or_else(|| Status::not_found(format!("realm {} has no current period", r.name)))
}

/// "Code: message", so the caller can map it back to the S3 error.
fn zone_status(e: ZoneError) -> Status {
    let code = match &e {
        ZoneError::BucketExists {
            owned_by_you: true, ..
        } => "BucketAlreadyOwnedByYou",
        ZoneError::BucketExists { .. } => "BucketAlreadyExists",
        ZoneError::BucketNotEmpty(_) => "BucketNotEmpty",
        ZoneError::NoSuchBucket(_) => "NoSuchBucket",
        ZoneError::InvalidBucketName { .. } => "InvalidBucketName",
        ZoneError::TooManyBuckets(_) => "TooManyBuckets",
        _ => "ServiceUnavailable",
    };
    let msg = format!("{code}: {e}");
    match code {
        "ServiceUnavailable" => Status::unavailable(msg),
        "NoSuchBucket" => Status::not_found(msg),
        _ => Status::failed_precondition(msg),
    }
}

/// A user operation's refusal, with the error the CLI shows.
fn user_status(e: ZoneError) -> Status {
    match &e {
        ZoneError::NoSuchUser(_) | ZoneError::NoSuchAccessKey(_) => {
            Status::not_found(e.to_string())
        }
        ZoneError::UserExists(_) | ZoneError::KeyInUse(_) | ZoneError::InvalidArgument(_) => {
            Status::failed_precondition(e.to_string())
        }
        _ => Status::unavailable(e.to_string()),
    }
}

/// Pushes a committed period to every other zone of it (best effort: a zone
/// that misses it pulls it on its next poll). Returns one line per zone.
pub async fn push_to_peers(
    peers: &[(String, Vec<String>)],
    key: &SystemKey,
    realm: &Realm,
    period: &Period,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, endpoints) in peers {
        let req = PushPeriodRequest {
            auth: None,
            realm: Some(realm.clone()),
            period: Some(period.clone()),
        };
        let r = peer::on_any(endpoints, |mut c| {
            let req = peer::sign(req.clone(), key);
            async move { c.push_period(req).await }
        })
        .await;
        out.push(match r {
            Ok(r) if r.installed => format!("pushed period to zone {name}"),
            Ok(r) => format!("zone {name}: {}", r.message),
            Err(s) => {
                tracing::warn!(zone = %name, error = %s.message(), "period push failed; the zone will pull it");
                format!("zone {name} unreachable ({}); it will pull the period", s.message())
            }
        });
    }
    out
}

#[tonic::async_trait]
impl ZoneService for ZoneEndpoint {
    type FetchObjectStream = crate::sync_rpc::ObjectStream;

    async fn log_positions(
        &self,
        req: Request<LogPositionsRequest>,
    ) -> Result<Response<LogPositionsReply>, Status> {
        let req = req.into_inner();
        self.authorize(&req).await?;
        crate::sync_rpc::log_positions(&self.zone, req)
            .await
            .map(Response::new)
    }

    async fn list_log(
        &self,
        req: Request<ListLogRequest>,
    ) -> Result<Response<ListLogReply>, Status> {
        let req = req.into_inner();
        self.authorize(&req).await?;
        crate::sync_rpc::list_log(&self.zone, req)
            .await
            .map(Response::new)
    }

    async fn list_bilog(
        &self,
        req: Request<ListBilogRequest>,
    ) -> Result<Response<ListLogReply>, Status> {
        let req = req.into_inner();
        self.authorize(&req).await?;
        crate::sync_rpc::list_bilog(&self.zone, req)
            .await
            .map(Response::new)
    }

    async fn list_shard(
        &self,
        req: Request<ListShardRequest>,
    ) -> Result<Response<ListShardReply>, Status> {
        let req = req.into_inner();
        self.authorize(&req).await?;
        crate::sync_rpc::list_shard(&self.zone, req)
            .await
            .map(Response::new)
    }

    async fn bilog_pending(
        &self,
        req: Request<BilogPendingRequest>,
    ) -> Result<Response<BilogPendingReply>, Status> {
        let req = req.into_inner();
        self.authorize(&req).await?;
        crate::sync_rpc::bilog_pending(&self.zone, req)
            .await
            .map(Response::new)
    }

    async fn list_metadata(
        &self,
        req: Request<ListMetadataRequest>,
    ) -> Result<Response<ListMetadataReply>, Status> {
        let req = req.into_inner();
        self.authorize(&req).await?;
        crate::sync_rpc::list_metadata(&self.zone, req)
            .await
            .map(Response::new)
    }

    async fn get_metadata(
        &self,
        req: Request<GetMetadataRequest>,
    ) -> Result<Response<GetMetadataReply>, Status> {
        let req = req.into_inner();
        self.authorize(&req).await?;
        crate::sync_rpc::get_metadata(&self.zone, req)
            .await
            .map(Response::new)
    }

    async fn fetch_object(
        &self,
        req: Request<FetchObjectRequest>,
    ) -> Result<Response<Self::FetchObjectStream>, Status> {
        let req = req.into_inner();
        self.authorize(&req).await?;
        crate::sync_rpc::fetch_object(&self.zone, req)
            .await
            .map(Response::new)
    }

    async fn pull_realm(
        &self,
        req: Request<PullRealmRequest>,
    ) -> Result<Response<PullRealmReply>, Status> {
        let req = req.into_inner();
        self.authorize(&req).await?;
        let ms = self.multisite();
        let r = find_realm(&ms, &req.realm)?;
        Ok(Response::new(PullRealmReply {
            realm: Some(r.clone()),
            period: Some(current(&ms, r)?),
        }))
    }

    async fn get_period(&self, req: Request<GetPeriodRequest>) -> Result<Response<Period>, Status> {
        let req = req.into_inner();
        self.authorize(&req).await?;
        let ms = self.multisite();
        let r = find_realm(&ms, &req.realm_id)?;
        if req.period_id.is_empty() {
            return Ok(Response::new(current(&ms, r)?));
        }
        ms.periods
            .iter()
            .find(|p| p.id == req.period_id && p.realm_id == r.id)
            .cloned()
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("period {} is not known here", req.period_id)))
    }

    async fn push_period(
        &self,
        req: Request<PushPeriodRequest>,
    ) -> Result<Response<PushPeriodReply>, Status> {
        let req = req.into_inner();
        self.authorize(&req).await?;
        let msg = self
            .mon(MultisiteCommand {
                cmd: Some(multisite_command::Cmd::PeriodInstall(PeriodInstall {
                    realm: req.realm,
                    period: req.period,
                })),
            })
            .await?;
        Ok(Response::new(PushPeriodReply {
            installed: msg.starts_with("installed"),
            message: msg,
        }))
    }

    async fn commit_period(
        &self,
        req: Request<CommitPeriodRequest>,
    ) -> Result<Response<CommitPeriodReply>, Status> {
        let req = req.into_inner();
        self.authorize(&req).await?;
        self.require_master()?;
        let staging = req
            .staging
            .ok_or_else(|| Status::invalid_argument("no staging period"))?;
        // A retry of the same forwarded staging period commits once.
        let token = Sha256::digest(prost::Message::encode_to_vec(&staging))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        let realm_id = staging.realm_id.clone();
        self.mon(MultisiteCommand {
            cmd: Some(multisite_command::Cmd::PeriodCommitRemote(
                PeriodCommitRemote {
                    staging: Some(staging),
                    new_period_id: meridian_zone::random_uuid(),
                    commit_token: token,
                },
            )),
        })
        .await?;
        let ms = self.multisite();
        let r = find_realm(&ms, &realm_id)?.clone();
        let p = current(&ms, &r)?;
        let role = crate::site::SiteRole::of(&self.cluster().map().map, &self.site.role().zone);
        if let Some(key) = role.system_key.clone() {
            let peers = role.peers.clone();
            let (r2, p2) = (r.clone(), p.clone());
            tokio::spawn(async move {
                push_to_peers(&peers, &key, &r2, &p2).await;
            });
        }
        Ok(Response::new(CommitPeriodReply {
            realm: Some(r),
            period: Some(p),
        }))
    }

    async fn forward_bucket(
        &self,
        req: Request<ForwardBucketRequest>,
    ) -> Result<Response<ForwardBucketReply>, Status> {
        let req = req.into_inner();
        self.authorize(&req).await?;
        self.require_master()?;
        if self.site.role().read_only {
            return Err(Status::failed_precondition(
                "AccessDenied: the master zone is read-only",
            ));
        }
        match forward_bucket_request::Op::try_from(req.op) {
            Ok(forward_bucket_request::Op::Create) => {
                let acl = CannedAcl::parse(&req.acl).unwrap_or_default();
                let zonegroup = self.bucket_zonegroup(&req.zonegroup)?;
                let info = self
                    .zone
                    .create_bucket_in(&req.bucket, &req.uid, acl, &zonegroup)
                    .await
                    .map_err(zone_status)?;
                Ok(Response::new(ForwardBucketReply {
                    bucket_info: serde_json::to_vec(&info)
                        .map_err(|e| Status::internal(e.to_string()))?
                        .into(),
                }))
            }
            Ok(forward_bucket_request::Op::Delete) => {
                let (b, _) = self
                    .zone
                    .bucket_fresh(&req.bucket)
                    .await
                    .map_err(zone_status)?;
                if b.owner != req.uid {
                    return Err(Status::permission_denied(format!(
                        "AccessDenied: bucket {} belongs to {}",
                        req.bucket, b.owner
                    )));
                }
                self.zone
                    .delete_bucket(&req.bucket)
                    .await
                    .map_err(zone_status)?;
                Ok(Response::new(ForwardBucketReply::default()))
            }
            Ok(forward_bucket_request::Op::Update) => {
                let change: meridian_zone::bucket::BucketChange =
                    serde_json::from_slice(&req.change).map_err(|e| {
                        Status::invalid_argument(format!("bucket change is not valid: {e}"))
                    })?;
                let (b, _) = self
                    .zone
                    .bucket_fresh(&req.bucket)
                    .await
                    .map_err(zone_status)?;
                if b.owner != req.uid {
                    return Err(Status::permission_denied(format!(
                        "AccessDenied: bucket {} belongs to {}",
                        req.bucket, b.owner
                    )));
                }
                let info = self
                    .zone
                    .change_bucket(&req.bucket, &change)
                    .await
                    .map_err(zone_status)?;
                Ok(Response::new(ForwardBucketReply {
                    bucket_info: serde_json::to_vec(&info)
                        .map_err(|e| Status::internal(e.to_string()))?
                        .into(),
                }))
            }
            Err(_) => Err(Status::invalid_argument("unknown bucket op")),
        }
    }

    async fn forward_user(
        &self,
        req: Request<ForwardUserRequest>,
    ) -> Result<Response<ForwardUserReply>, Status> {
        let req = req.into_inner();
        self.authorize(&req).await?;
        self.require_master()?;
        if self.site.role().read_only {
            return Err(Status::failed_precondition(
                "AccessDenied: the master zone is read-only",
            ));
        }
        let bad =
            |e: serde_json::Error| Status::invalid_argument(format!("user spec is not valid: {e}"));
        let user = match forward_user_request::Op::try_from(req.op) {
            Ok(forward_user_request::Op::Create) => {
                let spec: meridian_zone::user::NewUser =
                    serde_json::from_slice(&req.spec).map_err(bad)?;
                Some(self.zone.create_user(spec).await.map_err(user_status)?)
            }
            Ok(forward_user_request::Op::Modify) => {
                let change: meridian_zone::user::UserChange =
                    serde_json::from_slice(&req.spec).map_err(bad)?;
                Some(
                    self.zone
                        .modify_user(&req.uid, change)
                        .await
                        .map_err(user_status)?,
                )
            }
            Ok(forward_user_request::Op::Remove) => {
                self.zone.remove_user(&req.uid).await.map_err(user_status)?;
                None
            }
            Err(_) => return Err(Status::invalid_argument("unknown user op")),
        };
        Ok(Response::new(ForwardUserReply {
            user: match user {
                Some(u) => serde_json::to_vec(&u)
                    .map_err(|e| Status::internal(e.to_string()))?
                    .into(),
                None => Default::default(),
            },
        }))
    }

    async fn sync_markers(
        &self,
        req: Request<SyncMarkersRequest>,
    ) -> Result<Response<SyncMarkersReply>, Status> {
        let req = req.into_inner();
        self.authorize(&req).await?;
        if req.source_zone_id.is_empty() {
            return Err(Status::invalid_argument(
                "sync markers need the source zone id",
            ));
        }
        meridian_sync::trim::markers_for(
            &self.zone,
            &req.source_zone_id,
            &req.bucket_after,
            req.max_buckets.clamp(1, 1000),
        )
        .await
        .map(Response::new)
        .map_err(|e| Status::unavailable(e.to_string()))
    }

    async fn gateway_state(
        &self,
        req: Request<GatewayStateRequest>,
    ) -> Result<Response<GatewayStateReply>, Status> {
        let req = req.into_inner();
        self.authorize(&req).await?;
        let role = self.site.role();
        // Read after the role: a write counted after this read sees the role.
        let writes_in_flight = self.site.writes_in_flight();
        let st = self
            .cluster()
            .status()
            .await
            .map_err(|e| Status::unavailable(format!("cluster status: {e}")))?;
        Ok(Response::new(GatewayStateReply {
            zone: role.zone.clone(),
            zone_id: role.zone_id.clone(),
            period_id: role
                .period
                .as_ref()
                .map(|p| p.id.clone())
                .unwrap_or_default(),
            period_epoch: role.period.as_ref().map(|p| p.epoch).unwrap_or(0),
            master: role.is_master,
            read_only: role.read_only,
            writes_in_flight,
            zone_gateways: st
                .gateways
                .into_iter()
                .filter(|g| g.zone == role.zone)
                .map(|g| {
                    if g.url.is_empty() {
                        format!("http://{}", g.addr)
                    } else {
                        g.url
                    }
                })
                .collect(),
        }))
    }

    async fn set_zone_read_only(
        &self,
        req: Request<SetZoneReadOnlyRequest>,
    ) -> Result<Response<SetZoneReadOnlyReply>, Status> {
        let req = req.into_inner();
        self.authorize(&req).await?;
        if !self.multisite().zones.iter().any(|z| z.name == req.zone) {
            return Err(Status::not_found(format!(
                "zone {} is not a zone of this cluster (this gateway serves {})",
                req.zone,
                self.site.role().zone
            )));
        }
        self.mon(MultisiteCommand {
            cmd: Some(multisite_command::Cmd::ZoneModify(ZoneModify {
                name: req.zone.clone(),
                read_only: Some(req.read_only),
                ..Default::default()
            })),
        })
        .await?;
        tracing::warn!(zone = %req.zone, read_only = req.read_only, "zone read-only flag set by a peer zone");
        Ok(Response::new(SetZoneReadOnlyReply {}))
    }
}
