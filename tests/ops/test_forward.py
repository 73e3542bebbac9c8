"""Forward-value tests driven by the op table (op_table.OPS).

Three sweeps, each parametrized with readable ids ``<op>-<variant>``:

* ``test_shapes``    every op over its shape set (0-d, empty, 1-D, 3-D,
  broadcasting pairs ...) in its first dtype (float32 for float ops);
* ``test_dtypes``    every op over every dtype it accepts, on one shape;
* ``test_noncontig`` every op on non-contiguous pyflame views (transposed,
  strided slice with offset, expanded, permuted) built with pyflame ops.
"""

import numpy as np
import pf_testutil as U
import pytest
from op_table import OPS

# ---------------------------------------------------------------------------
# input construction
# ---------------------------------------------------------------------------

VIEWS = ("transposed", "sliced", "expanded", "permuted")


def make_input(gen, rng, shape, dt, view=None):
    """Return (pyflame tensor, exact NumPy values) for one input."""
    shape = tuple(shape)
    if view is None:
        a = gen(rng, shape, dt)
        return U.make(a, dt), U.exact_inputs(a, dt)
    if view == "transposed":
        a = gen(rng, shape, dt)
        base = np.ascontiguousarray(np.swapaxes(a, -1, -2))
        t = U.make(base, dt).transpose(-1, -2)
    elif view == "sliced":
        big_shape = (shape[0] + 1,) + shape[1:-1] + (2 * shape[-1],)
        big = gen(rng, big_shape, dt)
        a = big[1:, ..., ::2]
        t = U.make(big, dt)[1:, ..., ::2]
    elif view == "expanded":
        base = gen(rng, (1,) + shape[1:], dt)
        a = np.broadcast_to(base, shape)
        t = U.make(base, dt).expand(list(shape))
    elif view == "permuted":
        a = gen(rng, shape, dt)
        base = np.ascontiguousarray(np.transpose(a, (2, 0, 1)))
        t = U.make(base, dt).permute([1, 2, 0])
    else:
        raise AssertionError(view)
    assert t.shape == list(shape), f"view construction gave {t.shape}, wanted {list(shape)}"
    return t, U.exact_inputs(a, dt)


def run_case(case, shapes, dt, rng, view=None):
    in_dts = case.in_dtypes(dt)
    built = [make_input(g, rng, s, d, view) for g, s, d in zip(case.gens, shapes, in_dts)]
    tensors = [b[0] for b in built]
    refs = [b[1] for b in built]
    out = case.pf_fn(*tensors)
    with np.errstate(all="ignore"):
        expected = case.np_fn(*refs)
    check_output(case, out, expected, dt)


def check_output(case, out, expected, dt):
    out_dt = case.out_dtype(dt)
    if isinstance(expected, list):
        assert isinstance(out, (list, tuple)), f"expected a list of tensors, got {type(out)!r}"
        assert len(out) == len(expected), f"got {len(out)} outputs, expected {len(expected)}"
        out_dts = out_dt if isinstance(out_dt, list) else [out_dt] * len(expected)
        for o, e, d in zip(out, expected, out_dts):
            _check_one(case, o, e, d)
    else:
        _check_one(case, out, expected, out_dt)


def _check_one(case, out, expected, out_dt):
    name = out_dt if out_dt is not None else U.dtype_name_of(out)
    rtol, atol = case.tolerance(name)
    exact = case.exact
    if out_dt is not None and not U.is_float(out_dt):
        exact = True
    U.assert_tensor_close(
        out, np.asarray(expected), out_dtype=out_dt, rtol=rtol, atol=atol, exact=exact
    )


# ---------------------------------------------------------------------------
# parametrization
# ---------------------------------------------------------------------------


def _base_dtype(case):
    return "float32" if "float32" in case.dtypes else case.dtypes[0]


def _nc_shape_key(case):
    """A shape entry usable for views: every input >= 2-D with no zero dims."""
    best = None
    for key, shapes in case.shapes.items():
        if all(len(s) >= 2 and all(d > 0 for d in s) for s in shapes):
            nd = min(len(s) for s in shapes)
            if best is None or nd > best[0]:
                best = (nd, key)
    return None if best is None else best[1]


SHAPE_PARAMS = [pytest.param(c, key, id=f"{c.name}-{key}") for c in OPS for key in c.shapes]
DTYPE_PARAMS = [pytest.param(c, dt, id=f"{c.name}-{dt}") for c in OPS for dt in c.dtypes]
NC_PARAMS = []
for _c in OPS:
    if not _c.noncontig:
        continue
    _key = _nc_shape_key(_c)
    if _key is None:
        continue
    for _v in VIEWS:
        if _v == "permuted" and not all(len(s) == 3 for s in _c.shapes[_key]):
            continue
        NC_PARAMS.append(pytest.param(_c, _key, _v, id=f"{_c.name}-{_key}-{_v}"))


@pytest.mark.parametrize("case,shape_key", SHAPE_PARAMS)
def test_shapes(case, shape_key, rng):
    run_case(case, case.shapes[shape_key], _base_dtype(case), rng)


@pytest.mark.parametrize("case,dt", DTYPE_PARAMS)
def test_dtypes(case, dt, rng):
    run_case(case, case.shapes[case.sweep_shape], dt, rng)


@pytest.mark.parametrize("case,shape_key,view", NC_PARAMS)
def test_noncontig(case, shape_key, view, rng):
    run_case(case, case.shapes[shape_key], _base_dtype(case), rng, view=view)


def test_table_covers_contract_ops():
    """Guard against the table silently losing coverage of a listed op."""
    names = {c.name for c in OPS}
    required = {
        "add",
        "sub",
        "mul",
        "div",
        "pow",
        "neg",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "and_op",
        "or_op",
        "invert_bool",
        "matmul_op",
        "relu",
        "sigmoid",
        "tanh",
        "gelu",
        "gelu_tanh",
        "silu",
        "softmax",
        "log_softmax",
        "abs",
        "sqrt",
        "exp",
        "log",
        "sin",
        "cos",
        "pow_scalar2",
        "clamp",
        "where",
        "maximum",
        "minimum",
        "cat_dim0",
        "stack_dim0",
        "split_int",
        "chunk",
        "sum_all",
        "mean_all",
        "max_all",
        "min_all",
        "argmax_all",
        "argmin_all",
        "reshape_flat",
        "view",
        "transpose",
        "permute",
        "squeeze_all",
        "unsqueeze0",
        "flatten",
        "expand_new_dim",
        "contiguous",
    }
    assert required <= names, sorted(required - names)
