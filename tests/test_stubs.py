"""The type stub ``python/pyflame/_core.pyi`` matches the compiled ``pyflame._core`` module.

The stub is parsed with ``ast`` (never imported) and compared with the live module: the same
module-level names, the same members on every class, and, where the extension exposes a
``__text_signature__``, the same parameter names and defaults.
"""

import ast
import inspect
from pathlib import Path

import pyflame._core as core
import pytest

STUB = Path(__file__).resolve().parents[1] / "python" / "pyflame" / "_core.pyi"
TYPED_MARKER = STUB.with_name("py.typed")

# Classes declared in the stub for typing only (they do not exist in the module).
STUB_ONLY = {"_ValuesIndices"}

# Private functions registered by lib.rs / csl.rs that the stub deliberately covers.
PRIVATE_FUNCTIONS = {
    "_schedule_cache_size",
    "_scalar_tensor",
    "_csl_cache_key",
    "_csl_generate",
    "_csl_simulate",
    "_csl_estimate_memory",
    "_csl_validate_dir",
    "_csl_parse_error",
}


def _is_dunder(name):
    return name.startswith("__") and name.endswith("__")


def _is_type_alias(node):
    ann = node.annotation
    return (isinstance(ann, ast.Name) and ann.id == "TypeAlias") or (
        isinstance(ann, ast.Attribute) and ann.attr == "TypeAlias"
    )


def _decorators(fn):
    out = set()
    for d in fn.decorator_list:
        if isinstance(d, ast.Name):
            out.add(d.id)
        elif isinstance(d, ast.Attribute):
            out.add(d.attr)
    return out


def _members(body):
    """name -> list of definitions (several for overloads and property setters)."""
    out = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.setdefault(node.name, []).append(node)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if not _is_type_alias(node):
                out.setdefault(node.target.id, []).append(node)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out.setdefault(t.id, []).append(node)
    return out


@pytest.fixture(scope="module")
def stub():
    return _members(ast.parse(STUB.read_text(encoding="utf-8"), filename=str(STUB)).body)


def _classes(stub):
    return {
        name: _members(defs[0].body)
        for name, defs in stub.items()
        if isinstance(defs[0], ast.ClassDef) and name not in STUB_ONLY
    }


def test_py_typed_marker_exists():
    assert TYPED_MARKER.is_file()
    assert TYPED_MARKER.read_text(encoding="utf-8") == ""


def test_every_module_name_is_stubbed(stub):
    runtime = {n for n in dir(core) if not _is_dunder(n)}
    missing = sorted(runtime - set(stub))
    assert not missing, f"names in pyflame._core without a stub entry: {missing}"


def test_every_stubbed_name_exists(stub):
    stubbed = {n for n in stub if not _is_dunder(n)} - STUB_ONLY
    extra = sorted(n for n in stubbed if not hasattr(core, n))
    assert not extra, f"stub entries not in pyflame._core: {extra}"
    assert not any(hasattr(core, n) for n in STUB_ONLY)


def test_private_functions_are_the_registered_ones():
    runtime_private = {n for n in dir(core) if n.startswith("_") and not _is_dunder(n)}
    assert runtime_private == PRIVATE_FUNCTIONS


def test_stub_classes_are_runtime_classes(stub):
    for name in _classes(stub):
        assert isinstance(getattr(core, name), type), name


def test_tensor_members_are_stubbed(stub):
    tensor = _classes(stub)["Tensor"]
    public = {n for n in dir(core.Tensor) if not n.startswith("_")}
    missing = sorted(public - set(tensor))
    assert not missing, f"Tensor members without a stub entry: {missing}"


@pytest.mark.parametrize(
    "cls", ["Tensor", "DType", "MeshLayout", "PECoord", "TensorSpec", "Graph", "Node"]
)
def test_class_members_match(stub, cls):
    members = _classes(stub)[cls]
    runtime = getattr(core, cls)
    public = {n for n in dir(runtime) if not n.startswith("_")}
    assert public <= set(members), sorted(public - set(members))
    extra = sorted(n for n in members if not hasattr(runtime, n))
    assert not extra, f"{cls} stub members not at runtime: {extra}"


def test_properties_are_properties(stub):
    for cls, members in _classes(stub).items():
        runtime = getattr(core, cls)
        for name, defs in members.items():
            fn = defs[0]
            if not isinstance(fn, ast.FunctionDef) or _is_dunder(name):
                continue
            is_prop = "property" in _decorators(fn)
            is_static = "staticmethod" in _decorators(fn)
            attr = inspect.getattr_static(runtime, name)
            assert inspect.isdatadescriptor(attr) == is_prop, f"{cls}.{name}"
            assert isinstance(attr, staticmethod) == is_static, f"{cls}.{name}"


def _stub_signature(fn, drop_first):
    a = fn.args
    positional = a.posonlyargs + a.args
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    params = list(zip(positional, defaults))
    params += [(a.vararg, None)] if a.vararg else []
    params += list(zip(a.kwonlyargs, a.kw_defaults))
    if drop_first:
        params = params[1:]
    out = []
    for arg, default in params:
        name = "*" + arg.arg if arg is a.vararg else arg.arg
        out.append((name, None if default is None else ast.literal_eval(default)))
    return out


def _runtime_signature(obj):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    out = []
    for p in sig.parameters.values():
        if p.name in ("self", "cls") and not out:
            continue
        name = "*" + p.name if p.kind is p.VAR_POSITIONAL else p.name
        default = None if p.default is p.empty else p.default
        out.append((name, default))
    return out


def _compare(where, fn, obj, drop_first):
    runtime = _runtime_signature(obj)
    if runtime is None:
        return []
    expected = _stub_signature(fn, drop_first)
    problems = []
    if [n for n, _ in expected] != [n for n, _ in runtime]:
        problems.append(f"{where}: stub {expected} != runtime {runtime}")
    else:
        for (name, sd), (_, rd) in zip(expected, runtime):
            # pyo3 writes negative defaults such as -1 as "..." in __text_signature__.
            if rd is not Ellipsis and sd != rd:
                problems.append(f"{where}({name}): stub default {sd!r} != runtime {rd!r}")
    return problems


def test_function_signatures_match(stub):
    problems = []
    for name, defs in stub.items():
        fn = defs[0]
        if len(defs) != 1 or not isinstance(fn, ast.FunctionDef) or not hasattr(core, name):
            continue  # overloads are checked by hand; missing names by the tests above
        problems += _compare(name, fn, getattr(core, name), drop_first=False)
    assert not problems, "\n".join(problems)


def test_method_signatures_match(stub):
    problems = []
    for cls, members in _classes(stub).items():
        runtime = getattr(core, cls)
        for name, defs in members.items():
            fn = defs[0]
            if len(defs) != 1 or not isinstance(fn, ast.FunctionDef):
                continue
            if "property" in _decorators(fn) or not hasattr(runtime, name):
                continue
            if name == "__new__":
                problems += _compare(f"{cls}()", fn, runtime, drop_first=True)
            elif not _is_dunder(name):
                static = "staticmethod" in _decorators(fn)
                problems += _compare(
                    f"{cls}.{name}", fn, getattr(runtime, name), drop_first=not static
                )
    assert not problems, "\n".join(problems)
