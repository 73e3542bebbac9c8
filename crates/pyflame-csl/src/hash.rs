//! Stable 64-bit FNV-1a hashing for the on-disk cache key.

use crate::plan::{BufKind, Plan};
use crate::CodeGenOptions;

/// FNV-1a over bytes, continuing from `h`.
pub fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// FNV-1a offset basis.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Hex key over the graph's structure and layouts, the input values and the options.
pub fn cache_key(graph: &pyflame_ir::Graph, plan: &Plan, opts: &CodeGenOptions) -> String {
    let mut h = FNV_OFFSET;
    for w in graph.structural_key() {
        h = fnv1a(h, &w.to_le_bytes());
    }
    for n in &graph.nodes {
        h = fnv1a(h, n.layout.to_string().as_bytes());
        if let pyflame_ir::Op::Full { value } = n.op {
            h = fnv1a(h, &value.to_le_bytes());
        }
    }
    for b in &plan.bufs {
        if let BufKind::Input(data) = &b.kind {
            for v in data {
                h = fnv1a(h, &v.to_le_bytes());
            }
        }
    }
    let o = format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
        opts.target.name(),
        opts.emit_comments,
        opts.fabric_width,
        opts.fabric_height,
        opts.runtime_address,
        opts.channels,
        opts.simulate,
        opts.debug_info,
        opts.optimize,
        env!("CARGO_PKG_VERSION")
    );
    h = fnv1a(h, o.as_bytes());
    format!("{h:016x}")
}
