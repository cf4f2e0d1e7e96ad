//! The direct-mapped endpoint caches EP_IFX_CACHE and EP_IP_CACHE, kept as copies of
//! EP_BY_IFINDEX and EP_BY_IP so the program can skip the hash lookup.
//!
//! Invariant: a non-empty slot holds exactly the hash map's current entry for its key, and
//! sits at that key's slot. So the program may serve a slot whose key matches, and falls
//! back to the hash otherwise. To keep it, a slot is filled after its hash entry is written
//! and emptied before its hash entry goes. A slot changes from one endpoint to another (or
//! to another copy of the same key) only through empty, so a lookup racing the rewrite of
//! an array value never mixes two endpoints' fields.

use std::collections::BTreeMap;

use aya::maps::{Array, MapData};
use netd_common::{ifindex_slot, ip_slot, EndpointInfo, EP_CACHE_SLOTS};

const EMPTY: EndpointInfo = EndpointInfo {
    host_ifindex: 0,
    net_id: 0,
    ip: [0; 4],
    mac: [0; 6],
    _pad: [0; 2],
};

/// Which hash map a cache fronts: how its key is read from an endpoint and slotted.
#[derive(Clone, Copy)]
pub(super) enum Keyed {
    ByIfindex,
    ByIp,
}

impl Keyed {
    fn key(self, ep: &EndpointInfo) -> u32 {
        match self {
            Keyed::ByIfindex => ep.host_ifindex,
            Keyed::ByIp => u32::from_ne_bytes(ep.ip),
        }
    }

    fn slot(self, key: u32) -> u32 {
        match self {
            Keyed::ByIfindex => ifindex_slot(key),
            Keyed::ByIp => ip_slot(key),
        }
    }
}

/// One cache array and the hash map it fronts.
pub(super) struct EndpointCache {
    /// Slot -> copy of a hash entry; all-zero is empty.
    slots: Array<MapData, EndpointInfo>,
    keyed: Keyed,
}

impl EndpointCache {
    pub(super) fn new(slots: Array<MapData, EndpointInfo>, keyed: Keyed) -> Self {
        Self { slots, keyed }
    }

    /// The slot's endpoint, if it holds `key`.
    fn holding(&self, key: u32) -> anyhow::Result<Option<EndpointInfo>> {
        let cur = self.slots.get(&self.keyed.slot(key), 0)?;
        Ok((cur != EMPTY && self.keyed.key(&cur) == key).then_some(cur))
    }

    /// Call after writing `ep` to the hash: caches it if its slot is empty or already holds
    /// its key. A slot held by another endpoint stays theirs; `ep` is then found via the hash.
    /// An endpoint with host ifindex 0 would look empty and is never cached.
    pub(super) fn filled(&mut self, ep: &EndpointInfo) -> anyhow::Result<()> {
        if ep.host_ifindex == 0 {
            return Ok(());
        }
        let slot = self.keyed.slot(self.keyed.key(ep));
        let cur = self.slots.get(&slot, 0)?;
        if cur == *ep {
            return Ok(());
        }
        if cur != EMPTY {
            if self.keyed.key(&cur) != self.keyed.key(ep) {
                return Ok(());
            }
            self.slots.set(slot, EMPTY, 0)?;
        }
        self.slots.set(slot, *ep, 0)?;
        Ok(())
    }

    /// Call before removing `key` from the hash: empties its slot if it holds that key.
    pub(super) fn evict(&mut self, key: u32) -> anyhow::Result<()> {
        if self.holding(key)?.is_some() {
            self.slots.set(self.keyed.slot(key), EMPTY, 0)?;
        }
        Ok(())
    }

    /// Makes every slot agree with `entries` (the hash map's whole content, key -> entry):
    /// the lowest key of each slot is cached, every other slot is emptied. Reads all slots.
    pub(super) fn rebuild(&mut self, entries: &BTreeMap<u32, EndpointInfo>) -> anyhow::Result<()> {
        let mut wanted: BTreeMap<u32, EndpointInfo> = BTreeMap::new();
        for (&key, ep) in entries {
            if ep.host_ifindex != 0 && self.keyed.key(ep) == key {
                wanted.entry(self.keyed.slot(key)).or_insert(*ep);
            }
        }
        for slot in 0..EP_CACHE_SLOTS {
            let cur = self.slots.get(&slot, 0)?;
            let want = wanted.get(&slot).copied().unwrap_or(EMPTY);
            if cur == want {
                continue;
            }
            if cur != EMPTY {
                self.slots.set(slot, EMPTY, 0)?;
            }
            if want != EMPTY {
                self.slots.set(slot, want, 0)?;
            }
        }
        Ok(())
    }
}
