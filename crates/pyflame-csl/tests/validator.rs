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
fn c5_per_pe_ramp_delivery() {
    // PE (0,0) sends on chain_a and reads chain_b: delivering chain_a to its RAMP is unread
    fires(
        "C5",
        &mutate(
            "layout.csl",
            "@set_color_config(0, 0, c_row_chain_a, .{ .routes = .{ .rx = .{ RAMP }, .tx = .{ EAST } } });",
            "@set_color_config(0, 0, c_row_chain_a, .{ .routes = .{ .rx = .{ RAMP }, .tx = .{ RAMP, EAST } } });",
        ),
    );
}

#[test]
fn c5_fabout_needs_ramp_rx() {
    fires(
        "C5",
        &mutate(
            "layout.csl",
            "@set_color_config(0, 0, c_row_edge, .{ .routes = .{ .rx = .{ RAMP }, .tx = .{ EAST } } });",
            "@set_color_config(0, 0, c_row_edge, .{ .routes = .{ .rx = .{ NORTH }, .tx = .{ EAST } } });",
        ),
    );
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

/// Appends `text` to the PE program and validates.
fn append_pe(text: &str) -> Vec<Finding> {
    let mut s = base();
    s.get_mut("pe_program.csl").expect("pe").push_str(text);
    validate_sources(&s)
}

fn fab_out(q: u32, color: &str) -> String {
    format!("@fmovs(@get_dsd(fabout_dsd, .{{ .fabric_color = {color}, .extent = 1, .output_queue = @get_output_queue({q}) }}), 1.0, .{{ .async = true, .activate = advance_id }});")
}

#[test]
fn t7_overlapping_async_ops() {
    let two = format!(
        "\nfn bad() void {{\n  {}\n  {}\n}}\n",
        fab_out(4, "c_row_edge"),
        fab_out(4, "c_row_edge")
    );
    fires("T7", &append_pe(&two));
    let looped = format!(
        "\nfn bad() void {{\n  var i: u16 = 0;\n  while (i < 2) : (i += 1) {{\n    {}\n  }}\n}}\n",
        fab_out(4, "c_row_edge")
    );
    fires("T7", &append_pe(&looped));
    // the same output queue with another color
    let switched = format!("\nfn bad() void {{\n  {}\n}}\n", fab_out(4, "c_row_back"));
    fires("T7", &append_pe(&switched));
    // exclusive branches do not overlap
    let branches = format!(
        "\nfn ok() void {{\n  if (px == 0) {{\n    {}\n  }} else {{\n    {}\n  }}\n}}\n",
        fab_out(4, "c_row_edge"),
        fab_out(4, "c_row_edge")
    );
    assert!(!append_pe(&branches).iter().any(|f| f.rule == "T7"));
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
fn d2_dsd_bounds() {
    fires(
        "D2",
        &mutate(
            "pe_program.csl",
            "@get_dsd(mem1d_dsd, .{ .base_address = &in0_n0, .extent = 16 })",
            "@get_dsd(mem1d_dsd, .{ .base_address = &in0_n0, .extent = 17 })",
        ),
    );
    fires(
        "D2",
        &append_pe("\nconst bad_ta = @get_dsd(mem1d_dsd, .{ .tensor_access = |i|{16} -> in0_n0[i + 1] });\n"),
    );
    fires(
        "D2",
        &append_pe("\nconst bad_st = @get_dsd(mem1d_dsd, .{ .base_address = &in0_n0, .extent = 8, .stride = 3 });\n"),
    );
    fires(
        "D2",
        &append_pe("\nconst bad_inc = @increment_dsd_offset(@get_dsd(mem1d_dsd, .{ .base_address = &in0_n0, .extent = 16 }), 4, f32);\n"),
    );
    let ok = append_pe(
        "\nconst ok_ta = @get_dsd(mem1d_dsd, .{ .tensor_access = |i|{8} -> in0_n0[2 * i + 1] });\n",
    );
    assert!(!ok.iter().any(|f| f.rule == "D2"), "{ok:#?}");
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
fn d5_async_options() {
    // .async on a memory-only operation
    fires(
        "D5",
        &append_pe("\nfn bad() void {\n  @fmovs(@get_dsd(mem1d_dsd, .{ .base_address = &in0_n0, .extent = 16 }), 0.0, .{ .async = true, .activate = advance_id });\n}\n"),
    );
    // .activate with a data task id
    let text = format!(
        "\nconst dt_id: data_task_id = @get_data_task_id(@get_input_queue(5));\nfn bad() void {{\n  {}\n}}\n",
        fab_out(4, "c_row_edge").replace(".activate = advance_id", ".activate = dt_id")
    );
    fires("D5", &append_pe(&text));
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
fn x3_launch_arguments() {
    // the exported fn takes an argument the host does not pass
    fires(
        "X3",
        &mutate(
            "layout.csl",
            "@export_name(\"compute\", fn()void)",
            "@export_name(\"compute\", fn(i16)void)",
        ),
    );
    // wrong numpy scalar type, and a plain Python number
    let mut s = base();
    let l = s.get_mut("layout.csl").expect("layout");
    *l = l.replace("fn()void", "fn(u32)void");
    let r = s.get_mut("run.py").expect("run.py");
    *r = r.replace("launch(\"compute\",", "launch(\"compute\", np.int16(3),");
    fires("X3", &validate_sources(&s));
    let r = s.get_mut("run.py").expect("run.py");
    *r = r.replace("np.int16(3)", "3");
    fires("X3", &validate_sources(&s));
    let r = s.get_mut("run.py").expect("run.py");
    *r = r.replace(
        "launch(\"compute\", 3,",
        "launch(\"compute\", np.uint32(3),",
    );
    let ok = validate_sources(&s);
    assert!(!ok.iter().any(|f| f.rule == "X3"), "{ok:#?}");
}

/// The base program with a streaming H2D color (5, as `--params=H2D_ID:5`) given to memcpy,
/// a `fabin_dsd` of 16 wavelets on it, and a host line streaming with color `host_color`.
fn streaming(host_color: &str, n: usize) -> Vec<Finding> {
    let mut s = base();
    let l = s.get_mut("layout.csl").expect("layout");
    *l = l
        .replace(
            "const memcpy = @import_module(\"<memcpy/get_params>\", .{ .width = 2, .height = 2 });",
            "param H2D_ID: i16;\nconst h2d_color: color = @get_color(H2D_ID);\nconst memcpy = @import_module(\"<memcpy/get_params>\", .{ .width = 2, .height = 2, .MEMCPYH2D_1 = h2d_color });",
        );
    for f in ["commands_wse2.sh", "commands_wse3.sh"] {
        let c = s.get_mut(f).expect("commands");
        *c = c.replace("--memcpy", "--params=H2D_ID:5 --memcpy");
    }
    let p = s.get_mut("pe_program.csl").expect("pe");
    p.push_str("\nfn recv() void {\n  @fmovs(@get_dsd(mem1d_dsd, .{ .base_address = &in0_n0, .extent = 16 }), @get_dsd(fabin_dsd, .{ .fabric_color = sys_mod.MEMCPYH2D_1, .extent = 16, .input_queue = @get_input_queue(5) }));\n}\n");
    let r = s.get_mut("run.py").expect("run.py");
    let line = r
        .lines()
        .find(|x| x.contains("runner.launch("))
        .expect("launch")
        .to_string();
    let indent: String = line.chars().take_while(|c| *c == ' ').collect();
    *r = r.replacen(
        &line,
        &format!("{indent}H2D = int(compile_data['params']['{host_color}'])\n{indent}runner.memcpy_h2d(H2D, a_in0, 0, 0, 2, 2, {n}, streaming=True,\n{indent}  order=MemcpyOrder.ROW_MAJOR, nonblock=False)\n{line}"),
        1,
    );
    validate_sources(&s)
}

#[test]
fn x5_streaming_memcpy() {
    let ok = streaming("H2D_ID", 16);
    assert!(!ok.iter().any(|f| f.rule == "X5"), "{ok:#?}");
    fires("X5", &streaming("OTHER_ID", 16));
    fires("X5", &streaming("H2D_ID", 8));
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
fn m2_simd_alignment() {
    let op = "@faddh(@get_dsd(mem1d_dsd, .{ .base_address = &h16, .extent = 16 }), @get_dsd(mem1d_dsd, .{ .base_address = &h16, .extent = 16 }), @get_dsd(mem1d_dsd, .{ .base_address = &g16, .extent = 16 }));";
    let bad = format!("\nvar h16 = @zeros([16]f16);\nvar g16: [16]f16 align(16) = @zeros([16]f16);\nfn bad() void {{\n  {op}\n}}\n");
    let f = append_pe(&bad);
    fires("M2", &f);
    assert!(
        f.iter()
            .all(|x| x.rule != "M2" || x.message.contains("h16")),
        "{f:#?}"
    );
    let good = bad.replace(
        "var h16 = @zeros([16]f16);",
        "var h16: [16]f16 align(16) = @zeros([16]f16);",
    );
    assert!(!append_pe(&good).iter().any(|x| x.rule == "M2"));
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
