//! The Raft driver: owns the `RawNode`, runs the ready loop, applies committed
//! proposals to `MonState` and publishes each new map.
//!
//! Loop order (the one raft-rs documents and that was verified here): ready → send messages
//! → apply snapshot → apply committed → persist entries + hard state → send
//! persisted messages → advance → light ready → advance_apply.

use crate::auth::AuthState;
use crate::config_db::ConfigDb;
use crate::state::{CommandError, MonState};
use crate::storage::{AppliedImage, ImageData, MonStorage};
use crate::transport::RaftTransport;
use meridian_proto::mon::{ClusterMap, MonProposal};
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{Entry, EntryType, Message as RaftMessage};
use raft::{RawNode, StateRole};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Compact the Raft log every this many applied entries.
const COMPACT_EVERY: u64 = 500;

/// Outcome of a proposal once applied.
pub type ProposalResult = Result<(u64, String), CommandError>;

/// Inputs to the Raft loop.
pub enum NodeInput {
    /// A message from a peer monitor.
    Raft(Box<RaftMessage>),
    /// A local proposal; the reply comes after it is applied (or fails fast if not leader).
    Propose(
        Box<MonProposal>,
        oneshot::Sender<Result<ProposalResult, ProposeError>>,
    ),
}

/// Why a proposal could not be accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    /// Not the leader (the caller forwards to `leader`).
    #[error("not the leader (leader is mon.{leader})")]
    NotLeader { leader: u64 },
    /// Raft dropped it (e.g. leadership changed before it committed).
    #[error("proposal dropped: {0}; retry")]
    Dropped(String),
}

/// What the rest of the monitor can observe of Raft.
#[derive(Debug, Clone, Default)]
pub struct RaftStatus {
    /// This monitor's id.
    pub id: u64,
    /// Current leader (0 = unknown).
    pub leader: u64,
    /// Current term.
    pub term: u64,
    /// True when this monitor leads.
    pub is_leader: bool,
    /// Peers' matched log index as the leader sees it.
    pub progress: Vec<(u64, u64)>,
    /// Applied index.
    pub applied: u64,
}

/// Handles to a running Raft node.
#[derive(Clone)]
pub struct NodeHandle {
    /// Send inputs to the loop.
    pub tx: mpsc::Sender<NodeInput>,
    /// The latest applied cluster map.
    pub map: watch::Receiver<Arc<ClusterMap>>,
    /// The placement history (past maps peering reads).
    pub history: watch::Receiver<MapHistory>,
    /// Raft role and leader.
    pub status: watch::Receiver<RaftStatus>,
    /// Entities and service secrets as last applied (only for callers allowed to read them).
    pub auth: watch::Receiver<Arc<AuthState>>,
    /// The central configuration as last applied.
    pub config: watch::Receiver<Arc<ConfigDb>>,
}

/// Starts the Raft loop on the current runtime.
pub fn spawn(
    id: u64,
    storage: MonStorage,
    transport: RaftTransport,
    tick: Duration,
) -> anyhow::Result<NodeHandle> {
    let image = storage.snapshot_image();
    let state = if image.data.is_empty() {
        MonState::default()
    } else {
        MonState::decode_image(image.data.encode().as_slice())?
    };
    let cfg = raft::Config {
        id,
        election_tick: 10,
        heartbeat_tick: 2,
        applied: image.index,
        check_quorum: true,
        pre_vote: true,
        max_inflight_msgs: 256,
        max_size_per_msg: 1 << 20,
        ..Default::default()
    };
    cfg.validate()?;
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let node = RawNode::new(&cfg, storage.clone(), &logger)?;
    let (tx, rx) = mpsc::channel(4096);
    let (map_tx, map_rx) = watch::channel(Arc::new(state.map.clone()));
    let (history_tx, history_rx) = watch::channel(Arc::new(state.history.clone()));
    let (auth_tx, auth_rx) = watch::channel(Arc::new(state.auth.clone()));
    let (config_tx, config_rx) = watch::channel(Arc::new(state.config.clone()));
    let (status_tx, status_rx) = watch::channel(RaftStatus {
        id,
        ..Default::default()
    });
    let mut driver = Driver {
        node,
        storage,
        transport,
        state,
        waiters: HashMap::new(),
        map_tx,
        history_tx,
        auth_tx,
        config_tx,
        status_tx,
        applied_since_compact: 0,
    };
    tokio::spawn(async move { driver.run(rx, tick).await });
    Ok(NodeHandle {
        tx,
        map: map_rx,
        history: history_rx,
        status: status_rx,
        auth: auth_rx,
        config: config_rx,
    })
}

/// The placement history as the Raft loop last published it.
pub type MapHistory = Arc<std::collections::BTreeMap<u64, Arc<ClusterMap>>>;

struct Driver {
    node: RawNode<MonStorage>,
    storage: MonStorage,
    transport: RaftTransport,
    state: MonState,
    waiters: HashMap<u64, oneshot::Sender<Result<ProposalResult, ProposeError>>>,
    map_tx: watch::Sender<Arc<ClusterMap>>,
    history_tx: watch::Sender<MapHistory>,
    auth_tx: watch::Sender<Arc<AuthState>>,
    config_tx: watch::Sender<Arc<ConfigDb>>,
    status_tx: watch::Sender<RaftStatus>,
    applied_since_compact: u64,
}

impl Driver {
    async fn run(&mut self, mut rx: mpsc::Receiver<NodeInput>, tick: Duration) {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => { self.node.tick(); }
                input = rx.recv() => {
                    let Some(input) = input else { return };
                    self.handle(input);
                    // Drain what else is queued so one Ready covers it (batched persistence).
                    while let Ok(more) = rx.try_recv() {
                        self.handle(more);
                    }
                }
            }
            if let Err(e) = self.on_ready() {
                // A failed durable write means this monitor can no longer be trusted.
                tracing::error!(error = %e, "raft persistence failed; exiting so the monitor restarts from disk");
                std::process::exit(1);
            }
            self.publish_status();
        }
    }

    fn handle(&mut self, input: NodeInput) {
        match input {
            NodeInput::Raft(m) => {
                if let Err(e) = self.node.step(*m) {
                    tracing::debug!(error = %e, "dropped raft message");
                }
            }
            NodeInput::Propose(p, reply) => {
                if self.node.raft.state != StateRole::Leader {
                    let _ = reply.send(Err(ProposeError::NotLeader {
                        leader: self.node.raft.leader_id,
                    }));
                    return;
                }
                let id = p.id;
                match self.node.propose(vec![], p.encode_to_vec()) {
                    Ok(()) => {
                        self.waiters.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(ProposeError::Dropped(e.to_string())));
                    }
                }
            }
        }
    }

    fn on_ready(&mut self) -> anyhow::Result<()> {
        if !self.node.has_ready() {
            return Ok(());
        }
        let mut ready = self.node.ready();
        self.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snap = ready.snapshot().clone();
            self.storage.install_snapshot(&snap)?;
            self.state = MonState::decode_image(snap.get_data())?;
            self.map_tx.send_replace(Arc::new(self.state.map.clone()));
            self.history_tx
                .send_replace(Arc::new(self.state.history.clone()));
            self.auth_tx.send_replace(Arc::new(self.state.auth.clone()));
            self.config_tx
                .send_replace(Arc::new(self.state.config.clone()));
        }
        self.apply(ready.take_committed_entries())?;
        let hs = ready.hs().cloned();
        self.storage.persist(ready.entries(), hs.as_ref())?;
        self.send(ready.take_persisted_messages());
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            let mut hs = self.node.raft.hard_state();
            hs.commit = commit;
            self.storage.persist(&[], Some(&hs))?;
        }
        self.send(light.take_messages());
        self.apply(light.take_committed_entries())?;
        self.node.advance_apply();
        if self.applied_since_compact >= COMPACT_EVERY {
            self.applied_since_compact = 0;
            let idx = self.storage.compact()?;
            tracing::debug!(index = idx, "compacted raft log");
        }
        Ok(())
    }

    fn send(&self, msgs: Vec<RaftMessage>) {
        for m in msgs {
            self.transport.send(m);
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) -> anyhow::Result<()> {
        let mut changed = false;
        let mut last_applied = None;
        let history_before = (self.state.history_first(), self.state.history.len());
        let auth_before = self.state.auth_changes;
        let config_before = self.state.config.version;
        for e in entries {
            let (index, term) = (e.index, e.term);
            if e.get_entry_type() == EntryType::EntryNormal && !e.get_data().is_empty() {
                let before = self.state.map.epoch;
                let (pid, result) = match MonProposal::decode(e.get_data()) {
                    Ok(p) => {
                        let r = self.state.apply(&p);
                        (p.id, r)
                    }
                    Err(err) => {
                        tracing::error!(index, error = %err, "undecodable raft entry skipped");
                        (0, Err(CommandError::Invalid("undecodable entry".into())))
                    }
                };
                changed |= self.state.map.epoch != before;
                if let Some(w) = self.waiters.remove(&pid) {
                    let _ = w.send(Ok(result.map(|m| (self.state.map.epoch, m))));
                }
            } else if e.get_entry_type() == EntryType::EntryConfChange {
                // Static membership: conf changes are not proposed by Meridian yet.
                tracing::warn!(index, "ignoring raft conf change entry");
            }
            last_applied = Some((index, term));
            self.applied_since_compact += 1;
        }
        // Encoded only when a snapshot is taken: the map history makes it big.
        if let Some((index, term)) = last_applied {
            self.storage.set_applied_image(AppliedImage {
                index,
                term,
                data: ImageData::State(Arc::new(self.state.clone())),
            });
        }

        if self.state.auth_changes != auth_before {
            self.auth_tx.send_replace(Arc::new(self.state.auth.clone()));
        }
        if self.state.config.version != config_before {
            self.config_tx
                .send_replace(Arc::new(self.state.config.clone()));
        }
        // History first: whoever sees map N can then fetch history up to N.
        if (self.state.history_first(), self.state.history.len()) != history_before {
            self.history_tx
                .send_replace(Arc::new(self.state.history.clone()));
        }
        if changed {
            let m = &self.state.map;
            metrics::gauge!("meridian_mon_map_epoch").set(m.epoch as f64);
            metrics::gauge!("meridian_mon_osds", "state" => "up")
                .set(m.osds.iter().filter(|o| o.up).count() as f64);
            metrics::gauge!("meridian_mon_osds", "state" => "in")
                .set(m.osds.iter().filter(|o| o.r#in).count() as f64);
            metrics::gauge!("meridian_mon_pools").set(m.pools.len() as f64);
            self.map_tx.send_replace(Arc::new(self.state.map.clone()));
        }
        // Proposals whose leader stepped down will never be applied here.
        if self.node.raft.state != StateRole::Leader && !self.waiters.is_empty() {
            for (_, w) in self.waiters.drain() {
                let _ = w.send(Err(ProposeError::Dropped("leadership changed".into())));
            }
        }
        Ok(())
    }

    fn publish_status(&self) {
        let r = &self.node.raft;
        let progress = if r.state == StateRole::Leader {
            r.prs().iter().map(|(id, p)| (*id, p.matched)).collect()
        } else {
            Vec::new()
        };
        let st = RaftStatus {
            id: r.id,
            leader: r.leader_id,
            term: r.term,
            is_leader: r.state == StateRole::Leader,
            progress,
            applied: r.raft_log.applied,
        };
        self.status_tx.send_if_modified(|old| {
            let changed = old.leader != st.leader
                || old.term != st.term
                || old.is_leader != st.is_leader
                || old.applied != st.applied
                || old.progress != st.progress;
            if changed {
                metrics::gauge!("meridian_mon_raft_term").set(st.term as f64);
                metrics::gauge!("meridian_mon_raft_applied_index").set(st.applied as f64);
                metrics::gauge!("meridian_mon_is_leader").set(if st.is_leader { 1.0 } else { 0.0 });
                *old = st;
            }
            changed
        });
    }
}

/// Decodes a Raft message received from a peer.
pub fn decode_raft_message(bytes: &[u8]) -> Result<RaftMessage, String> {
    RaftMessage::parse_from_bytes(bytes).map_err(|e| e.to_string())
}
