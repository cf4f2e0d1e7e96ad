//! The program's only observability: one packet/byte counter bump per packet.

use aya_ebpf::programs::TcContext;

use crate::maps::STATS;

/// Adds this packet to the counter at `index` (`delivery_slot`/`drop_slot`). An index past
/// the array (a network id >= MAX_NETWORKS) is not counted rather than misfiled.
#[inline(always)]
pub fn count(ctx: &TcContext, index: u32) {
    if let Some(counter) = STATS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, so no other program run touches it concurrently.
        unsafe {
            (*counter).packets += 1;
            (*counter).bytes += u64::from(ctx.len());
        }
    }
}
