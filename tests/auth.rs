//! Entities, keys and capabilities: `client.admin` made at bootstrap with a
//! private keyring, `auth get-or-create|get|ls|caps|rm|print-key` replicated
//! through the monitors (through a kill -9 of the leader), keys never in the
//! cluster map, bad input refused with the reason.

mod common;

use common::TestCluster;
use meridian_auth::ticket;
use meridian_auth::{EntityName, Keyring};
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
        let mut mon = meridian_client::mon_client(&addr).unwrap();
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
    let mut mon = meridian_client::mon_client(&tc.config().monitor_addrs()[0]).unwrap();
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
    assert_eq!(names(&tc), ["client.admin", "client.gateway.0"]);

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
        if dump.len() == 3
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
    assert_eq!(names(&tc), ["client.admin", "client.gateway.0"]);
    // The admin keyring written at bootstrap was never replaced.
    let again = Keyring::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(again.get(&EntityName::admin()).unwrap().key, admin.key);
}
