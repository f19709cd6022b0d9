//! Fuzz targets: every parser that takes bytes from a socket, a disk or an
//! operator. Each target takes arbitrary bytes and may refuse them with an
//! error; a panic, a hang or an outsized allocation is a bug.
//!
//! `tests/corpus.rs` runs every target over its committed corpus
//! (`fuzz/corpus/TARGET/`) and a fixed number of mutations of it on every
//! `cargo test`; the README's fuzzing section has the long runs.

use meridian_proto::{mon, multisite, osd};
use prost::Message as _;

/// One fuzz target.
pub struct Target {
    /// Directory name of its corpus.
    pub name: &'static str,
    /// Runs the target on one input.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "s3_request",
        run: s3_request,
    },
    Target {
        name: "grpc_requests",
        run: grpc_requests,
    },
    Target {
        name: "mon_proposals",
        run: mon_proposals,
    },
    Target {
        name: "mon_image",
        run: mon_image,
    },
    Target {
        name: "raft_message",
        run: raft_message,
    },
    Target {
        name: "store_records",
        run: store_records,
    },
    Target {
        name: "crush_binary",
        run: crush_binary,
    },
    Target {
        name: "crush_text",
        run: crush_text,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// An S3 request: the head (`METHOD URI`, header lines) up to the first
/// empty line, the rest the body (through the aws-chunked guard when the
/// headers ask for signed chunks).
pub fn s3_request(data: &[u8]) {
    let split = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(data.len());
    let head = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 2..).unwrap_or_default();
    meridian_gateway::fuzzing::request(&head, body);
}

macro_rules! request_types {
    ($($m:ident :: $t:ident),* $(,)?) => {
        /// Every request message of the monitor, OSD and zone services.
        pub const REQUEST_TYPES: &[&str] = &[$(concat!(stringify!($m), ".", stringify!($t))),*];

        /// Decodes `bytes` as request type `index` (mod the count).
        fn decode_request(index: usize, bytes: &[u8]) {
            let decoders: &[fn(&[u8])] = &[$(|b| { let _ = $m::$t::decode(b); }),*];
            decoders[index % decoders.len()](bytes);
        }
    };
}

request_types!(
    mon::SubscribeRequest,
    mon::GetMapRequest,
    mon::MapHistoryRequest,
    mon::OsdAlive,
    mon::OsdBootRequest,
    mon::OsdHeartbeatRequest,
    mon::MonCommand,
    mon::AuthGetRequest,
    mon::AuthenticateRequest,
    mon::ZoneSecretsRequest,
    mon::ServiceSecretsRequest,
    mon::StatusRequest,
    mon::GatewayBeacon,
    mon::RaftEnvelope,
    osd::OpRequest,
    osd::RepOpRequest,
    osd::PgQueryRequest,
    osd::PgActivateRequest,
    osd::PushRequest,
    osd::PullRequest,
    osd::PgListRequest,
    osd::ScrubRequest,
    osd::PgRemoveRequest,
    osd::PgNotifyRequest,
    osd::PgDescribeRequest,
    osd::OsdStatusRequest,
    multisite::PullRealmRequest,
    multisite::GetPeriodRequest,
    multisite::PushPeriodRequest,
    multisite::CommitPeriodRequest,
    multisite::ForwardBucketRequest,
    multisite::ForwardUserRequest,
    multisite::LogPositionsRequest,
    multisite::ListLogRequest,
    multisite::ListBilogRequest,
    multisite::ListShardRequest,
    multisite::BilogPendingRequest,
    multisite::ListMetadataRequest,
    multisite::GetMetadataRequest,
    multisite::FetchObjectRequest,
    multisite::GatewayStateRequest,
    multisite::SetZoneReadOnlyRequest,
    multisite::SyncMarkersRequest,
    mon::GetConfigRequest,
);

/// The first byte picks a request type, the rest is its encoding; a zone
/// request that decodes also goes through signature verification.
pub fn grpc_requests(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    decode_request(pick as usize, rest);
    if let Ok(r) = multisite::ListLogRequest::decode(rest) {
        let _ = meridian_sync::peer::verify(&r, |_| Some("secret".into()));
    }
}

/// Length-prefixed (`u16` LE) monitor proposals applied in order to one
/// monitor state: every command the monitors replicate, in any sequence.
pub fn mon_proposals(data: &[u8]) {
    let mut state = meridian_mon::state::MonState::default();
    let mut rest = data;
    while rest.len() >= 2 {
        let n = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let body = &rest[2..];
        let take = n.min(body.len());
        if let Ok(p) = mon::MonProposal::decode(&body[..take]) {
            let _ = state.apply(&p);
        }
        rest = &body[take..];
    }
    // The state survives a snapshot of itself.
    let image = state.image().encode_to_vec();
    let restored = meridian_mon::state::MonState::decode_image(&image);
    assert!(
        restored.is_ok(),
        "a snapshot of an applied state does not decode"
    );
}

/// A monitor snapshot as read back from disk.
pub fn mon_image(data: &[u8]) {
    if let Ok(state) = meridian_mon::state::MonState::decode_image(data) {
        let again = state.image().encode_to_vec();
        assert!(meridian_mon::state::MonState::decode_image(&again).is_ok());
    }
}

/// A Raft message from a peer monitor.
pub fn raft_message(data: &[u8]) {
    let _ = meridian_mon::node::decode_raft_message(data);
}

/// The object store's on-disk records (object records, superblock, label,
/// KV keys).
pub fn store_records(data: &[u8]) {
    meridian_objectstore::fuzzing::decode_all(data);
}

/// Retry budgets above this are accepted by the decoders (up to
/// `MAX_TRIES`) but make a bad map's placement take seconds per input: the
/// targets decode such maps and skip placing with them, to keep fuzzing fast.
const FAST_TRIES: u32 = 100;

/// A binary CRUSH map (`osd setcrushmap`): decoded, re-encoded (which must
/// decode to the same bytes again), and used to place a few PGs.
pub fn crush_binary(data: &[u8]) {
    let Ok(map) = meridian_crush::binary::decode(data) else {
        return;
    };
    let bytes = meridian_crush::binary::encode(&map);
    let again = meridian_crush::binary::decode(&bytes).expect("a re-encoded map decodes");
    assert_eq!(
        meridian_crush::binary::encode(&again),
        bytes,
        "encoding is not stable"
    );
    place(&map);
}

/// A text CRUSH map (`crushtool -c` input), placed with as above.
pub fn crush_text(data: &[u8]) {
    if let Ok(map) = meridian_crush::text::parse(&String::from_utf8_lossy(data)) {
        place(&map);
    }
}

fn place(map: &meridian_crush::map::CrushMap) {
    if map.retry_budgets().any(|(_, n)| n > FAST_TRIES) {
        return;
    }
    let weights = vec![0x10000u32; map.max_devices().clamp(0, 4096) as usize];
    let rules: Vec<u32> = map.rules().map(|r| r.id).collect();
    for rule in rules {
        for x in 0..8 {
            let _ = map.do_rule(rule, x, 3, &weights);
        }
    }
}
