//! One test per validator rule: a generated program is clean; each mutation breaks exactly
//! the rule it targets (the finding must carry that rule id).

mod common;
use common::input;
use pyflame_core::MeshLayout;
use pyflame_csl::validate::{validate_sources, Finding, Severity};
use pyflame_csl::{generate, CodeGenOptions};
use pyflame_ir::{build, Graph, UnaryOp};
use std::collections::BTreeMap;

fn base() -> BTreeMap<String, String> {
    let l = MeshLayout::Grid(2, 2);
    let a = input(&[8, 8], 1, l);
    let b = input(&[8, 8], 2, l);
    let h = build::unary(UnaryOp::Relu, &build::matmul(&a, &b).unwrap()).unwrap();
    let y = build::softmax(&h, -1, false).unwrap();
    let g = Graph::capture(&[y], false);
    let opts = CodeGenOptions {
        simulate: false,
        ..Default::default()
    };
    generate(&g, &opts).expect("generate").sources
}

fn mutate(file: &str, from: &str, to: &str) -> Vec<Finding> {
    let mut s = base();
    let text = s.get_mut(file).expect("file");
    assert!(text.contains(from), "{file} does not contain {from:?}");
    *text = text.replacen(from, to, 1);
    validate_sources(&s)
}

fn fires(rule: &str, findings: &[Finding]) {
    assert!(
        findings.iter().any(|f| f.rule == rule),
        "rule {rule} did not fire; findings: {findings:#?}"
    );
}

#[test]
fn generated_program_is_clean() {
    let f = validate_sources(&base());
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn l1_rectangle() {
    fires("L1", &mutate("layout.csl", "@set_rectangle(2, 2);", ""));
    fires(
        "L1",
        &mutate("layout.csl", "@set_tile_code(1, 1,", "@set_tile_code(5, 1,"),
    );
}

#[test]
fn l2_every_pe_has_code() {
    let f = mutate(
        "layout.csl",
        "@set_tile_code(1, 1,",
        "// @set_tile_code(1, 1,",
    );
    fires("L2", &f);
}

#[test]
fn l3_memcpy_params() {
    fires(
        "L3",
        &mutate(
            "layout.csl",
            ".width = 2, .height = 2",
            ".width = 3, .height = 2",
        ),
    );
    fires(
        "L3",
        &mutate(
            "layout.csl",
            "memcpy.get_params(1), .px = 1, .py = 0",
            "memcpy.get_params(0), .px = 1, .py = 0",
        ),
    );
    fires(
        "L3",
        &mutate(
            "pe_program.csl",
            "@import_module(\"<memcpy/memcpy>\"",
            "@import_module(\"<other>\"",
        ),
    );
}

#[test]
fn l4_params_match() {
    fires(
        "L4",
        &mutate(
            "layout.csl",
            ".px = 0, .py = 0,",
            ".px = 0, .py = 0, .bogus = 1,",
        ),
    );
    fires(
        "L4",
        &mutate(
            "pe_program.csl",
            "param py: u16;",
            "param py: u16;\nparam n_extra: u16;",
        ),
    );
    fires(
        "L4",
        &mutate("layout.csl", "const memcpy", "param N: i16;\nconst memcpy"),
    );
}

#[test]
fn l5_tile_file_exists() {
    fires(
        "L5",
        &mutate("layout.csl", "\"pe_program.csl\"", "\"missing.csl\""),
    );
}

#[test]
fn l6_fabric_fits_memcpy() {
    fires(
        "L6",
        &mutate("commands_wse2.sh", "--fabric-dims=9,4", "--fabric-dims=8,4"),
    );
    fires(
        "L6",
        &mutate(
            "commands_wse3.sh",
            "--fabric-offsets=4,1",
            "--fabric-offsets=3,1",
        ),
    );
}

#[test]
fn l7_arch_and_channels() {
    fires(
        "L7",
        &mutate("commands_wse2.sh", "--arch=wse2", "--arch=wse4"),
    );
    fires(
        "L7",
        &mutate("commands_wse2.sh", "--channels 1", "--channels 17"),
    );
}

#[test]
fn c1_color_range() {
    fires(
        "C1",
        &mutate("layout.csl", "@get_color(0)", "@get_color(30)"),
    );
}

#[test]
fn c2_reserved_colors() {
    fires(
        "C2",
        &mutate("layout.csl", "@get_color(0)", "@get_color(22)"),
    );
}

#[test]
fn c3_one_route_per_pe_and_color() {
    let mut s = base();
    let l = s.get_mut("layout.csl").unwrap();
    let line = l
        .lines()
        .find(|x| x.contains("@set_color_config"))
        .unwrap()
        .to_string();
    *l = l.replacen(&line, &format!("{line}\n{line}"), 1);
    fires("C3", &validate_sources(&s));
    fires(
        "C3",
        &mutate("layout.csl", ".rx = .{ RAMP }", ".rx = .{ UP }"),
    );
}

#[test]
fn c4_links_match() {
    fires(
        "C4",
        &mutate(
            "layout.csl",
            "@set_color_config(1, 0, c_row_chain_a, .{ .routes = .{ .rx = .{ WEST }",
            "@set_color_config(1, 0, c_row_chain_a, .{ .routes = .{ .rx = .{ NORTH }",
        ),
    );
}

#[test]
fn c5_ramp_is_consumed() {
    let mut s = base();
    let p = s.get_mut("pe_program.csl").unwrap();
    *p = p.replace("fabin_dsd", "mem1d_dsd");
    fires("C5", &validate_sources(&s));
}

#[test]
fn c6_single_rx_direction() {
    fires(
        "C6",
        &mutate("layout.csl", ".rx = .{ EAST }", ".rx = .{ EAST, WEST }"),
    );
}

#[test]
fn c7_checkerboard() {
    fires(
        "C7",
        &mutate(
            "layout.csl",
            ".rx = .{ RAMP }, .tx = .{ EAST }",
            ".rx = .{ RAMP }, .tx = .{ RAMP, EAST }",
        ),
    );
}

#[test]
fn t1_tasks_bound_once() {
    fires(
        "T1",
        &mutate(
            "pe_program.csl",
            "@bind_local_task(advance, advance_id);",
            "@bind_local_task(advance, advance_id);\n  @bind_local_task(advance, advance_id);",
        ),
    );
    fires(
        "T1",
        &mutate(
            "pe_program.csl",
            "@bind_local_task(advance, advance_id);",
            "",
        ),
    );
}

#[test]
fn t2_task_arguments() {
    fires(
        "T2",
        &mutate(
            "pe_program.csl",
            "task advance() void",
            "task advance(x: f32) void",
        ),
    );
}

#[test]
fn t3_id_and_queue_ranges() {
    fires(
        "T3",
        &mutate(
            "pe_program.csl",
            "@get_local_task_id(24)",
            "@get_local_task_id(40)",
        ),
    );
    fires(
        "T3",
        &mutate(
            "pe_program.csl",
            "@get_output_queue(4)",
            "@get_output_queue(9)",
        ),
    );
}

#[test]
fn t4_reserved_local_ids() {
    fires(
        "T4",
        &mutate(
            "pe_program.csl",
            "@get_local_task_id(24)",
            "@get_local_task_id(22)",
        ),
    );
}

#[test]
fn t5_queues_initialized() {
    fires(
        "T5",
        &mutate(
            "pe_program.csl",
            "@initialize_queue(@get_input_queue(3), .{ .color = c_row_back });",
            "",
        ),
    );
}

#[test]
fn t6_memcpy_queues() {
    let mut s = base();
    let p = s.get_mut("pe_program.csl").unwrap();
    *p = p.replace("@get_output_queue(4)", "@get_output_queue(0)");
    fires("T6", &validate_sources(&s));
}

#[test]
fn t8_unblock_cmd_stream() {
    fires(
        "T8",
        &mutate(
            "pe_program.csl",
            "else => sys_mod.unblock_cmd_stream(),",
            "else => {},",
        ),
    );
}

#[test]
fn d1_extent_range() {
    fires(
        "D1",
        &mutate("pe_program.csl", ".extent = 16 }", ".extent = 70000 }"),
    );
}

#[test]
fn d3_fabric_dsd_fields() {
    fires(
        "D3",
        &mutate("pe_program.csl", ", .input_queue = @get_input_queue(4)", ""),
    );
}

#[test]
fn d4_builtin_exists() {
    fires("D4", &mutate("pe_program.csl", "@fmovs(", "@fdivs("));
}

#[test]
fn x1_host_symbols_exported() {
    fires(
        "X1",
        &mutate("run.py", "get_id(\"in0\")", "get_id(\"inX\")"),
    );
    fires(
        "X1",
        &mutate("run.py", "launch(\"compute\"", "launch(\"go\""),
    );
}

#[test]
fn x2_no_write_to_readonly() {
    fires(
        "X2",
        &mutate(
            "layout.csl",
            "@export_name(\"in0\", [*]f32, true)",
            "@export_name(\"in0\", [*]f32, false)",
        ),
    );
}

#[test]
fn x4_memcpy_rectangle() {
    fires(
        "X4",
        &mutate("run.py", "a_in0, 0, 0, 2, 2,", "a_in0, 0, 0, 3, 2,"),
    );
}

#[test]
fn x6_load_run_stop() {
    fires("X6", &mutate("run.py", "    runner.stop()\n", ""));
    fires("X6", &mutate("run.py", "    runner.load()\n", ""));
}

#[test]
fn m1_memory_budget() {
    let f = mutate("pe_program.csl", "@zeros([16]f32)", "@zeros([12000]f32)");
    fires("M1", &f);
    assert!(f
        .iter()
        .any(|x| x.rule == "M1" && x.severity == Severity::Error));
}

#[test]
fn validator_reads_corpus_layouts_without_crashing() {
    // A real program from the corpus (when present): the validator must run on it.
    let repo = "/work/.mirror/Cerebras+csl-examples/repo";
    if !std::path::Path::new(repo).exists() {
        eprintln!("skipped: corpus not present");
        return;
    }
    let show = |p: &str| {
        std::process::Command::new("git")
            .args([
                "-C",
                repo,
                "show",
                &format!("HEAD:tutorials/gemv-08-routes-3/{p}"),
            ])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let mut s = BTreeMap::new();
    for f in ["layout.csl", "pe_program.csl", "commands_wse2.sh"] {
        if let Some(t) = show(f) {
            s.insert(f.to_string(), t);
        }
    }
    let findings = validate_sources(&s);
    let errors: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn idle_pes_get_the_stub_and_validate() {
    let a = input(&[4, 4], 3, MeshLayout::RowPartition(4));
    let b = input(&[4, 4], 4, MeshLayout::ColPartition(4));
    let ya = build::unary(UnaryOp::Relu, &a).unwrap();
    let yb = build::unary(UnaryOp::Exp, &b).unwrap();
    let g = Graph::capture(&[ya, yb], false);
    let out = generate(&g, &CodeGenOptions::default()).expect("generate");
    assert!(out.sources.contains_key("idle.csl"));
    assert!(out.sources["layout.csl"].contains("@set_tile_code(3, 3, \"idle.csl\""));
    assert_eq!(out.sim.expect("sim").outputs.len(), 2);
    let f = validate_sources(&out.sources);
    assert!(f.is_empty(), "{f:#?}");
}
