//! What the pipeline decides for one packet, and the sending endpoint every step judges by.

use aya_ebpf::bindings::{TC_ACT_OK, TC_ACT_REDIRECT};
use netd_common::{
    Delivery, DropReason, EndpointInfo, NetworkInfo, NET_FLAG_ICC, NET_FLAG_INTERNAL,
    NET_FLAG_NO_MASQUERADE,
};

/// The packet goes on: `action` is the tc verdict, `delivery` the counter it lands in.
pub struct Delivered {
    pub net_id: u32,
    pub delivery: Delivery,
    pub action: i32,
}

/// The packet is dropped (TC_ACT_SHOT) and counted under `reason` on `net_id`.
#[derive(Clone, Copy)]
pub struct Dropped {
    pub net_id: u32,
    pub reason: DropReason,
}

pub type Verdict = Result<Delivered, Dropped>;

/// The endpoint a packet comes from, with its network's settings.
pub struct Sender<'a> {
    pub ep: &'a EndpointInfo,
    pub net: &'a NetworkInfo,
}

impl Sender<'_> {
    #[inline(always)]
    pub fn drop(&self, reason: DropReason) -> Dropped {
        Dropped {
            net_id: self.ep.net_id,
            reason,
        }
    }

    /// Handed to the host stack (TC_ACT_OK).
    #[inline(always)]
    pub fn to_host(&self) -> Verdict {
        Ok(self.delivered(Delivery::Host, TC_ACT_OK))
    }

    #[inline(always)]
    pub fn delivered(&self, delivery: Delivery, action: i32) -> Delivered {
        Delivered {
            net_id: self.ep.net_id,
            delivery,
            action,
        }
    }

    #[inline(always)]
    pub fn icc(&self) -> bool {
        self.net.flags & NET_FLAG_ICC != 0
    }

    #[inline(always)]
    pub fn internal(&self) -> bool {
        self.net.flags & NET_FLAG_INTERNAL != 0
    }

    #[inline(always)]
    pub fn masquerade(&self) -> bool {
        self.net.flags & NET_FLAG_NO_MASQUERADE == 0
    }
}

/// Helpers report a successful redirect with TC_ACT_REDIRECT.
pub const REDIRECTED: i32 = TC_ACT_REDIRECT;
