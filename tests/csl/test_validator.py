"""The static validator through Python and the ``pyflame csl validate`` command."""

import os
import subprocess
import sys

import pyflame as pf
import pytest
from pyflame.cli import main

CORPUS = "/work/.mirror/Cerebras+csl-examples/repo"


@pytest.fixture
def program(opts):
    a = pf.randn([8, 8], layout=pf.MeshLayout.grid(2, 2))
    r = pf.compile_to_csl(pf.softmax(a @ a, dim=-1), opts)
    assert r.success
    return opts.output_dir


def _edit(path, old, new):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert old in text
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(old, new, 1))


def test_clean_program(program):
    assert pf.csl.validate(program) == []
    assert main(["csl", "validate", program]) == 0


@pytest.mark.parametrize(
    "rule,file,old,new",
    [
        ("L2", "layout.csl", "@set_tile_code(1, 1,", "// @set_tile_code(1, 1,"),
        ("L6", "commands_wse2.sh", "--fabric-dims=9,4", "--fabric-dims=4,4"),
        ("C1", "layout.csl", "@get_color(0)", "@get_color(31)"),
        ("T3", "pe_program.csl", "@get_local_task_id(24)", "@get_local_task_id(45)"),
        ("D4", "pe_program.csl", "@fmovs(", "@fexps("),
        ("X1", "run.py", 'get_id("out0")', 'get_id("y")'),
    ],
)
def test_broken_program(program, rule, file, old, new, capsys):
    _edit(os.path.join(program, file), old, new)
    findings = pf.csl.validate(program)
    assert any(f[0] == rule for f in findings), findings
    assert main(["csl", "validate", program]) == 1
    assert rule in capsys.readouterr().out


def test_cli_entry_point(program):
    p = subprocess.run(
        [sys.executable, "-m", "pyflame.cli", "csl", "validate", program],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0 and "OK" in p.stdout


def test_missing_directory(tmp_path):
    assert main(["csl", "validate", str(tmp_path / "nope")]) == 2


def test_parser_on_csl_examples():
    if not os.path.isdir(CORPUS):
        pytest.skip(f"csl-examples corpus not present at {CORPUS}")
    files = subprocess.run(
        ["git", "-C", CORPUS, "ls-tree", "-r", "--name-only", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    csl = [f for f in files if f.endswith(".csl")]
    failures = []
    for f in csl:
        text = subprocess.run(
            ["git", "-C", CORPUS, "show", f"HEAD:{f}"], capture_output=True, text=True, check=True
        ).stdout
        err = pf._core._csl_parse_error(text)
        if err is not None:
            failures.append((f, err))
    assert len(csl) == 164
    assert failures == []
