//! CSL text of a [`Gather`]: the destination tile is walked element by element and the
//! source position is recomputed with the same integer arithmetic as
//! [`crate::gather::source_of`]; elements held by the selected source tile are copied.

use crate::gather::{At, Gather};
use crate::plan::Plan;
use std::fmt::Write;

fn coord(a: At, own: &str) -> String {
    match a {
        At::Own => format!("@as(u32, {own})"),
        At::Fixed(v) => v.to_string(),
    }
}

/// CSL statements of a gather step.
pub fn gather(plan: &Plan, g: &Gather) -> String {
    let (d, sp) = (&g.dst_pl, &g.src_pl);
    let (tr, tc) = (d.tile_rows(), d.tile_cols());
    let (str_, stc) = (sp.tile_rows(), sp.tile_cols());
    let r = if d.rows == 1 {
        "0".to_string()
    } else {
        format!("@as(u32, py) * {tr} + i")
    };
    let c = if d.cols == 1 {
        "0".to_string()
    } else {
        format!("@as(u32, px) * {tc} + j")
    };
    let terms = g.map.terms();
    let s_expr = if g.map.flat {
        "f".to_string()
    } else {
        std::iter::once(g.map.base.to_string())
            .chain(terms.iter().map(|&(dv, m, off, c)| {
                if off == 0 {
                    format!("(f / {dv}) % {m} * {c}")
                } else {
                    format!("((f / {dv}) % {m} - {off}) * {c}")
                }
            }))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    let ox = if sp.cols == 1 {
        format!("(if (@as(u32, px) < {pc}) @as(u32, px) else 0)", pc = sp.pc)
    } else {
        format!("sc / {stc}")
    };
    let oy = if sp.rows == 1 {
        format!("(if (@as(u32, py) < {pr}) @as(u32, py) else 0)", pr = sp.pr)
    } else {
        format!("sr / {str_}")
    };
    let li = if sp.rows == 1 {
        "0".to_string()
    } else {
        format!("sr % {str_}")
    };
    let lj = if sp.cols == 1 {
        "0".to_string()
    } else {
        format!("sc % {stc}")
    };
    let (dst, src) = (&plan.bufs[g.dst].name, &plan.bufs[g.src].name);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  // redistribution: elements of this tile whose source is the tile of PE ({}, {})",
        coord(g.sx, "px"),
        coord(g.sy, "py")
    );
    let _ = write!(
        s,
        "  var i: u32 = 0;\n  while (i < {tr}) : (i += 1) {{\n    var j: u32 = 0;\n    while (j < {tc}) : (j += 1) {{\n"
    );
    let _ = writeln!(s, "      const f: u32 = ({r}) * {} + {c};", d.cols);
    // a concatenation input only fills its window of the destination
    let mut body = String::new();
    let _ = writeln!(body, "const s: u32 = {s_expr};");
    let _ = writeln!(
        body,
        "const sr: u32 = s / {};\nconst sc: u32 = s % {};",
        sp.cols, sp.cols
    );
    let _ = writeln!(
        body,
        "if ({ox} == {} and {oy} == {}) {{\n  {dst}[i * {tc} + j] = {src}[({li}) * {stc} + {lj}];\n}}",
        coord(g.sx, "px"),
        coord(g.sy, "py")
    );
    let indent = match g.map.window_terms() {
        Some((dv, m, lo, hi)) => {
            let _ = writeln!(
                s,
                "      const w: u32 = (f / {dv}) % {m};\n      if (w >= {lo} and w < {hi}) {{"
            );
            "        "
        }
        None => "      ",
    };
    for line in body.lines() {
        let _ = writeln!(s, "{indent}{line}");
    }
    if g.map.window.is_some() {
        s += "      }\n";
    }
    s += "    }\n  }\n";
    s
}
