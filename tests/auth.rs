//! Entities, keys and capabilities: `client.admin` made at bootstrap with a
//! private keyring, `auth get-or-create|get|ls|caps|rm|print-key` replicated
//! through the monitors (through a kill -9 of the leader), keys never in the
//! cluster map, bad input refused with the reason.

mod common;

use common::TestCluster;
use meridian_auth::ticket;
use meridian_auth::{EntityName, Keyring};
use meridian_client::Credential;
use meridian_common::Config;
use meridian_proto::mon::{AuthenticateRequest, GetMapRequest, StatusRequest, SubscribeRequest};
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

fn ok(tc: &TestCluster, args: &[&str]) -> String {
    let out = tc.cli(args);
    assert!(
        out.status.success(),
        "meridian {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(tc: &TestCluster, args: &[&str], why: &str) {
    let out = tc.cli(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "meridian {args:?} was accepted");
    assert!(err.contains(why), "meridian {args:?}: {err}");
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// Asks the monitors for a ticket as `entity` with `key`; the claims of
/// the ticket it gets (checked to open with the key), or the refusal.
async fn ticket(
    tc: &TestCluster,
    entity: &str,
    key: &str,
) -> Result<ticket::Claims, tonic::Status> {
    let raw = ticket::key_bytes(entity, key).expect("a key");
    let mut last = None;
    for addr in tc.config().monitor_addrs() {
        let nonce = ticket::fresh_nonce();
        let now = meridian_common::now_unix_ms();
        let req = AuthenticateRequest {
            entity: entity.into(),
            unix_ms: now,
            nonce: nonce.to_vec().into(),
            proof: ticket::proof(&raw, entity, now, &nonce).to_vec().into(),
        };
        let mut mon = meridian_client::mon_client(&addr, &Credential::Anonymous).unwrap();
        match mon.authenticate(req).await {
            Ok(r) => {
                let r = r.into_inner();
                let issued = ticket::Issued {
                    ticket: r.ticket.to_vec(),
                    sealed_session: r.sealed_session[..].try_into().expect("32 bytes"),
                };
                ticket::open_session(&raw, &issued).expect("opens");
                let claims = ticket::claims_of(&issued.ticket).expect("claims");
                assert_eq!(claims.expires_ms, r.expires_ms);
                return Ok(claims);
            }
            Err(s) if s.code() == tonic::Code::Unavailable => last = Some(s),
            Err(s) => return Err(s),
        }
    }
    Err(last.expect("some monitor"))
}

fn leader(tc: &TestCluster) -> u64 {
    for _ in 0..100 {
        let st = tc.cli_json(&["status", "--format", "json"]);
        if let Some(l) = st["monmap"]["leader"].as_u64().filter(|l| *l > 0) {
            return l;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no monitor leads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_and_keys_are_kept_by_the_monitors_and_never_in_the_map() {
    let tc = TestCluster::start_with(3, 1, "256M", &["--gateways", "0"]);

    // Bootstrap: client.admin with every capability, in a private keyring.
    let path = tc.dir.join("client.admin.keyring");
    assert!(path.exists(), "dev up waits for the admin keyring");
    assert_eq!(mode(&path), 0o600);
    let ring = Keyring::parse(&std::fs::read_to_string(&path).unwrap()).expect("keyring");
    let admin = ring
        .get(&EntityName::admin())
        .expect("client.admin")
        .clone();
    assert_eq!(admin.caps["mon"], "allow *");
    assert_eq!(admin.caps["osd"], "allow *");
    assert_eq!(
        ok(&tc, &["auth", "print-key", "client.admin"]).trim(),
        admin.key
    );

    // get-or-create makes a key once, then answers with the same one.
    let gw = [
        "client.gateway.0",
        "mon",
        "allow rw",
        "osd",
        "allow  rwx pool=data",
    ];
    let first = tc.cli_json(&[&["auth", "get-or-create"][..], &gw, &["--format", "json"]].concat());
    let key = first[0]["key"].as_str().expect("key").to_string();
    assert_eq!(first[0]["entity"], "client.gateway.0");
    assert_eq!(
        first[0]["caps"]["osd"], "allow rwx pool=data",
        "canonical caps"
    );
    let text = ok(&tc, &[&["auth", "get-or-create"][..], &gw].concat());
    assert!(text.starts_with("[client.gateway.0]\n\tkey = "), "{text}");
    assert!(text.contains(&key));
    refused(
        &tc,
        &[
            "auth",
            "get-or-create",
            "client.gateway.0",
            "mon",
            "allow r",
        ],
        "caps do not match",
    );
    let file = tc.dir.join("gw.keyring");
    ok(
        &tc,
        &[
            "auth",
            "get",
            "client.gateway.0",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(mode(&file), 0o600);
    let got = Keyring::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(got.entries[0].key, key);

    // The map (fetched, subscribed to) and the status carry no key.
    let mut mon =
        meridian_client::mon_client(&tc.config().monitor_addrs()[0], &tc.admin_cred()).unwrap();
    let map = mon
        .get_map(GetMapRequest {})
        .await
        .expect("get_map")
        .into_inner();
    let mut sub = mon
        .subscribe(SubscribeRequest { have_epoch: 0 })
        .await
        .expect("subscribe")
        .into_inner();
    let pushed = sub.message().await.expect("a map").expect("a map");
    let status = mon
        .status(StatusRequest {})
        .await
        .expect("status")
        .into_inner();
    let cli_status = ok(&tc, &["status", "--format", "json"]);
    for (what, text) in [
        ("get_map", format!("{map:?}")),
        ("subscribe", format!("{pushed:?}")),
        ("status", format!("{status:?}")),
        ("meridian status", cli_status),
    ] {
        assert!(text.contains("fsid"), "{what}: {text}");
        for k in [&key, &admin.key] {
            assert!(!text.contains(k.as_str()), "{what} shows a key");
        }
    }

    // A caller that proves its key gets a ticket with its caps; a wrong key
    // or an unknown entity gets UNAUTHENTICATED, saying neither which.
    let mut admin_ticket = None;
    for _ in 0..50 {
        match ticket(&tc, "client.admin", &admin.key).await {
            // The leader makes the first service secret right after bootstrap.
            Err(s) if s.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => {
                admin_ticket = Some(other.expect("a ticket for client.admin"));
                break;
            }
        }
    }
    let claims = admin_ticket.expect("a service secret within 5 s");
    assert_eq!(claims.entity, "client.admin");
    assert_eq!(claims.caps["mon"], "allow *");
    let gw_claims = ticket(&tc, "client.gateway.0", &key)
        .await
        .expect("gw ticket");
    assert_eq!(gw_claims.caps["osd"], "allow rwx pool=data");
    for (entity, k) in [("client.admin", &key), ("client.nobody", &key)] {
        let e = ticket(&tc, entity, k).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{entity}: {e:?}");
        assert!(e.message().contains("unknown entity or wrong key"), "{e:?}");
    }

    // Bad input, each refused with its reason and nothing changed.
    for (args, why) in [
        (&["auth", "get-or-create", "gateway"][..], "bad entity name"),
        (
            &["auth", "get-or-create", "client.x", "mon"],
            "come in pairs",
        ),
        (
            &["auth", "get-or-create", "client.x", "mon", "allow q"],
            "bad capability",
        ),
        (
            &["auth", "get-or-create", "client.x", "mgr", "allow *"],
            "unknown service",
        ),
        (&["auth", "add", "client.gateway.0"], "exists"),
        (
            &["auth", "get", "client.nobody"],
            "failed to find client.nobody",
        ),
        (
            &["auth", "caps", "client.nobody", "mon", "allow r"],
            "does not exist",
        ),
        (&["auth", "rm", "client.admin"], "refusing"),
        (
            &["auth", "caps", "client.admin", "mon", "allow r"],
            "refusing",
        ),
    ] {
        refused(&tc, args, why);
    }
    let names = |tc: &TestCluster| -> Vec<String> {
        tc.cli_json(&["auth", "ls", "--format", "json"])["auth_dump"]
            .as_array()
            .expect("auth_dump")
            .iter()
            .map(|e| e["entity"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&tc), ["client.admin", "client.gateway.0", "osd.0"]);

    // Replicated: the leader dies, the others still have every entity, and
    // changes go on.
    let l = leader(&tc);
    tc.kill9(&format!("mon.{l}"));
    assert_eq!(
        ok(&tc, &["auth", "print-key", "client.gateway.0"]).trim(),
        key
    );
    let out = ok(&tc, &["auth", "caps", "client.gateway.0", "mon", "allow r"]);
    assert_eq!(out.trim(), "updated caps for client.gateway.0");
    ok(&tc, &["auth", "add", "client.sync.0", "mon", "allow r"]);
    let sync_key = ok(&tc, &["auth", "print-key", "client.sync.0"])
        .trim()
        .to_string();
    ticket(&tc, "client.sync.0", &sync_key)
        .await
        .expect("a ticket while mon.{l} is down");
    tc.up_again();
    // The restarted monitor caught up: ask it alone.
    let cfg = tc.config();
    let addr = cfg.mon[&l.to_string()].addr.clone();
    let only = tc.dir.join("only-restarted.toml");
    let mut solo = cfg.clone();
    solo.global.mon_host = vec![addr];
    std::fs::write(&only, solo.to_toml()).unwrap();
    let mut caught_up = false;
    for _ in 0..50 {
        let out = std::process::Command::new(common::bin())
            .args([
                "-c",
                only.to_str().unwrap(),
                "auth",
                "ls",
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let dump = v["auth_dump"].as_array().cloned().unwrap_or_default();
        let gw = dump.iter().find(|e| e["entity"] == "client.gateway.0");
        if dump.len() == 4
            && gw.is_some_and(|e| e["caps"]["mon"] == "allow r" && e["key"] == key.as_str())
        {
            caught_up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(caught_up, "mon.{l} did not catch up on the entities");
    let mut cleared = ok(&tc, &["auth", "rm", "client.sync.0"]);
    assert_eq!(cleared.trim(), "updated");
    cleared = ok(&tc, &["auth", "get", "client.gateway.0"]);
    assert!(cleared.contains("caps mon = \"allow r\""), "{cleared}");
    // New tickets carry the new caps; a removed entity gets none.
    let after = ticket(&tc, "client.gateway.0", &key)
        .await
        .expect("gw ticket");
    assert_eq!(after.caps.get("osd"), None);
    assert_eq!(after.caps["mon"], "allow r");
    assert_eq!(
        ticket(&tc, "client.sync.0", &sync_key)
            .await
            .unwrap_err()
            .code(),
        tonic::Code::Unauthenticated
    );
    assert_eq!(names(&tc), ["client.admin", "client.gateway.0", "osd.0"]);
    // The admin keyring written at bootstrap was never replaced.
    let again = Keyring::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(again.get(&EntityName::admin()).unwrap().key, admin.key);
}

/// Calls `path` on `addr` as `cred` with an empty message: the layer in
/// front of every monitor and OSD decides before the body is decoded.
async fn raw_call(addr: &str, path: &str, cred: &Credential) -> Result<(), tonic::Status> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("address")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(meridian_auth::grpc::Signed::new(ch, cred.clone()));
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = http::uri::PathAndQuery::try_from(path).expect("path");
    let call = grpc.unary(tonic::Request::new(()), path, codec);
    // A streaming method that let us in keeps answering: that is a pass.
    match tokio::time::timeout(Duration::from_secs(3), call).await {
        Ok(r) => r.map(|_| ()),
        Err(_) => Ok(()),
    }
}

/// Every method of the monitor and OSD services, from the descriptors the
/// binary was built with (a new RPC cannot escape this test).
fn every_method() -> Vec<String> {
    use prost::Message as _;
    let set = prost_types::FileDescriptorSet::decode(meridian_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let mut out = Vec::new();
    for f in &set.file {
        for s in &f.service {
            let full = format!("{}.{}", f.package(), s.name());
            if full == "meridian.mon.MonService" || full == "meridian.osd.OsdService" {
                out.extend(s.method.iter().map(|m| format!("/{full}/{}", m.name())));
            }
        }
    }
    assert!(out.len() > 20, "descriptors list the services: {out:?}");
    out
}

fn credential_of(tc: &TestCluster, keyring: &std::path::Path, name: &str) -> Credential {
    let c = meridian_client::Credentials::from_keyring(keyring, &name.parse().unwrap())
        .expect("keyring");
    Credential::Ticket(meridian_client::TicketKeeper::new(
        c,
        tc.config().monitor_addrs(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_demands_a_ticket_and_the_capability_it_needs() {
    use meridian_auth::access::{Need, need_of};
    let tc = TestCluster::start_with(1, 2, "512M", &[]);
    let cfg = tc.config();
    let mon = cfg.monitor_addrs()[0].clone();
    let osd0 = cfg.osd["0"].addr.clone();
    ok(&tc, &["put", "-p", "data", "precious", "/etc/hostname"]);

    // No ticket: UNAUTHENTICATED from every method but getting a ticket.
    let weak_ring = tc.dir.join("weak.keyring");
    ok(
        &tc,
        &[
            "auth",
            "get-or-create",
            "client.weak",
            "mon",
            "allow r",
            "-o",
            weak_ring.to_str().unwrap(),
        ],
    );
    let weak = credential_of(&tc, &weak_ring, "client.weak");
    let admin = tc.admin_cred();
    for path in every_method() {
        let need = need_of(&path).unwrap_or_else(|| panic!("{path} says nothing of its caps"));
        let addr = if path.starts_with("/meridian.mon.") {
            &mon
        } else {
            &osd0
        };
        let anon = raw_call(addr, &path, &Credential::Anonymous).await;
        if need == Need::Anyone {
            assert!(
                !matches!(&anon, Err(s) if meridian_auth::grpc::is_auth_refusal(s)),
                "{path}: {anon:?}"
            );
            continue;
        }
        let s = anon.expect_err(&path);
        assert_eq!(s.code(), tonic::Code::Unauthenticated, "{path}: {s:?}");

        // client.weak (mon 'allow r') passes only where mon r is enough.
        let r = raw_call(addr, &path, &weak).await;
        let enough =
            need == Need::Perms(meridian_auth::access::Service::Mon, meridian_auth::Perms::R);
        match r {
            Err(s) if s.code() == tonic::Code::PermissionDenied => {
                assert!(!enough, "{path} refused client.weak: {s:?}");
                assert!(
                    s.message().contains("client.weak"),
                    "{path}: {}",
                    s.message()
                );
                assert!(
                    s.message().contains("'allow") || s.message().contains("mon. key"),
                    "{path} names the capability: {}",
                    s.message()
                );
            }
            other => {
                assert!(enough, "{path} let client.weak through: {other:?}");
                assert!(
                    !matches!(&other, Err(s) if s.code() == tonic::Code::Unauthenticated),
                    "{path}: {other:?}"
                );
            }
        }

        // The internal calls refuse client.admin too: only daemons make them.
        if matches!(need, Need::OsdDaemon(_) | Need::MonPeer) {
            let s = raw_call(addr, &path, &admin).await.expect_err(&path);
            assert_eq!(s.code(), tonic::Code::PermissionDenied, "{path}: {s:?}");
        }
    }

    // The attacks of the issue, with real requests.
    use meridian_proto::mon::mon_command::Cmd;
    use meridian_proto::mon::{MonCommand, OsdBootRequest, OsdHeartbeatRequest, PoolRemove};
    use meridian_proto::osd::{PgActivateRequest, PgRef};
    let rm = MonCommand {
        cmd: Some(Cmd::PoolRemove(PoolRemove {
            name: "data".into(),
            ..Default::default()
        })),
    };
    let mut anon_mon = meridian_client::mon_client(&mon, &Credential::Anonymous).unwrap();
    let s = anon_mon
        .command(rm.clone())
        .await
        .expect_err("anonymous pool rm");
    assert_eq!(s.code(), tonic::Code::Unauthenticated, "{s:?}");
    let mut weak_mon = meridian_client::mon_client(&mon, &weak).unwrap();
    let s = weak_mon
        .command(rm.clone())
        .await
        .expect_err("pool rm with mon r");
    assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");
    assert!(s.message().contains("mon 'allow *'"), "{}", s.message());
    // The gateway's own key serves S3 but cannot drop a pool or act as an OSD.
    let gw = credential_of(
        &tc,
        &cfg.gateway_keyring_path(&cfg.gateway["0"]),
        "client.gateway.0",
    );
    let s = meridian_client::mon_client(&mon, &gw)
        .unwrap()
        .command(rm)
        .await
        .expect_err("pool rm as the gateway");
    assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");
    let s = meridian_client::osd_client(&osd0, &gw)
        .unwrap()
        .push(meridian_proto::osd::PushRequest::default())
        .await
        .expect_err("push as the gateway");
    assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");
    // Forwarding is no longer a header anyone can set.
    let mut forged = tonic::Request::new(MonCommand {
        cmd: Some(Cmd::MapHistoryTrim(Default::default())),
    });
    forged
        .metadata_mut()
        .insert("x-meridian-forwarded", "1".parse().unwrap());
    let mut admin_mon = meridian_client::mon_client(&mon, &admin).unwrap();
    let s = admin_mon
        .command(forged)
        .await
        .expect_err("internal command");
    assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");

    // osd.0's own key cannot boot or heartbeat as osd.1.
    let osd0_key = Config::osd_keyring_path(&cfg.osd["0"]);
    let as_osd0 = credential_of(&tc, &osd0_key, "osd.0");
    let mut m = meridian_client::mon_client(&mon, &as_osd0).unwrap();
    let s = m
        .osd_boot(OsdBootRequest {
            osd_id: 1,
            fsid: cfg.global.fsid.clone(),
            addr: "127.0.0.1:1".into(),
            ..Default::default()
        })
        .await
        .expect_err("boot as another OSD");
    assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");
    assert!(s.message().contains("osd.1"), "{}", s.message());
    let s = m
        .osd_heartbeat(OsdHeartbeatRequest {
            osd_id: 1,
            failure: "forged".into(),
            ..Default::default()
        })
        .await
        .expect_err("heartbeat as another OSD");
    assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");
    // client.admin cannot wipe a PG through pg_activate.
    let mut o = meridian_client::osd_client(&osd0, &admin).unwrap();
    let s = o
        .pg_activate(PgActivateRequest {
            pg: Some(PgRef { pool: 1, seed: 0 }),
            prune_to_keep_only: true,
            ..Default::default()
        })
        .await
        .expect_err("pg_activate from a client");
    assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");

    // The CLI without its key is refused with the reason, and changes nothing.
    let empty = tc.dir.join("empty.keyring");
    std::fs::write(&empty, "").unwrap();
    let out = tc.cli(&[
        "-k",
        empty.to_str().unwrap(),
        "osd",
        "pool",
        "rm",
        "data",
        "data",
        "--yes-i-really-really-mean-it",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds no key for client.admin"), "{err}");
    let out = ok(
        &tc,
        &[
            "-n",
            "client.weak",
            "-k",
            weak_ring.to_str().unwrap(),
            "status",
        ],
    );
    assert!(out.contains("HEALTH_OK"), "{out}");
    refused(
        &tc,
        &[
            "-n",
            "client.weak",
            "-k",
            weak_ring.to_str().unwrap(),
            "osd",
            "pool",
            "rm",
            "data",
            "data",
            "--yes-i-really-really-mean-it",
        ],
        "mon 'allow *'",
    );
    refused(
        &tc,
        &[
            "-n",
            "client.weak",
            "-k",
            weak_ring.to_str().unwrap(),
            "osd",
            "pool",
            "create",
            "more",
            "8",
        ],
        "mon 'allow w'",
    );

    // Nothing was lost, and the cluster is still healthy.
    let got = ok(&tc, &["get", "-p", "data", "precious", "-"]);
    assert_eq!(got, std::fs::read_to_string("/etc/hostname").unwrap());
    tc.wait_healthy(Duration::from_secs(30));
}

/// A `get_map` to `addr` over `endpoint` (plain or TLS), unauthenticated.
async fn get_map_over(endpoint: tonic::transport::Endpoint) -> Result<(), tonic::Status> {
    let ch = endpoint
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("connect: {e}")))?;
    meridian_proto::mon::mon_service_client::MonServiceClient::new(ch)
        .get_map(GetMapRequest::default())
        .await
        .map(|_| ())
}

/// With `internal_tls`, monitors and OSDs speak only TLS: the cluster comes
/// up healthy (OSD boot, heartbeats and peering, the gateway's pools all go
/// over TLS), the CLI reads and writes, a plain-HTTP caller gets no answer
/// from any daemon, and a TLS caller that trusts the cluster's CA reaches the
/// authentication layer (which still wants a ticket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_tls_carries_every_monitor_and_osd_call() {
    let tc = TestCluster::start_with(1, 2, "512M", &["-o", "internal_tls=true"]);
    let cfg = tc.config();
    assert!(cfg.global.internal_tls);
    let src = tc.dir.join("object.bin");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    ok(
        &tc,
        &["put", "-p", "data", "over-tls", src.to_str().unwrap()],
    );
    let back = tc.dir.join("back.bin");
    ok(
        &tc,
        &["get", "-p", "data", "over-tls", back.to_str().unwrap()],
    );
    assert_eq!(std::fs::read(&back).unwrap(), data);
    let ca = std::fs::read(&cfg.global.tls_ca_file).expect("the dev CA");
    let daemons = cfg
        .mon
        .values()
        .map(|m| m.addr.clone())
        .chain(cfg.osd.values().map(|o| o.addr.clone()));
    for addr in daemons {
        let plain = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap();
        let e = get_map_over(plain).await.unwrap_err();
        assert!(
            !matches!(
                e.code(),
                tonic::Code::Ok | tonic::Code::Unauthenticated | tonic::Code::Unimplemented
            ),
            "{addr} answered plain HTTP/2: {e}"
        );
        let tls = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(&ca)),
            )
            .unwrap();
        let e = get_map_over(tls).await.unwrap_err();
        // OSDs do not serve get_map; both answers come from past the handshake.
        assert!(
            matches!(
                e.code(),
                tonic::Code::Unauthenticated | tonic::Code::Unimplemented
            ),
            "{addr} over TLS: {e}"
        );
    }
    let errors = tc.error_lines();
    assert!(
        errors.is_empty(),
        "daemons logged errors:\n{}",
        errors.join("\n")
    );
}
