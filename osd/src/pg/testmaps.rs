//! Test support: cluster maps produced by the monitors' own state machine
//! (`meridian_mon::state::MonState`), so peering tests see exactly the
//! epochs, up_thru and lost marks a real monitor would publish.

use meridian_client::MapView;
use meridian_mon::state::{MonState, proposal};
use meridian_proto::mon::mon_command::Cmd;
use meridian_proto::mon::{
    Bootstrap, MonInfo, OsdAlive, OsdBootRequest, OsdLost, OsdMarkDown, OsdMarkOut, OsdSetIn,
    PoolCreate,
};
use std::collections::BTreeMap;

const FSID: &str = "00000000-0000-4000-8000-00000000abcd";

/// A monitor state machine plus every map it published.
pub struct TestMon {
    st: MonState,
    /// Every published map by epoch.
    pub maps: BTreeMap<u64, MapView>,
    nonces: BTreeMap<u32, u64>,
    now_ms: u64,
}

impl TestMon {
    /// A cluster of `osds` OSDs, one per host, all up, and pool 1 with
    /// `pg_num` PGs of `size`/`min_size`.
    pub fn new(osds: u32, pg_num: u32, size: u32, min_size: u32) -> Self {
        let mut m = Self {
            st: MonState::default(),
            maps: BTreeMap::new(),
            nonces: BTreeMap::new(),
            now_ms: 1_000_000,
        };
        m.cmd(Cmd::Bootstrap(Bootstrap {
            fsid: FSID.into(),
            mons: vec![MonInfo {
                id: 1,
                addr: "127.0.0.1:1".into(),
            }],
            default_failure_domain: "host".into(),
        }));
        for id in 0..osds {
            m.boot(id);
        }
        m.cmd(Cmd::PoolCreate(PoolCreate {
            name: "p".into(),
            pg_num,
            size,
            min_size,
            ..Default::default()
        }));
        m
    }

    fn cmd(&mut self, c: Cmd) -> u64 {
        self.now_ms += 1000;
        let r = self.st.apply(&proposal(1, 1, self.now_ms, c));
        if let Err(e) = r {
            panic!("test monitor refused a command: {e}");
        }
        let epoch = self.st.map.epoch;
        self.maps
            .entry(epoch)
            .or_insert_with(|| MapView::new(self.st.map.clone()));
        epoch
    }

    /// The newest map.
    pub fn view(&self) -> MapView {
        MapView::new(self.st.map.clone())
    }

    /// The newest epoch.
    pub fn epoch(&self) -> u64 {
        self.st.map.epoch
    }

    /// (Re)boots an OSD as a new instance.
    pub fn boot(&mut self, id: u32) -> u64 {
        self.boot_store(id, false)
    }

    /// Boots an OSD whose store holds no PG (`empty`: a new or replaced disk).
    pub fn boot_store(&mut self, id: u32, empty: bool) -> u64 {
        let nonce = self.nonces.get(&id).copied().unwrap_or(0) + 1;
        self.nonces.insert(id, nonce);
        self.cmd(Cmd::OsdBoot(OsdBootRequest {
            osd_id: id,
            addr: format!("127.0.0.1:{}", 7000 + id),
            fsid: FSID.into(),
            weight: 0x10000,
            host: format!("host{id}"),
            boot_nonce: nonce,
            empty_store: empty,
            ..Default::default()
        }))
    }

    /// Marks an OSD down.
    pub fn down(&mut self, id: u32) -> u64 {
        self.cmd(Cmd::OsdMarkDown(OsdMarkDown {
            osd_id: id,
            boot_nonce: 0,
            reason: "test".into(),
        }))
    }

    /// Marks a down OSD out (its PGs remap).
    pub fn out(&mut self, id: u32) -> u64 {
        self.cmd(Cmd::OsdMarkOut(OsdMarkOut { osd_id: id }))
    }

    /// Marks an OSD in or out as an operator would (`osd in` / `osd out`).
    pub fn set_in(&mut self, id: u32, r#in: bool) -> u64 {
        self.cmd(Cmd::OsdSetIn(OsdSetIn { osd_id: id, r#in }))
    }

    /// Raises an OSD's up_thru (a primary's request before activation).
    pub fn alive(&mut self, id: u32, want: u64) -> u64 {
        let nonce = self.nonces.get(&id).copied().unwrap_or(0);
        self.cmd(Cmd::OsdAlive(OsdAlive {
            osd_id: id,
            boot_nonce: nonce,
            want_up_thru: want,
        }))
    }

    /// Records an OSD's fullness as the monitors would from its heartbeats.
    pub fn fullness(&mut self, id: u32, state: meridian_proto::mon::FullState) -> u64 {
        self.cmd(Cmd::OsdFullness(meridian_proto::mon::OsdFullness {
            osd_id: id,
            state: state as i32,
        }))
    }

    /// Declares a down OSD lost.
    pub fn lost(&mut self, id: u32) -> u64 {
        self.cmd(Cmd::OsdLost(OsdLost { osd_id: id }))
    }

    /// The placement history from `from` on: the map in force at `from`,
    /// then every later map, as `GetMapHistory` serves it.
    pub fn history_from(&self, from: u64) -> Vec<MapView> {
        let mut out: Vec<MapView> = Vec::new();
        if let Some((_, base)) = self.maps.range(..=from).next_back() {
            out.push(base.clone());
        }
        out.extend(self.maps.range(from + 1..).map(|(_, v)| v.clone()));
        out
    }
}
