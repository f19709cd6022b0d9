//! Writes the seed inputs of every fuzz target into `fuzz/corpus/TARGET/`
//! (`cargo run -p meridian-fuzz --bin seed-corpus`): valid requests,
//! proposals, snapshots, records and CRUSH maps, which the mutations start
//! from. Inputs that once found a bug are added beside them by hand.

use meridian_crush::builder::CrushBuilder;
use meridian_proto::mon::mon_command::Cmd;
use meridian_proto::{mon, multisite};
use prost::Message as _;
use std::path::Path;

fn proposals() -> Vec<mon::MonProposal> {
    let fsid = "8f2c1a4e-0000-4000-8000-000000000001".to_string();
    let mut cmds = vec![Cmd::Bootstrap(mon::Bootstrap {
        fsid: fsid.clone(),
        mons: vec![mon::MonInfo {
            id: 1,
            addr: "127.0.0.1:6789".into(),
        }],
        default_failure_domain: "host".into(),
    })];
    for id in 0..3 {
        cmds.push(Cmd::OsdBoot(mon::OsdBootRequest {
            empty_store: true,
            osd_id: id,
            addr: format!("127.0.0.1:{}", 6800 + id),
            fsid: fsid.clone(),
            weight: 0x10000,
            device_class: "ssd".into(),
            host: format!("host-{id}"),
            boot_nonce: u64::from(id) + 1,
            ..Default::default()
        }));
    }
    cmds.push(Cmd::PoolCreate(mon::PoolCreate {
        name: "data".into(),
        pg_num: 8,
        size: 3,
        ..Default::default()
    }));
    cmds.push(Cmd::OsdMarkDown(mon::OsdMarkDown {
        osd_id: 1,
        ..Default::default()
    }));
    cmds.into_iter()
        .enumerate()
        .map(|(i, c)| {
            meridian_mon::state::proposal(i as u64 + 1, 1, 1_700_000_000_000 + i as u64, c)
        })
        .collect()
}

fn framed(ps: &[mon::MonProposal]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in ps {
        let b = p.encode_to_vec();
        out.extend_from_slice(&(b.len() as u16).to_le_bytes());
        out.extend_from_slice(&b);
    }
    out
}

fn crush_map() -> meridian_crush::map::CrushMap {
    let mut b = CrushBuilder::new();
    for id in 0..6 {
        let host = format!("h{}", id / 2);
        b.add_osd(id, 0x10000, Some("ssd"), &[("host", host.as_str())])
            .expect("add osd");
    }
    b.add_replicated_rule("replicated_rule", "default", "host", None)
        .expect("rule");
    b.build()
}

fn s3_requests() -> Vec<Vec<u8>> {
    let chunked_head = "PUT /examplebucket/chunkObject.txt\n\
        host: s3.amazonaws.com\n\
        x-amz-date: 20130524T000000Z\n\
        authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9\n\
        x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER\n\
        content-encoding: aws-chunked\n\n";
    let mut chunked = chunked_head.as_bytes().to_vec();
    chunked.extend_from_slice(
        b"5;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\nhello\r\n\
          0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\
          x-amz-checksum-crc32:DUoRhQ==\r\nx-amz-trailer-signature:0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n\r\n",
    );
    vec![
        b"GET /bucket/key?versionId=3&acl\nhost: bucket.s3.localhost:7480\ndate: Tue, 27 Mar 2007 19:36:42 +0000\nauthorization: AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=\n\n".to_vec(),
        b"GET /bucket/key?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D\n\n".to_vec(),
        b"GET /bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404\nhost: examplebucket.s3.amazonaws.com\n\n".to_vec(),
        b"POST /bucket\ncontent-type: multipart/form-data; boundary=xyz\n\n--xyz\r\n".to_vec(),
        chunked,
    ]
}

fn grpc_requests() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..meridian_fuzz::REQUEST_TYPES.len())
        .map(|i| vec![i as u8])
        .collect();
    let command = mon::MonCommand {
        cmd: Some(Cmd::PoolCreate(mon::PoolCreate {
            name: "data".into(),
            pg_num: 32,
            size: 3,
            ..Default::default()
        })),
    };
    let at = |name: &str| {
        meridian_fuzz::REQUEST_TYPES
            .iter()
            .position(|t| *t == name)
            .expect("listed") as u8
    };
    let mut v = vec![at("mon.MonCommand")];
    v.extend(command.encode_to_vec());
    out.push(v);
    let key = multisite::SystemKey {
        access_key: "AK".into(),
        secret_key: "secret".into(),
    };
    let list = meridian_sync::peer::sign(
        multisite::ListLogRequest {
            shard: 3,
            after: "00000000000000000042".into(),
            max: 100,
            ..Default::default()
        },
        &key,
    );
    let mut v = vec![at("multisite.ListLogRequest")];
    v.extend(list.encode_to_vec());
    out.push(v);
    out
}

fn raft_messages() -> Vec<Vec<u8>> {
    use protobuf::Message as _;
    let mut m = raft::eraftpb::Message::default();
    m.set_msg_type(raft::eraftpb::MessageType::MsgAppend);
    m.to = 2;
    m.from = 1;
    m.term = 3;
    m.index = 10;
    m.log_term = 3;
    let e = raft::eraftpb::Entry {
        term: 3,
        index: 11,
        data: proposals()[4].encode_to_vec().into(),
        ..Default::default()
    };
    m.entries = vec![e].into();
    vec![m.write_to_bytes().expect("encode raft message")]
}

fn write(dir: &Path, target: &str, inputs: Vec<Vec<u8>>) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("create corpus dir");
    for (i, input) in inputs.into_iter().enumerate() {
        std::fs::write(d.join(format!("seed-{i:02}")), input).expect("write seed");
    }
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let ps = proposals();
    let mut state = meridian_mon::state::MonState::default();
    for p in &ps {
        state.apply(p).expect("seed proposals apply");
    }
    let map = crush_map();
    write(&dir, "s3_request", s3_requests());
    write(&dir, "grpc_requests", grpc_requests());
    write(&dir, "mon_proposals", vec![framed(&ps), framed(&ps[..1])]);
    write(
        &dir,
        "mon_image",
        vec![
            meridian_mon::state::MonState::default()
                .image()
                .encode_to_vec(),
            state.image().encode_to_vec(),
        ],
    );
    write(&dir, "raft_message", raft_messages());
    write(
        &dir,
        "store_records",
        meridian_objectstore::fuzzing::seeds(),
    );
    write(
        &dir,
        "crush_binary",
        vec![meridian_crush::binary::encode(&map)],
    );
    write(
        &dir,
        "crush_text",
        vec![meridian_crush::text::format(&map).into_bytes()],
    );
    for t in meridian_fuzz::TARGETS {
        let n = std::fs::read_dir(dir.join(t.name))
            .map(|d| d.count())
            .unwrap_or(0);
        println!("{}: {n} seeds", t.name);
    }
}
