//! Tickets, as cephx's: how a caller proves its key once to a monitor and
//! then to every monitor and OSD without them asking the monitors again.
//!
//! 1. The caller sends its entity name, the time, a nonce and [`proof`] (an
//!    HMAC of them with its key). A monitor checks it ([`check_proof`]) and
//!    [`issue`]s a ticket: the entity, its caps and an expiry, signed with a
//!    rotating *service secret* that only monitors and OSDs hold, plus a fresh
//!    session key sealed twice — inside the ticket for the services, and
//!    beside it for the caller, each with a keystream only the intended side
//!    can compute (HMAC-SHA256 as a PRF over the ticket's nonce).
//! 2. The caller recovers the session key ([`open_session`]) and signs each
//!    request with it ([`request_signature`]). A service [`verify`]s the
//!    ticket with its service secrets, recovers the same session key and
//!    checks the request signature ([`check_request`]).
//!
//! A replayed proof yields a ticket whose session key the replayer cannot
//! open; a stolen ticket cannot sign requests. All comparisons are
//! constant-time (`Mac::verify_slice`).

use crate::{AuthError, KEY_BYTES};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;

type HmacSha256 = Hmac<Sha256>;

/// A session key, a service secret or an entity key, raw.
pub type SecretBytes = [u8; KEY_BYTES];
/// A ticket's nonce.
pub type Nonce = [u8; 16];

const MAGIC: &[u8; 4] = b"MTK1";
const MAC_LEN: usize = 32;
/// Longest entity name or capability string a ticket carries.
const MAX_FIELD: usize = 4096;
/// Most services a ticket lists caps for.
const MAX_CAPS: usize = 16;

/// One of the monitors' rotating secrets that sign tickets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSecret {
    /// Which one (carried in the ticket, so verifiers pick the right one).
    pub id: u64,
    /// The secret.
    pub secret: SecretBytes,
}

impl ServiceSecret {
    /// A secret as stored and sent (`None` unless `secret` is [`KEY_BYTES`] long).
    pub fn from_parts(id: u64, secret: &[u8]) -> Option<ServiceSecret> {
        Some(ServiceSecret {
            id,
            secret: secret.try_into().ok()?,
        })
    }
}

/// What a ticket says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The entity (`client.admin`, `osd.3`).
    pub entity: String,
    /// Its caps per service, as the monitors had them at issue time.
    pub caps: BTreeMap<String, String>,
    /// Issue time (Unix ms).
    pub issued_ms: u64,
    /// Not valid at or after this time (Unix ms).
    pub expires_ms: u64,
}

/// A ticket and what its holder needs to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The opaque signed ticket (sent with every request).
    pub ticket: Vec<u8>,
    /// The session key, sealed for the entity ([`open_session`]).
    pub sealed_session: SecretBytes,
}

/// A ticket that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who holds it and what they may do.
    pub claims: Claims,
    /// The session key its requests are signed with.
    pub session: SecretBytes,
}

/// 32 fresh random bytes (a session key, a service secret).
pub fn fresh_secret() -> SecretBytes {
    use rand::RngCore as _;
    let mut b = [0u8; KEY_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// A fresh random nonce.
pub fn fresh_nonce() -> Nonce {
    use rand::RngCore as _;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// What a ticket claims, unverified: for its holder's own use (expiry,
/// display). Services use [`verify`].
pub fn claims_of(ticket: &[u8]) -> Result<Claims, AuthError> {
    Ok(parse(ticket)?.claims)
}

/// Decodes a base64 key as stored in keyrings and the monitors' database.
pub fn key_bytes(entity: &str, key: &str) -> Result<SecretBytes, AuthError> {
    base64_simd::STANDARD
        .decode_to_vec(key.as_bytes())
        .ok()
        .and_then(|raw| raw.try_into().ok())
        .ok_or_else(|| AuthError::BadKey(entity.to_string()))
}

fn mac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length")
}

/// The HMAC of (`label`, `parts`), not yet finalized.
fn labelled(key: &[u8], label: &str, parts: &[&[u8]]) -> HmacSha256 {
    let mut m = mac(key);
    m.update(label.as_bytes());
    for p in parts {
        // Length-prefixed, so distinct part lists never collide.
        m.update(&(p.len() as u64).to_be_bytes());
        m.update(p);
    }
    m
}

/// HMAC-SHA256 as a PRF: 32 bytes of keystream for (`label`, `parts`).
fn prf(key: &[u8], label: &str, parts: &[&[u8]]) -> SecretBytes {
    labelled(key, label, parts).finalize().into_bytes().into()
}

const PROOF: &str = "meridian-auth-proof";
const REQUEST: &str = "meridian-request";
const PEER: &str = "meridian-mon-peer";

/// Whether `given` is the HMAC of (`label`, `parts`), made within
/// `max_skew_ms` of `now_ms`; `mismatch` is the error when it is not.
#[allow(clippy::too_many_arguments)]
fn check_labelled(
    key: &[u8],
    label: &str,
    parts: &[&[u8]],
    given: &[u8],
    ts_ms: u64,
    now_ms: u64,
    max_skew_ms: u64,
    mismatch: impl FnOnce() -> AuthError,
) -> Result<(), AuthError> {
    within(ts_ms, now_ms, max_skew_ms)?;
    labelled(key, label, parts)
        .verify_slice(given)
        .map_err(|_| mismatch())
}

fn within(ts_ms: u64, now_ms: u64, max_skew_ms: u64) -> Result<(), AuthError> {
    let off_ms = ts_ms.abs_diff(now_ms);
    if off_ms > max_skew_ms {
        return Err(AuthError::Skew {
            off_ms,
            max_ms: max_skew_ms,
        });
    }
    Ok(())
}

fn xor(a: &SecretBytes, b: &SecretBytes) -> SecretBytes {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// The caller's proof that it holds `key` (sent to a monitor to get a ticket).
pub fn proof(key: &SecretBytes, entity: &str, ts_ms: u64, nonce: &Nonce) -> SecretBytes {
    prf(
        key,
        PROOF,
        &[entity.as_bytes(), &ts_ms.to_be_bytes(), nonce],
    )
}

/// Checks a [`proof`] made within `max_skew_ms` of `now_ms`.
pub fn check_proof(
    key: &SecretBytes,
    entity: &str,
    ts_ms: u64,
    nonce: &Nonce,
    given: &[u8],
    now_ms: u64,
    max_skew_ms: u64,
) -> Result<(), AuthError> {
    check_labelled(
        key,
        PROOF,
        &[entity.as_bytes(), &ts_ms.to_be_bytes(), nonce],
        given,
        ts_ms,
        now_ms,
        max_skew_ms,
        || AuthError::BadProof(entity.to_string()),
    )
}

/// Issues a ticket for `claims` signed with `service`; `entity_key` seals
/// the session key for the holder. `nonce` and `session` must be fresh
/// random values.
pub fn issue(
    service: &ServiceSecret,
    entity_key: &SecretBytes,
    claims: &Claims,
    nonce: Nonce,
    session: SecretBytes,
) -> Result<Issued, AuthError> {
    if claims.entity.len() > MAX_FIELD
        || claims.caps.len() > MAX_CAPS
        || claims
            .caps
            .iter()
            .any(|(s, c)| s.len() > MAX_FIELD || c.len() > MAX_FIELD)
    {
        return Err(AuthError::BadTicket("claims too large".into()));
    }
    let mut t = Vec::with_capacity(128);
    t.extend_from_slice(MAGIC);
    t.extend_from_slice(&service.id.to_be_bytes());
    t.extend_from_slice(&claims.issued_ms.to_be_bytes());
    t.extend_from_slice(&claims.expires_ms.to_be_bytes());
    t.extend_from_slice(&nonce);
    let for_services = xor(
        &session,
        &prf(&service.secret, "meridian-ticket-session", &[&nonce]),
    );
    t.extend_from_slice(&for_services);
    put_field(&mut t, claims.entity.as_bytes());
    t.extend_from_slice(&(claims.caps.len() as u16).to_be_bytes());
    for (s, c) in &claims.caps {
        put_field(&mut t, s.as_bytes());
        put_field(&mut t, c.as_bytes());
    }
    let mut m = mac(&service.secret);
    m.update(&t);
    t.extend_from_slice(&m.finalize().into_bytes());
    let sealed_session = xor(
        &session,
        &prf(entity_key, "meridian-client-session", &[&nonce]),
    );
    Ok(Issued {
        ticket: t,
        sealed_session,
    })
}

fn put_field(t: &mut Vec<u8>, b: &[u8]) {
    t.extend_from_slice(&(b.len() as u16).to_be_bytes());
    t.extend_from_slice(b);
}

/// A bounds-checked reader over ticket bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AuthError> {
        if self.0.len() < n {
            return Err(AuthError::BadTicket("truncated".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u64(&mut self) -> Result<u64, AuthError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn u16(&mut self) -> Result<u16, AuthError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], AuthError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }
    fn text(&mut self) -> Result<String, AuthError> {
        let n = self.u16()? as usize;
        if n > MAX_FIELD {
            return Err(AuthError::BadTicket("field too long".into()));
        }
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| AuthError::BadTicket("field is not UTF-8".into()))
    }
}

struct Parsed {
    secret_id: u64,
    nonce: Nonce,
    for_services: SecretBytes,
    claims: Claims,
    signed_len: usize,
}

fn parse(ticket: &[u8]) -> Result<Parsed, AuthError> {
    if ticket.len() < MAC_LEN {
        return Err(AuthError::BadTicket("truncated".into()));
    }
    let signed_len = ticket.len() - MAC_LEN;
    let mut r = Reader(&ticket[..signed_len]);
    if r.take(4)? != MAGIC {
        return Err(AuthError::BadTicket("not a Meridian ticket".into()));
    }
    let secret_id = r.u64()?;
    let issued_ms = r.u64()?;
    let expires_ms = r.u64()?;
    let nonce = r.array::<16>()?;
    let for_services = r.array::<KEY_BYTES>()?;
    let entity = r.text()?;
    let n = r.u16()? as usize;
    if n > MAX_CAPS {
        return Err(AuthError::BadTicket("too many caps".into()));
    }
    let mut caps = BTreeMap::new();
    for _ in 0..n {
        let s = r.text()?;
        caps.insert(s, r.text()?);
    }
    if !r.0.is_empty() {
        return Err(AuthError::BadTicket("trailing bytes".into()));
    }
    Ok(Parsed {
        secret_id,
        nonce,
        for_services,
        claims: Claims {
            entity,
            caps,
            issued_ms,
            expires_ms,
        },
        signed_len,
    })
}

/// The holder's side: recovers the session key of `issued` with its key.
pub fn open_session(entity_key: &SecretBytes, issued: &Issued) -> Result<SecretBytes, AuthError> {
    let p = parse(&issued.ticket)?;
    Ok(xor(
        &issued.sealed_session,
        &prf(entity_key, "meridian-client-session", &[&p.nonce]),
    ))
}

/// The service's side: checks the ticket's signature (with whichever of
/// `secrets` signed it) and expiry, and recovers its session key.
pub fn verify(
    secrets: &[ServiceSecret],
    ticket: &[u8],
    now_ms: u64,
) -> Result<Verified, AuthError> {
    let p = parse(ticket)?;
    let service = secrets
        .iter()
        .find(|s| s.id == p.secret_id)
        .ok_or(AuthError::UnknownServiceSecret(p.secret_id))?;
    let mut m = mac(&service.secret);
    m.update(&ticket[..p.signed_len]);
    m.verify_slice(&ticket[p.signed_len..])
        .map_err(|_| AuthError::BadTicket("signature does not match".into()))?;
    if now_ms >= p.claims.expires_ms {
        return Err(AuthError::Expired {
            entity: p.claims.entity,
            ago_ms: now_ms - p.claims.expires_ms,
        });
    }
    let session = xor(
        &p.for_services,
        &prf(&service.secret, "meridian-ticket-session", &[&p.nonce]),
    );
    Ok(Verified {
        claims: p.claims,
        session,
    })
}

/// The signature of one request: `method` (its full gRPC path), the time
/// and `digest` (of whatever part of the request the protocol binds).
pub fn request_signature(
    session: &SecretBytes,
    method: &str,
    ts_ms: u64,
    digest: &[u8],
) -> SecretBytes {
    prf(
        session,
        REQUEST,
        &[method.as_bytes(), &ts_ms.to_be_bytes(), digest],
    )
}

/// Checks a [`request_signature`] made within `max_skew_ms` of `now_ms`.
pub fn check_request(
    session: &SecretBytes,
    method: &str,
    ts_ms: u64,
    digest: &[u8],
    given: &[u8],
    now_ms: u64,
    max_skew_ms: u64,
) -> Result<(), AuthError> {
    check_labelled(
        session,
        REQUEST,
        &[method.as_bytes(), &ts_ms.to_be_bytes(), digest],
        given,
        ts_ms,
        now_ms,
        max_skew_ms,
        || AuthError::BadRequestSignature(method.to_string()),
    )
}

/// A monitor's signature of a call to another monitor: `method` and the
/// time, with the `mon.` key every monitor holds.
pub fn peer_signature(mon_key: &SecretBytes, method: &str, ts_ms: u64) -> SecretBytes {
    prf(mon_key, PEER, &[method.as_bytes(), &ts_ms.to_be_bytes()])
}

/// Checks a [`peer_signature`] made within `max_skew_ms` of `now_ms`.
pub fn check_peer(
    mon_key: &SecretBytes,
    method: &str,
    ts_ms: u64,
    given: &[u8],
    now_ms: u64,
    max_skew_ms: u64,
) -> Result<(), AuthError> {
    check_labelled(
        mon_key,
        PEER,
        &[method.as_bytes(), &ts_ms.to_be_bytes()],
        given,
        ts_ms,
        now_ms,
        max_skew_ms,
        || AuthError::BadProof("mon.".into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(id: u64, fill: u8) -> ServiceSecret {
        ServiceSecret {
            id,
            secret: [fill; KEY_BYTES],
        }
    }

    fn claims() -> Claims {
        Claims {
            entity: "client.gw".into(),
            caps: BTreeMap::from([
                ("mon".to_string(), "allow r".to_string()),
                ("osd".to_string(), "allow rw pool=data".to_string()),
            ]),
            issued_ms: 1_000,
            expires_ms: 61_000,
        }
    }

    #[test]
    fn a_ticket_round_trips_between_caller_monitor_and_service() {
        let key = key_bytes("client.gw", &crate::generate_key()).unwrap();
        let nonce = [7u8; 16];
        // The caller proves its key; a monitor checks the proof.
        let p = proof(&key, "client.gw", 5_000, &nonce);
        check_proof(&key, "client.gw", 5_000, &nonce, &p, 6_000, 300_000).unwrap();
        assert!(matches!(
            check_proof(&key, "client.other", 5_000, &nonce, &p, 6_000, 300_000),
            Err(AuthError::BadProof(_))
        ));
        assert!(matches!(
            check_proof(&key, "client.gw", 5_000, &nonce, &p, 900_000, 300_000),
            Err(AuthError::Skew { .. })
        ));
        let wrong = key_bytes("x", &crate::generate_key()).unwrap();
        assert!(check_proof(&wrong, "client.gw", 5_000, &nonce, &p, 6_000, 300_000).is_err());

        let current = secret(2, 0xaa);
        let session = [0x5c; KEY_BYTES];
        let issued = issue(&current, &key, &claims(), [9; 16], session).unwrap();
        assert_ne!(
            issued.sealed_session, session,
            "the session key never travels in clear"
        );
        assert!(
            !issued.ticket.windows(KEY_BYTES).any(|w| w == session),
            "nor inside the ticket"
        );
        assert_eq!(open_session(&key, &issued).unwrap(), session);
        assert_ne!(open_session(&wrong, &issued).unwrap(), session);

        // A service holding the current and the previous secret verifies it.
        let v = verify(&[secret(1, 0x11), current.clone()], &issued.ticket, 30_000).unwrap();
        assert_eq!(v.claims, claims());
        assert_eq!(v.session, session);
        let sig = request_signature(&session, "/meridian.osd.OsdService/Op", 30_000, b"digest");
        check_request(
            &v.session,
            "/meridian.osd.OsdService/Op",
            30_000,
            b"digest",
            &sig,
            30_500,
            60_000,
        )
        .unwrap();
        for (method, ts, digest) in [
            (
                "/meridian.osd.OsdService/PgActivate",
                30_000,
                &b"digest"[..],
            ),
            ("/meridian.osd.OsdService/Op", 30_001, b"digest"),
            ("/meridian.osd.OsdService/Op", 30_000, b"other"),
        ] {
            assert!(matches!(
                check_request(&v.session, method, ts, digest, &sig, 30_500, 60_000),
                Err(AuthError::BadRequestSignature(_))
            ));
        }
        assert!(matches!(
            check_request(
                &v.session,
                "/meridian.osd.OsdService/Op",
                30_000,
                b"digest",
                &sig,
                200_000,
                60_000
            ),
            Err(AuthError::Skew { .. })
        ));

        // Expired, signed by a retired secret, or tampered with: refused.
        assert!(matches!(
            verify(std::slice::from_ref(&current), &issued.ticket, 61_000),
            Err(AuthError::Expired { .. })
        ));
        assert_eq!(
            verify(&[secret(1, 0x11)], &issued.ticket, 30_000),
            Err(AuthError::UnknownServiceSecret(2))
        );
        assert!(verify(&[secret(2, 0xab)], &issued.ticket, 30_000).is_err());
        for i in 0..issued.ticket.len() {
            let mut t = issued.ticket.clone();
            t[i] ^= 0x01;
            assert!(
                verify(std::slice::from_ref(&current), &t, 30_000).is_err(),
                "byte {i} flipped"
            );
        }
    }

    #[test]
    fn malformed_tickets_are_refused_without_panicking() {
        let current = secret(1, 3);
        let issued = issue(
            &current,
            &[1; KEY_BYTES],
            &claims(),
            [2; 16],
            [4; KEY_BYTES],
        )
        .unwrap();
        for n in 0..issued.ticket.len() {
            assert!(
                verify(std::slice::from_ref(&current), &issued.ticket[..n], 0).is_err(),
                "cut at {n}"
            );
        }
        let mut noise = 0x1234_5678u64;
        for len in [0usize, 1, 31, 32, 33, 90, 200, 5000] {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    noise = noise.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (noise >> 33) as u8
                })
                .collect();
            assert!(verify(std::slice::from_ref(&current), &junk, 0).is_err());
            let mut with_magic = MAGIC.to_vec();
            with_magic.extend(&junk);
            assert!(verify(std::slice::from_ref(&current), &with_magic, 0).is_err());
        }
        let mut big = claims();
        big.entity = "x".repeat(MAX_FIELD + 1);
        assert!(issue(&current, &[1; KEY_BYTES], &big, [0; 16], [0; KEY_BYTES]).is_err());
        assert_eq!(
            key_bytes("client.a", "c2hvcnQ="),
            Err(AuthError::BadKey("client.a".into()))
        );
    }
}
