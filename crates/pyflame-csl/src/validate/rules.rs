//! The rules of the CSL reference, section 4, over the layout and PE facts.

use super::eval::int;
use super::host::{cslc_lines, scan_host};
use super::layout::collect_layout;
use super::pe::{pe_facts, PeFacts};
use super::{Program, Severity::*, CODE_ALLOWANCE_BYTES, DATA_WARN_BYTES, SRAM_BYTES};
use crate::parse::{DeclKind, Stmt};
use crate::plan::dir;
use std::collections::{BTreeMap, BTreeSet, HashMap};

const NO_SUCH_BUILTIN: [&str; 10] = [
    "fdivs", "fexps", "fmins", "fsqrt", "fsqrts", "flogs", "ftanhs", "fdivh", "fexph", "fminh",
];

/// Runs every rule.
pub fn check(p: &mut Program) {
    let Some(l) = collect_layout(p) else { return };
    let lf = l.file.clone();
    // L1
    let (w, h) = match l.rect.as_slice() {
        [r] => *r,
        other => {
            p.report(
                "L1",
                Error,
                &lf,
                format!("@set_rectangle must be called once, found {}", other.len()),
            );
            return;
        }
    };
    let mut seen: HashMap<(i128, i128), usize> = HashMap::new();
    for t in &l.tiles {
        if !(0..w).contains(&t.x) || !(0..h).contains(&t.y) {
            p.report(
                "L1",
                Error,
                &lf,
                format!(
                    "@set_tile_code({}, {}) outside the {w}x{h} rectangle",
                    t.x, t.y
                ),
            );
        }
        *seen.entry((t.x, t.y)).or_default() += 1;
    }
    for r in &l.routes {
        if !(0..w).contains(&r.0) || !(0..h).contains(&r.1) {
            p.report(
                "L1",
                Error,
                &lf,
                format!(
                    "@set_color_config({}, {}) outside the {w}x{h} rectangle",
                    r.0, r.1
                ),
            );
        }
    }
    // L2
    if l.unresolved == 0 {
        let mut missing = 0;
        for x in 0..w {
            for y in 0..h {
                match seen.get(&(x, y)).copied().unwrap_or(0) {
                    0 => missing += 1,
                    1 => {}
                    n => p.report(
                        "L2",
                        Error,
                        &lf,
                        format!("PE ({x},{y}) gets {n} @set_tile_code calls"),
                    ),
                }
            }
        }
        if missing > 0 {
            p.report(
                "L2",
                Error,
                &lf,
                format!(
                    "{missing} PEs of the rectangle get no @set_tile_code (give idle PEs a stub)"
                ),
            );
        }
    }
    // L3
    match l.memcpy {
        None => p.report(
            "L3",
            Error,
            &lf,
            "the layout does not import <memcpy/get_params>",
        ),
        Some((mw, mh)) => {
            if mw != Some(w) || mh != Some(h) {
                p.report("L3", Error, &lf, format!("<memcpy/get_params> width/height {mw:?}x{mh:?} differ from the {w}x{h} rectangle"));
            }
        }
    }
    for t in &l.tiles {
        let ok = match t.mp {
            Some(v) => v.is_none_or(|v| v == t.x),
            None => false,
        };
        if !ok {
            p.report(
                "L3",
                Error,
                &lf,
                format!(
                    "tile ({}, {}) lacks .memcpy_params = memcpy.get_params({})",
                    t.x, t.y, t.x
                ),
            );
        }
    }
    // PE files
    let files: BTreeSet<String> = l.tiles.iter().map(|t| t.file.clone()).collect();
    let mut facts: BTreeMap<String, PeFacts> = BTreeMap::new();
    for f in &files {
        match p.csl.get(f) {
            None => p.report(
                "L5",
                Error,
                &lf,
                format!("@set_tile_code file \"{f}\" not found next to the layout file"),
            ),
            Some(parsed) => {
                facts.insert(f.clone(), pe_facts(parsed));
            }
        }
    }
    for (f, pf) in &facts {
        if !pf.params.contains_key("memcpy_params") || !pf.memcpy {
            p.report("L3", Error, f, "PE file must declare `param memcpy_params: comptime_struct` and import <memcpy/memcpy>");
        }
    }
    // L4
    let mut l4 = BTreeSet::new();
    for t in &l.tiles {
        let Some(pf) = facts.get(&t.file) else {
            continue;
        };
        for (k, _) in &t.params {
            if !pf.params.contains_key(k) {
                l4.insert((
                    t.file.clone(),
                    format!("tile param .{k} is not a param of {}", t.file),
                ));
            }
        }
        for (k, has_default) in &pf.params {
            if !has_default && !t.params.iter().any(|(n, _)| n == k) {
                l4.insert((
                    t.file.clone(),
                    format!(
                        "param {k} of {} is not supplied by @set_tile_code({}, {})",
                        t.file, t.x, t.y
                    ),
                ));
            }
        }
    }
    for (f, m) in l4.into_iter().take(20) {
        p.report("L4", Error, &f, m);
    }
    // commands: L4 (--params), L6, L7
    let cmds: Vec<(String, String)> = p
        .sources
        .iter()
        .filter(|(n, _)| n.ends_with(".sh"))
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect();
    let layout_params: Vec<(String, bool)> = p.csl[&lf]
        .items
        .iter()
        .filter_map(|s| match s {
            Stmt::Decl {
                kind: DeclKind::Param,
                name,
                init,
                ..
            } => Some((name.clone(), init.is_some())),
            _ => None,
        })
        .collect();
    for (name, text) in &cmds {
        for c in cslc_lines(name, text) {
            match c.arch.as_deref() {
                Some("wse2") | Some("wse3") | None => {}
                Some(a) => p.report(
                    "L7",
                    Error,
                    name,
                    format!("--arch={a} (must be wse2 or wse3)"),
                ),
            }
            if let Some(ch) = c.channels {
                if !(1..=16).contains(&ch) {
                    p.report(
                        "L7",
                        Error,
                        name,
                        format!("--channels {ch} (must be 1..16)"),
                    );
                }
            }
            if c.memcpy {
                let (ox, oy) = c.offsets.unwrap_or((0, 0));
                let (fw, fh) = c.dims.unwrap_or((0, 0));
                let (w, h) = (w as i64, h as i64);
                if ox < 4 + c.bufs.0 || oy < 1 || fw < ox + w + 3 + c.bufs.1 || fh < oy + h + 1 {
                    p.report("L6", Error, name, format!("fabric dims {fw},{fh} with offsets {ox},{oy} do not fit a {w}x{h} rectangle plus memcpy (need offsets >= 4,1 and dims >= {},{})", ox + w + 3 + c.bufs.1, oy + h + 1));
                }
            }
            for (k, v) in &c.params {
                if v.is_none() {
                    p.report(
                        "L4",
                        Error,
                        name,
                        format!("--params {k} value is not an unsigned integer"),
                    );
                }
            }
            for (k, has_default) in &layout_params {
                if !has_default && !c.params.iter().any(|(n, _)| n == k) {
                    p.report(
                        "L4",
                        Error,
                        name,
                        format!("layout param {k} has no default and is not given with --params"),
                    );
                }
            }
        }
    }
    // Colors and routes
    let mut per: HashMap<(i128, i128, i128), usize> = HashMap::new();
    let mut route_map: HashMap<(i128, i128, i128), (u8, u8)> = HashMap::new();
    for &(x, y, c, rx, tx, ok) in &l.routes {
        let Some(c) = c else {
            p.report(
                "C1",
                Warning,
                &lf,
                format!("color of @set_color_config({x}, {y}, ..) is not a comptime constant"),
            );
            continue;
        };
        if !(0..=23).contains(&c) {
            p.report(
                "C1",
                Error,
                &lf,
                format!("color {c} at ({x},{y}) outside 0..23"),
            );
        } else if (21..=23).contains(&c) {
            p.report(
                "C2",
                Warning,
                &lf,
                format!("color {c} at ({x},{y}) is reserved for memcpy"),
            );
        }
        if !ok {
            p.report("C3", Error, &lf, format!("route at ({x},{y}) color {c}: rx and tx must be non-empty subsets of RAMP/NORTH/SOUTH/EAST/WEST"));
        }
        *per.entry((x, y, c)).or_default() += 1;
        route_map.insert((x, y, c), (rx, tx));
        let fabric_rx = (rx & !dir::RAMP).count_ones();
        if fabric_rx > 1 {
            p.report(
                "C6",
                Warning,
                &lf,
                format!("route at ({x},{y}) color {c} receives from {fabric_rx} fabric directions"),
            );
        }
        if rx & dir::RAMP != 0 && tx & dir::RAMP != 0 {
            p.report("C7", Warning, &lf, format!("route at ({x},{y}) color {c} both takes RAMP and delivers to RAMP; a PE that receives and sends must alternate two colors (checkerboard)"));
        }
    }
    for ((x, y, c), n) in &per {
        if *n > 1 {
            p.report(
                "C3",
                Error,
                &lf,
                format!("{n} @set_color_config calls for ({x},{y}) color {c}"),
            );
        }
    }
    let mut c4 = 0;
    for (&(x, y, c), &(_, tx)) in &route_map {
        for (bit, dx, dy, back) in [
            (dir::EAST, 1, 0, dir::WEST),
            (dir::WEST, -1, 0, dir::EAST),
            (dir::SOUTH, 0, 1, dir::NORTH),
            (dir::NORTH, 0, -1, dir::SOUTH),
        ] {
            if tx & bit == 0 {
                continue;
            }
            let ok = route_map
                .get(&(x + dx, y + dy, c))
                .is_some_and(|&(rx, _)| rx & back != 0);
            if !ok && c4 < 20 {
                c4 += 1;
                // C4 is a warning rule: an unused route may leave the rectangle (CE gemv-08's
                // last column does), which compiles but drops anything sent on it.
                p.report(
                    "C4",
                    Warning,
                    &lf,
                    format!(
                        "({x},{y}) sends color {c} towards ({},{}), which does not receive it",
                        x + dx,
                        y + dy
                    ),
                );
            }
        }
    }
    // PE rules
    for (f, pf) in &facts {
        for c in &pf.colors {
            if !(0..=23).contains(c) {
                p.report("C1", Error, f, format!("@get_color({c}) outside 0..23"));
            }
        }
        // T1 / T2
        let mut bound: HashMap<&str, usize> = HashMap::new();
        let mut ids: HashMap<i128, usize> = HashMap::new();
        for (t, kind, id) in &pf.binds {
            *bound.entry(t.as_str()).or_default() += 1;
            if let Some(id) = id {
                *ids.entry(*id).or_default() += 1;
                let max = if kind == "bind_control_task" { 63 } else { 30 };
                if !(0..=max).contains(id) {
                    p.report(
                        "T3",
                        Error,
                        f,
                        format!("task id {id} of {t} outside 0..{max}"),
                    );
                }
                if kind == "bind_local_task" && ((21..=23).contains(id) || (27..=31).contains(id)) {
                    p.report(
                        "T4",
                        Warning,
                        f,
                        format!("local task id {id} of {t} is reserved (use 8-20, 24-26)"),
                    );
                }
            }
            if kind == "bind_local_task" && pf.tasks.get(t).copied().unwrap_or(0) != 0 {
                p.report("T2", Error, f, format!("local task {t} takes arguments"));
            }
        }
        for (t, n) in &pf.tasks {
            match bound.get(t.as_str()).copied().unwrap_or(0) {
                1 => {}
                k => p.report(
                    "T1",
                    Error,
                    f,
                    format!("task {t} is bound {k} times (must be exactly once)"),
                ),
            }
            if *n > 4 {
                p.report("T2", Error, f, format!("task {t} takes {n} arguments"));
            }
        }
        for (id, n) in &ids {
            if *n > 1 {
                p.report("T1", Error, f, format!("task id {id} is bound {n} times"));
            }
        }
        for a in &pf.activated {
            if pf.id_names.contains_key(a)
                && !pf
                    .binds
                    .iter()
                    .any(|(_, _, id)| *id == pf.id_names.get(a).copied())
            {
                p.report(
                    "T1",
                    Error,
                    f,
                    format!("{a} is activated but no task is bound to it"),
                );
            }
        }
        // T3, T5, T6
        for (input, q) in &pf.queues {
            if !(0..=7).contains(q) {
                p.report(
                    "T3",
                    Error,
                    f,
                    format!(
                        "{} queue {q} outside 0..7",
                        if *input { "input" } else { "output" }
                    ),
                );
            }
        }
        for (input, names, q) in &pf.fabric {
            let need = if *input {
                ["fabric_color", "extent", "input_queue"]
            } else {
                ["fabric_color", "extent", "output_queue"]
            };
            for n in need {
                if !names.iter().any(|x| x == n) {
                    p.report(
                        "D3",
                        Error,
                        f,
                        format!(
                            "{} lacks .{n}",
                            if *input { "fabin_dsd" } else { "fabout_dsd" }
                        ),
                    );
                }
            }
            if let Some((qi, qn)) = q {
                if *qn <= 1 {
                    p.report("T6", Warning, f, format!("fabric DSD uses queue {qn}, reserved for memcpy (0 on WSE-2, 0-1 on WSE-3)"));
                }
                if !pf.init_queues.contains(&(*qi, *qn)) {
                    p.report("T5", Error, f, format!("{} queue {qn} used by a fabric DSD has no @initialize_queue (required on WSE-3)", if *qi { "input" } else { "output" }));
                }
            }
        }
        // T8
        if !pf.unblocks
            && pf
                .exports
                .iter()
                .any(|e| l.exports.get(e).is_some_and(|(t, _)| t == "fn"))
        {
            p.report(
                "T8",
                Error,
                f,
                "host-callable functions never reach sys_mod.unblock_cmd_stream()",
            );
        }
        // D1, D4
        for (_, ext, stride) in &pf.extents {
            if let Some(e) = ext {
                if !(0..=65535).contains(e) {
                    p.report("D1", Error, f, format!("mem1d_dsd extent {e} outside u16"));
                }
            }
            if let Some(s) = stride {
                if !(-128..=127).contains(s) {
                    p.report("D1", Error, f, format!("mem1d_dsd stride {s} outside i8"));
                }
            }
        }
        for b in &pf.builtins {
            if NO_SUCH_BUILTIN.contains(&b.as_str()) {
                p.report(
                    "D4",
                    Error,
                    f,
                    format!("@{b} does not exist (use @map with <math>)"),
                );
            }
        }
    }
    // X1 .. X6
    if let Some(text) = p.sources.get("run.py").cloned() {
        let hs = scan_host(&text);
        for id in &hs.ids {
            let in_layout = l.exports.contains_key(id);
            let on_pe = facts.values().any(|f| f.exports.contains(id));
            if !in_layout || !on_pe {
                p.report(
                    "X1",
                    Error,
                    "run.py",
                    format!(
                        "get_id(\"{id}\"): {}",
                        if in_layout {
                            "no PE @export_symbol"
                        } else {
                            "no @export_name in the layout"
                        }
                    ),
                );
            }
        }
        for (fname, _) in &hs.launches {
            if l.exports.get(fname).is_none_or(|(t, _)| t != "fn") {
                p.report(
                    "X1",
                    Error,
                    "run.py",
                    format!("launch(\"{fname}\") has no fn @export_name"),
                );
            }
        }
        for (n, (t, _)) in &l.exports {
            if t != "fn"
                && !["[*]f32", "[*]i16", "[*]u16", "[*]i32", "[*]u32", "[*]f16"]
                    .contains(&t.as_str())
            {
                p.report("X1", Error, &lf, format!("@export_name(\"{n}\") type {t} is not [*]T with T in i16/u16/i32/u32/f16/f32"));
            }
        }
        for m in &hs.memcpys {
            if m.h2d {
                if let Some(s) = &m.symbol {
                    if l.exports
                        .get(s)
                        .is_some_and(|(_, mutable)| *mutable == Some(false))
                    {
                        p.report(
                            "X2",
                            Warning,
                            "run.py",
                            format!("line {}: memcpy_h2d into read-only symbol {s}", m.line),
                        );
                    }
                }
            }
            if let Some([x0, y0, mw, mh, _n]) = m.rect {
                if x0 < 0 || y0 < 0 || x0 + mw > w as i64 || y0 + mh > h as i64 {
                    p.report("X4", Error, "run.py", format!("line {}: memcpy rectangle ({x0},{y0}) {mw}x{mh} outside the {w}x{h} rectangle", m.line));
                }
            }
        }
        let first = hs.first_io.unwrap_or(usize::MAX);
        if hs.load.is_none_or(|v| v > first) || hs.run.is_none_or(|v| v > first) {
            p.report(
                "X6",
                Warning,
                "run.py",
                "load() and run() must come before any memcpy or launch",
            );
        }
        if hs.stop.is_none_or(|s| s < hs.last_io.unwrap_or(0)) {
            p.report(
                "X6",
                Warning,
                "run.py",
                "stop() must be called after the last memcpy/launch",
            );
        }
    }
    // M1: per distinct (file, tile env); reported once per file with the worst PE
    let mut done: BTreeSet<(String, Vec<(String, i128)>)> = BTreeSet::new();
    let mut worst: BTreeMap<String, (usize, i128, i128, usize)> = BTreeMap::new();
    for t in &l.tiles {
        let Some(pf) = facts.get(&t.file) else {
            continue;
        };
        let mut key: Vec<(String, i128)> = t.env.iter().map(|(k, v)| (k.clone(), *v)).collect();
        key.sort();
        if !done.insert((t.file.clone(), key)) {
            continue;
        }
        let mut env = t.env.clone();
        for (n, e) in &pf.consts {
            if let Some(v) = int(e, &env) {
                env.insert(n.clone(), v);
            }
        }
        let mut bytes = 0usize;
        for (_, dims, eb) in &pf.arrays {
            let n: Option<i128> = dims
                .iter()
                .map(|d| int(d, &env))
                .try_fold(1i128, |a, v| v.map(|v| a * v));
            bytes += n.map_or(0, |n| n.max(0) as usize) * eb;
        }
        let e = worst.entry(t.file.clone()).or_insert((0, t.x, t.y, 0));
        if bytes > DATA_WARN_BYTES {
            e.3 += 1;
        }
        if bytes > e.0 {
            *e = (bytes, t.x, t.y, e.3);
        }
    }
    for (f, (bytes, x, y, over)) in worst {
        if bytes + CODE_ALLOWANCE_BYTES > SRAM_BYTES {
            p.report("M1", Error, &f, format!("PE ({x}, {y}) needs {bytes} bytes of arrays plus ~{CODE_ALLOWANCE_BYTES} for code: more than the 48 KB of SRAM ({over} PE configurations above 46 KB)"));
        } else if bytes > DATA_WARN_BYTES {
            p.report(
                "M1",
                Warning,
                &f,
                format!("PE ({x}, {y}) holds {bytes} bytes of arrays (above 46 KB)"),
            );
        }
    }
    super::extra::check(p, &l, &facts);
    super::xhost::check(p, &l, &facts);
}
