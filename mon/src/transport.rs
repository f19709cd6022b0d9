//! Monitor-to-monitor Raft transport: one queue and one gRPC channel per peer.
//! Sending never blocks the Raft loop; a full queue drops the message (Raft
//! retransmits), and an unreachable peer is retried with a short backoff.

use meridian_auth::grpc::{Credential, Signed};
use meridian_proto::mon::RaftEnvelope;
use meridian_proto::mon::mon_service_client::MonServiceClient;
use protobuf::Message as _;
use raft::eraftpb::Message as RaftMessage;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// Per-peer queue depth before messages are dropped.
const PEER_QUEUE: usize = 1024;

/// Sends Raft messages to peer monitors.
#[derive(Clone)]
pub struct RaftTransport {
    peers: HashMap<u64, mpsc::Sender<RaftMessage>>,
}

impl RaftTransport {
    /// Starts one sender task per peer (`peers` excludes this monitor),
    /// calling as `cred` (the `mon.` key).
    pub fn start(fsid: String, peers: Vec<(u64, String)>, cred: Credential) -> Self {
        let mut map = HashMap::new();
        for (id, addr) in peers {
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            map.insert(id, tx);
            tokio::spawn(peer_sender(id, addr, fsid.clone(), cred.clone(), rx));
        }
        Self { peers: map }
    }

    /// Queues a message for its destination; drops it if the queue is full.
    pub fn send(&self, m: RaftMessage) {
        if let Some(tx) = self.peers.get(&m.to) {
            let _ = tx.try_send(m);
        }
    }
}

async fn peer_sender(
    id: u64,
    addr: String,
    fsid: String,
    cred: Credential,
    mut rx: mpsc::Receiver<RaftMessage>,
) {
    let endpoint = match meridian_auth::transport::endpoint(&addr) {
        Ok(e) => e
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(2))
            .tcp_nodelay(true),
        Err(e) => {
            tracing::error!(peer = id, %addr, error = %e, "invalid monitor address");
            return;
        }
    };
    let mut client: Option<MonServiceClient<Signed<tonic::transport::Channel>>> = None;
    while let Some(m) = rx.recv().await {
        let bytes = match m.write_to_bytes() {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode raft message");
                continue;
            }
        };
        if client.is_none() {
            match endpoint.connect().await {
                Ok(ch) => {
                    client = Some(
                        MonServiceClient::new(Signed::new(ch, cred.clone()))
                            .max_decoding_message_size(meridian_proto::MAX_MESSAGE_BYTES)
                            .max_encoding_message_size(meridian_proto::MAX_MESSAGE_BYTES),
                    )
                }
                Err(_) => {
                    // Peer down: drop what is queued now and retry later.
                    while rx.try_recv().is_ok() {}
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
        if let Some(c) = client.as_mut() {
            let req = RaftEnvelope {
                message: bytes.into(),
                fsid: fsid.clone(),
            };
            match c.raft(req).await {
                Ok(_) => {}
                Err(s) if meridian_auth::grpc::is_auth_refusal(&s) => {
                    // Keep the channel: the peer is up but refuses our key.
                    tracing::warn!(peer = id, error = %s.message(), "peer monitor refused raft message (mon. keys differ?)");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(_) => client = None,
            }
        }
    }
}
