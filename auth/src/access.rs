//! Who may call what: the capability every monitor and OSD RPC needs
//! ([`need_of`]), the caller as a service sees it once its ticket checked
//! out ([`Caller`]), and the request headers that carry the proof.
//!
//! Methods are named by their full gRPC path, so the policy is checked
//! before a request body is even decoded. A method that is not listed is
//! refused: a new RPC must say what it needs before anyone can call it.

use crate::ticket::{self, SecretBytes, ServiceSecret};
use crate::{AuthError, EntityName, EntityType, Perms, ServiceCaps};

/// Header with the caller's ticket (base64).
pub const TICKET_HEADER: &str = "x-meridian-ticket";
/// Header naming a monitor calling another monitor (`mon.`), instead of a ticket.
pub const PEER_HEADER: &str = "x-meridian-peer";
/// Header with the request time (Unix ms) the signature covers.
pub const TIME_HEADER: &str = "x-meridian-time";
/// Header with the request signature (base64).
pub const SIGNATURE_HEADER: &str = "x-meridian-signature";

/// Most clock difference between a request's signature and its receiver.
pub const REQUEST_MAX_SKEW_MS: u64 = 5 * 60 * 1000;

/// A service whose caps a method checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The monitors.
    Mon,
    /// The OSDs.
    Osd,
}

impl Service {
    /// Its name in caps (`mon`, `osd`).
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Mon => "mon",
            Service::Osd => "osd",
        }
    }
}

/// What a method requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nobody in particular: getting a ticket, gRPC reflection.
    Anyone,
    /// These permissions on the service (handlers may narrow an `osd` need
    /// to the pool the request names).
    Perms(Service, Perms),
    /// An OSD daemon with its own key (`osd.N` with `allow profile osd`).
    OsdDaemon(Service),
    /// Another monitor (the `mon.` key).
    MonPeer,
}

const MON_SERVICE: &str = "/meridian.mon.MonService/";
const OSD_SERVICE: &str = "/meridian.osd.OsdService/";

/// Every method of the monitor service and what it needs.
pub const MON_METHODS: &[(&str, Need)] = &[
    ("Authenticate", Need::Anyone),
    ("Subscribe", Need::Perms(Service::Mon, Perms::R)),
    ("GetMap", Need::Perms(Service::Mon, Perms::R)),
    ("GetMapHistory", Need::Perms(Service::Mon, Perms::R)),
    ("Status", Need::Perms(Service::Mon, Perms::R)),
    // Commands are narrowed per command by the monitor (w, or * for auth).
    ("Command", Need::Perms(Service::Mon, Perms::R)),
    ("AuthGet", Need::Perms(Service::Mon, Perms::ALL)),
    // Zone system keys: kept out of the map, read with x.
    ("GetZoneSecrets", Need::Perms(Service::Mon, Perms::X)),
    ("Beacon", Need::Perms(Service::Mon, Perms::W)),
    ("GetConfig", Need::Perms(Service::Mon, Perms::R)),
    ("OsdAlive", Need::OsdDaemon(Service::Mon)),
    ("OsdBoot", Need::OsdDaemon(Service::Mon)),
    ("OsdHeartbeat", Need::OsdDaemon(Service::Mon)),
    ("GetServiceSecrets", Need::OsdDaemon(Service::Mon)),
    ("Raft", Need::MonPeer),
];

/// Every method of the OSD service and what it needs.
pub const OSD_METHODS: &[(&str, Need)] = &[
    // Narrowed by the OSD to the op's pool, and to w when it mutates.
    ("Op", Need::Perms(Service::Osd, Perms::R)),
    ("PgList", Need::Perms(Service::Osd, Perms::R)),
    ("PgDescribe", Need::Perms(Service::Osd, Perms::R)),
    ("Status", Need::Perms(Service::Osd, Perms::R)),
    ("Scrub", Need::Perms(Service::Osd, Perms::W)),
    ("RepOp", Need::OsdDaemon(Service::Osd)),
    ("PgQuery", Need::OsdDaemon(Service::Osd)),
    ("PgActivate", Need::OsdDaemon(Service::Osd)),
    ("Push", Need::OsdDaemon(Service::Osd)),
    ("Pull", Need::OsdDaemon(Service::Osd)),
    ("PgRemove", Need::OsdDaemon(Service::Osd)),
    ("PgNotify", Need::OsdDaemon(Service::Osd)),
];

/// What the method at gRPC `path` needs; `None` for a method nobody listed
/// (refused).
pub fn need_of(path: &str) -> Option<Need> {
    if path.starts_with("/grpc.reflection.") {
        return Some(Need::Anyone);
    }
    let (table, method) = if let Some(m) = path.strip_prefix(MON_SERVICE) {
        (MON_METHODS, m)
    } else if let Some(m) = path.strip_prefix(OSD_SERVICE) {
        (OSD_METHODS, m)
    } else {
        return None;
    };
    table
        .iter()
        .find(|(n, _)| *n == method)
        .map(|(_, need)| *need)
}

/// The method name of a gRPC path (`/pkg.Service/Method` → `Method`).
pub fn method_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Who is calling, as a monitor or OSD established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Another monitor (proved the `mon.` key). It checked its own
    /// caller's caps before forwarding, so it may do anything.
    MonPeer,
    /// An entity with a valid ticket.
    Entity {
        /// Who.
        name: EntityName,
        /// Its `mon` caps.
        mon: ServiceCaps,
        /// Its `osd` caps.
        osd: ServiceCaps,
    },
    /// Authentication is off (`auth_required = false`): nothing is checked.
    Unchecked,
}

impl Caller {
    /// The caller from a verified ticket's claims.
    pub fn from_claims(claims: &ticket::Claims) -> Result<Caller, AuthError> {
        let name: EntityName = claims.entity.parse()?;
        let caps = |s: Service| match claims.caps.get(s.as_str()) {
            Some(c) => ServiceCaps::parse(s.as_str(), c),
            None => Ok(ServiceCaps::default()),
        };
        Ok(Caller::Entity {
            name,
            mon: caps(Service::Mon)?,
            osd: caps(Service::Osd)?,
        })
    }

    /// The caller's name for messages and logs.
    pub fn name(&self) -> String {
        match self {
            Caller::MonPeer => "mon.".into(),
            Caller::Entity { name, .. } => name.to_string(),
            Caller::Unchecked => "(unauthenticated)".into(),
        }
    }

    /// Whether the caller is OSD daemon `id` (or a monitor, or unchecked).
    pub fn is_osd_daemon(&self, id: u32) -> bool {
        match self {
            Caller::MonPeer | Caller::Unchecked => true,
            Caller::Entity { name, .. } => {
                name.kind() == EntityType::Osd && name.id() == id.to_string()
            }
        }
    }

    /// Checks `need` (on `pool`, where the method acts on one) for a call
    /// of `method`; the error names the capability that is missing.
    pub fn check(&self, method: &str, need: Need, pool: Option<&str>) -> Result<(), String> {
        let (name, mon, osd) = match self {
            Caller::MonPeer | Caller::Unchecked => return Ok(()),
            Caller::Entity { name, mon, osd } => (name, mon, osd),
        };
        let caps = |s: Service| if s == Service::Mon { mon } else { osd };
        let daemon = name.kind() == EntityType::Osd;
        match need {
            Need::Anyone => Ok(()),
            Need::Perms(s, p) => {
                let held = caps(s);
                // An OSD daemon's profile covers its own reads of the
                // monitors (maps, history) and anything on other OSDs.
                let by_profile = daemon
                    && held.has_profile("osd")
                    && (s == Service::Osd || Perms::R.contains(p));
                if held.allows(p, pool) || by_profile {
                    return Ok(());
                }
                let on = pool.map(|p| format!(" pool={p}")).unwrap_or_default();
                Err(format!(
                    "{name} lacks the capability {} 'allow {p}{on}' needed by {method}",
                    s.as_str()
                ))
            }
            Need::OsdDaemon(s) if daemon && caps(s).has_profile("osd") => Ok(()),
            Need::OsdDaemon(s) => Err(format!(
                "{method} is internal to the cluster: only OSD daemons may call it \
                 (osd.N with its own key and the capability {} 'allow profile osd'); {name} is not one",
                s.as_str()
            )),
            Need::MonPeer => Err(format!(
                "{method} is internal to the monitors (the mon. key); {name} may not call it"
            )),
        }
    }
}

/// The proof a request carries, as read from its headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// [`TICKET_HEADER`].
    pub ticket: Option<&'a str>,
    /// [`PEER_HEADER`].
    pub peer: Option<&'a str>,
    /// [`TIME_HEADER`].
    pub time: Option<&'a str>,
    /// [`SIGNATURE_HEADER`].
    pub signature: Option<&'a str>,
}

/// A request's signature headers: (time, signature), both as header text.
pub fn sign(session: &SecretBytes, path: &str, now_ms: u64) -> (String, String) {
    let sig = ticket::request_signature(session, path, now_ms, &[]);
    (
        now_ms.to_string(),
        base64_simd::STANDARD.encode_to_string(sig),
    )
}

/// A monitor's signature of a call to another monitor, with the `mon.` key.
pub fn sign_as_peer(mon_key: &SecretBytes, path: &str, now_ms: u64) -> (String, String) {
    let sig = ticket::peer_signature(mon_key, path, now_ms);
    (
        now_ms.to_string(),
        base64_simd::STANDARD.encode_to_string(sig),
    )
}

/// A ticket that checked out, as a service may keep it for the ticket's
/// next requests.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// Who holds it and what they may do.
    pub caller: Caller,
    /// The session key its requests are signed with.
    pub session: SecretBytes,
    /// Not valid at or after this time (Unix ms).
    pub expires_ms: u64,
}

/// Verifies a raw ticket with `secrets` (signature, expiry) and reads its caps.
pub fn admit_ticket(
    raw: &[u8],
    secrets: &[ServiceSecret],
    now_ms: u64,
) -> Result<Admitted, AuthError> {
    let v = ticket::verify(secrets, raw, now_ms)?;
    Ok(Admitted {
        caller: Caller::from_claims(&v.claims)?,
        session: v.session,
        expires_ms: v.claims.expires_ms,
    })
}

/// Establishes who sent a request to `path`: a ticket signed with one of
/// `secrets` and a request signature with its session key, or (monitors
/// only, `mon_key` given) the `mon.` key. Errors say what to fix.
pub fn authenticate(
    path: &str,
    p: Presented<'_>,
    secrets: &[ServiceSecret],
    mon_key: Option<&SecretBytes>,
    now_ms: u64,
) -> Result<Caller, AuthError> {
    authenticate_with(path, p, mon_key, now_ms, |raw| {
        admit_ticket(raw, secrets, now_ms)
    })
}

/// [`authenticate`], with the ticket admitted by `admit` (which may answer
/// from a cache of tickets it verified before).
pub fn authenticate_with(
    path: &str,
    p: Presented<'_>,
    mon_key: Option<&SecretBytes>,
    now_ms: u64,
    admit: impl FnOnce(&[u8]) -> Result<Admitted, AuthError>,
) -> Result<Caller, AuthError> {
    let missing = |what: &str| AuthError::BadTicket(format!("no {what}: authenticate first"));
    let ts: u64 = p
        .time
        .ok_or_else(|| missing(TIME_HEADER))?
        .parse()
        .map_err(|_| AuthError::BadTicket(format!("{TIME_HEADER} is not a number")))?;
    let sig = base64_simd::STANDARD
        .decode_to_vec(
            p.signature
                .ok_or_else(|| missing(SIGNATURE_HEADER))?
                .as_bytes(),
        )
        .map_err(|_| AuthError::BadTicket(format!("{SIGNATURE_HEADER} is not base64")))?;
    if let Some(peer) = p.peer {
        let key = mon_key
            .filter(|_| peer == "mon.")
            .ok_or_else(|| AuthError::BadProof(peer.to_string()))?;
        return ticket::check_peer(key, path, ts, &sig, now_ms, REQUEST_MAX_SKEW_MS)
            .map(|()| Caller::MonPeer);
    }
    let raw = base64_simd::STANDARD
        .decode_to_vec(p.ticket.ok_or_else(|| missing(TICKET_HEADER))?.as_bytes())
        .map_err(|_| AuthError::BadTicket(format!("{TICKET_HEADER} is not base64")))?;
    let a = admit(&raw)?;
    if now_ms >= a.expires_ms {
        return Err(AuthError::Expired {
            entity: a.caller.name(),
            ago_ms: now_ms - a.expires_ms,
        });
    }
    ticket::check_request(&a.session, path, ts, &[], &sig, now_ms, REQUEST_MAX_SKEW_MS)?;
    Ok(a.caller)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn entity(name: &str, mon: &str, osd: &str) -> Caller {
        let mut caps = BTreeMap::new();
        if !mon.is_empty() {
            caps.insert("mon".to_string(), mon.to_string());
        }
        if !osd.is_empty() {
            caps.insert("osd".to_string(), osd.to_string());
        }
        Caller::from_claims(&ticket::Claims {
            entity: name.into(),
            caps,
            issued_ms: 0,
            expires_ms: 1,
        })
        .unwrap()
    }

    #[test]
    fn every_method_is_listed_once_and_unknown_ones_are_refused() {
        for (svc, table) in [(MON_SERVICE, MON_METHODS), (OSD_SERVICE, OSD_METHODS)] {
            for (i, (m, need)) in table.iter().enumerate() {
                assert!(table[i + 1..].iter().all(|(o, _)| o != m), "{m} twice");
                assert_eq!(need_of(&format!("{svc}{m}")), Some(*need));
            }
        }
        assert_eq!(need_of("/meridian.mon.MonService/Nope"), None);
        assert_eq!(need_of("/meridian.multisite.Zone/ListLog"), None);
        assert_eq!(
            need_of("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Some(Need::Anyone)
        );
        assert_eq!(method_name("/meridian.osd.OsdService/Op"), "Op");
    }

    #[test]
    fn caps_decide_and_refusals_name_the_missing_capability() {
        let reader = entity("client.ro", "allow r", "allow r pool=data");
        assert!(
            reader
                .check("Status", Need::Perms(Service::Mon, Perms::R), None)
                .is_ok()
        );
        let e = reader
            .check("Command", Need::Perms(Service::Mon, Perms::W), None)
            .unwrap_err();
        assert!(
            e.contains("client.ro lacks the capability mon 'allow w'"),
            "{e}"
        );
        assert!(
            reader
                .check("Op", Need::Perms(Service::Osd, Perms::R), Some("data"))
                .is_ok()
        );
        let e = reader
            .check("Op", Need::Perms(Service::Osd, Perms::W), Some("data"))
            .unwrap_err();
        assert!(e.contains("osd 'allow w pool=data'"), "{e}");
        assert!(
            reader
                .check("Op", Need::Perms(Service::Osd, Perms::R), Some("other"))
                .is_err()
        );

        // client.admin (allow *) is still not an OSD daemon.
        let admin = entity("client.admin", "allow *", "allow *");
        assert!(
            admin
                .check("AuthGet", Need::Perms(Service::Mon, Perms::ALL), None)
                .is_ok()
        );
        let e = admin
            .check("PgActivate", Need::OsdDaemon(Service::Osd), None)
            .unwrap_err();
        assert!(
            e.contains("only OSD daemons") && e.contains("client.admin"),
            "{e}"
        );
        assert!(admin.check("Raft", Need::MonPeer, None).is_err());
        assert!(!admin.is_osd_daemon(0));

        let osd = entity("osd.3", "allow profile osd", "allow profile osd");
        assert!(
            osd.check("PgActivate", Need::OsdDaemon(Service::Osd), None)
                .is_ok()
        );
        assert!(
            osd.check("OsdBoot", Need::OsdDaemon(Service::Mon), None)
                .is_ok()
        );
        assert!(
            osd.check("GetMap", Need::Perms(Service::Mon, Perms::R), None)
                .is_ok()
        );
        assert!(
            osd.check("Command", Need::Perms(Service::Mon, Perms::W), None)
                .is_err()
        );
        assert!(
            osd.check("Op", Need::Perms(Service::Osd, Perms::W), Some("data"))
                .is_ok()
        );
        assert!(osd.is_osd_daemon(3) && !osd.is_osd_daemon(4));
        // A client that was given the profile is still not a daemon.
        let fake = entity("client.x", "allow profile osd", "allow profile osd");
        assert!(
            fake.check("PgActivate", Need::OsdDaemon(Service::Osd), None)
                .is_err()
        );
        assert!(
            fake.check("GetMap", Need::Perms(Service::Mon, Perms::R), None)
                .is_err()
        );
    }

    #[test]
    fn requests_verify_only_with_the_right_ticket_session_and_time() {
        let secret = ServiceSecret {
            id: 7,
            secret: [3; 32],
        };
        let key = [9u8; 32];
        let claims = ticket::Claims {
            entity: "client.gw".into(),
            caps: BTreeMap::from([("mon".to_string(), "allow r".to_string())]),
            issued_ms: 1_000,
            expires_ms: 1_000_000,
        };
        let issued = ticket::issue(
            &secret,
            &key,
            &claims,
            ticket::fresh_nonce(),
            ticket::fresh_secret(),
        )
        .unwrap();
        let session = ticket::open_session(&key, &issued).unwrap();
        let t64 = base64_simd::STANDARD.encode_to_string(&issued.ticket);
        let path = "/meridian.mon.MonService/Status";
        let (time, sig) = sign(&session, path, 5_000);
        let p = Presented {
            ticket: Some(&t64),
            time: Some(&time),
            signature: Some(&sig),
            peer: None,
        };
        let secrets = [secret.clone()];
        let c = authenticate(path, p, &secrets, None, 5_000).unwrap();
        assert_eq!(c.name(), "client.gw");
        // Another method, another time, no ticket, a forged signature.
        assert!(
            authenticate("/meridian.mon.MonService/Command", p, &secrets, None, 5_000).is_err()
        );
        assert!(matches!(
            authenticate(path, p, &secrets, None, 5_000 + REQUEST_MAX_SKEW_MS + 1),
            Err(AuthError::Skew { .. })
        ));
        assert!(
            authenticate(path, Presented { ticket: None, ..p }, &secrets, None, 5_000).is_err()
        );
        let (_, forged) = sign(&[0; 32], path, 5_000);
        let bad = Presented {
            signature: Some(&forged),
            ..p
        };
        assert!(matches!(
            authenticate(path, bad, &secrets, None, 5_000),
            Err(AuthError::BadRequestSignature(_))
        ));
        // Past its expiry the ticket is refused even with a fresh signature.
        let (t2, s2) = sign(&session, path, 1_000_000);
        let late = Presented {
            time: Some(&t2),
            signature: Some(&s2),
            ..p
        };
        assert!(matches!(
            authenticate(path, late, &secrets, None, 1_000_000),
            Err(AuthError::Expired { .. })
        ));

        // Monitors: the mon. key, and nothing else, makes a peer.
        let mon_key = [5u8; 32];
        let (time, sig) = sign_as_peer(&mon_key, "/meridian.mon.MonService/Raft", 9);
        let peer = Presented {
            peer: Some("mon."),
            time: Some(&time),
            signature: Some(&sig),
            ticket: None,
        };
        let raft = "/meridian.mon.MonService/Raft";
        assert_eq!(
            authenticate(raft, peer, &[], Some(&mon_key), 9),
            Ok(Caller::MonPeer)
        );
        assert!(authenticate(raft, peer, &[], Some(&[6; 32]), 9).is_err());
        assert!(
            authenticate(raft, peer, &[], None, 9).is_err(),
            "OSDs accept no peers"
        );
        assert!(authenticate(path, peer, &[], Some(&mon_key), 9).is_err());
    }

    /// A deterministic stream of bytes (xorshift), for inputs no one chose.
    fn noise(seed: u64) -> impl Iterator<Item = u8> {
        let mut x = seed | 1;
        std::iter::from_fn(move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Some((x >> 24) as u8)
        })
    }

    #[test]
    fn arbitrary_headers_flipped_bits_and_junk_caps_are_refused_without_panics() {
        let secret = ServiceSecret {
            id: 1,
            secret: [7; 32],
        };
        let key = [8u8; 32];
        let claims = ticket::Claims {
            entity: "client.a".into(),
            caps: BTreeMap::from([("osd".to_string(), "allow rw pool=data".to_string())]),
            issued_ms: 0,
            expires_ms: u64::MAX,
        };
        let issued = ticket::issue(&secret, &key, &claims, [1; 16], [2; 32]).expect("issue");
        let session = ticket::open_session(&key, &issued).unwrap();
        let path = "/meridian.osd.OsdService/Op";
        let (time, sig) = sign(&session, path, 10);
        let secrets = [secret];
        for round in 0..2_000u64 {
            // One bit of the ticket flipped: never accepted.
            let mut t = issued.ticket.clone();
            let bit = (round as usize * 7919) % (t.len() * 8);
            t[bit / 8] ^= 1 << (bit % 8);
            let t64 = base64_simd::STANDARD.encode_to_string(&t);
            let p = Presented {
                ticket: Some(&t64),
                time: Some(&time),
                signature: Some(&sig),
                peer: None,
            };
            assert!(
                authenticate(path, p, &secrets, None, 10).is_err(),
                "bit {bit}"
            );
            // Random header text: refused, no panic.
            let junk: Vec<u8> = noise(round).take((round % 300) as usize).collect();
            let text = String::from_utf8_lossy(&junk).into_owned();
            let b64 = base64_simd::STANDARD.encode_to_string(&junk);
            for p in [
                Presented {
                    ticket: Some(&b64),
                    time: Some(&time),
                    signature: Some(&sig),
                    peer: None,
                },
                Presented {
                    ticket: Some(&text),
                    time: Some(&text),
                    signature: Some(&b64),
                    peer: Some(&text),
                },
            ] {
                assert!(authenticate(path, p, &secrets, Some(&[3; 32]), 10).is_err());
            }
            let _ = ServiceCaps::parse("osd", &text);
            let _ = crate::Keyring::parse(&text);
            let _ = text.parse::<EntityName>();
        }
    }
}
