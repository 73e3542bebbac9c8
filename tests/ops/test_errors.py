"""Errors: shape mismatches raise pf.ShapeError (a ValueError) when the op is
built - before any evaluation - with both shapes in the message; bad dims raise
IndexError, bad dtypes TypeError, other bad arguments ValueError, non-tensor
arguments TypeError."""

import numpy as np
import pyflame as pf
import pytest


def assert_shapes_in(excinfo, *shapes):
    msg = str(excinfo.value)
    for s in shapes:
        txt = "[" + ", ".join(str(d) for d in s) + "]"
        assert txt in msg, f"{txt!r} not in error message {msg!r}"


def test_shape_error_is_value_error():
    assert issubclass(pf.ShapeError, ValueError)


# --------------------------------------------------------------------------
# shape mismatches at build time
# --------------------------------------------------------------------------

BROADCAST_FAILS = [
    ([3, 4], [5]),
    ([2, 3], [3, 2]),
    ([4], [3]),
    ([2, 3, 4], [2, 4]),
    ([0], [2]),
]


@pytest.mark.parametrize(
    "op", ["add", "sub", "mul", "div", "pow", "eq", "lt", "maximum", "minimum"]
)
@pytest.mark.parametrize(
    "sa,sb", BROADCAST_FAILS, ids=[f"{a}vs{b}".replace(" ", "") for a, b in BROADCAST_FAILS]
)
def test_broadcast_mismatch_raises_at_build(op, sa, sb):
    a, b = pf.ones(sa), pf.ones(sb)
    fn = {
        "add": lambda: a + b,
        "sub": lambda: a - b,
        "mul": lambda: a * b,
        "div": lambda: a / b,
        "pow": lambda: a**b,
        "eq": lambda: a == b,
        "lt": lambda: a < b,
        "maximum": lambda: pf.maximum(a, b),
        "minimum": lambda: pf.minimum(a, b),
    }[op]
    with pytest.raises(pf.ShapeError) as ei:
        fn()  # building the op raises: no eval() here
    assert_shapes_in(ei, sa, sb)


def test_shape_error_on_lazy_inputs_raises_before_eval():
    a = pf.randn([3, 4]) * 2.0  # lazy, never evaluated
    b = pf.randn([5]) + 1.0
    with pytest.raises(pf.ShapeError) as ei:
        a + b
    assert_shapes_in(ei, [3, 4], [5])
    assert pf.is_lazy(a) and pf.is_lazy(b)


def test_shape_error_traceback_points_at_building_line():
    a, b = pf.ones([3, 4]), pf.ones([5])
    try:
        a * b  # <- the op-building line
    except pf.ShapeError as e:
        tb = e.__traceback__  # first entry: this test's frame
        line = open(__file__).read().splitlines()[tb.tb_lineno - 1]
        assert "<- the op-building line" in line
    else:
        pytest.fail("building a * b with shapes [3, 4] and [5] raised nothing")


def test_where_shape_mismatch():
    with pytest.raises(pf.ShapeError) as ei:
        pf.where(pf.ones([3], dtype=pf.bool_), pf.ones([4]), pf.ones([3]))
    assert_shapes_in(ei, [4])


MATMUL_FAILS = [
    ([3, 4], [5, 6]),
    ([2, 3, 4], [2, 5, 6]),
    ([4], [5]),
    ([3, 4], [3]),
    ([2, 3, 4], [3, 4, 5]),
]


@pytest.mark.parametrize(
    "sa,sb", MATMUL_FAILS, ids=[f"{a}@{b}".replace(" ", "") for a, b in MATMUL_FAILS]
)
def test_matmul_shape_mismatch(sa, sb):
    a, b = pf.ones(sa), pf.ones(sb)
    with pytest.raises(pf.ShapeError) as ei:
        a @ b
    assert_shapes_in(ei, sa, sb)
    with pytest.raises(pf.ShapeError):
        pf.matmul(a, b)


def test_matmul_0d_operand():
    with pytest.raises(ValueError):
        pf.tensor(2.0) @ pf.ones([2, 2])
    with pytest.raises(ValueError):
        pf.matmul(pf.ones([2]), pf.tensor(1.0))


def test_reshape_wrong_numel():
    x = pf.ones([3, 4])
    with pytest.raises(pf.ShapeError) as ei:
        x.reshape([5, 3])
    assert_shapes_in(ei, [3, 4], [5, 3])
    with pytest.raises(pf.ShapeError):
        pf.reshape(x, [5, -1])
    with pytest.raises(pf.ShapeError):
        x.view([13])


def test_reshape_bad_spec():
    x = pf.ones([3, 4])
    with pytest.raises(ValueError):
        x.reshape([-1, -1])
    with pytest.raises(ValueError):
        x.reshape([-2, 6])
    with pytest.raises(ValueError):
        pf.zeros([0, 3]).reshape([0, -1])


def test_cat_stack_shape_mismatch():
    with pytest.raises(pf.ShapeError) as ei:
        pf.cat([pf.ones([2, 3]), pf.ones([2, 4])], dim=0)
    assert_shapes_in(ei, [2, 3], [2, 4])
    with pytest.raises(pf.ShapeError):
        pf.cat([pf.ones([2, 3]), pf.ones([3])])
    with pytest.raises(pf.ShapeError) as ei:
        pf.stack([pf.ones([2, 3]), pf.ones([3, 2])])
    assert_shapes_in(ei, [2, 3], [3, 2])


def test_cat_stack_empty_list():
    with pytest.raises(ValueError):
        pf.cat([])
    with pytest.raises(ValueError):
        pf.stack([])


def test_expand_incompatible():
    with pytest.raises(pf.ShapeError) as ei:
        pf.ones([3]).expand([4])
    assert_shapes_in(ei, [3], [4])
    with pytest.raises(ValueError):
        pf.ones([2, 3]).expand([3])  # fewer dims than the tensor


def test_setitem_shape_mismatch():
    x = pf.zeros([3, 4])
    x.eval()
    with pytest.raises(pf.ShapeError) as ei:
        x[0] = pf.ones([3])
    assert_shapes_in(ei, [3], [4])
    with pytest.raises(pf.ShapeError):
        x[:, 0:2] = pf.ones([3, 3])


def test_split_sections_must_sum_to_dim():
    with pytest.raises(ValueError):
        pf.split(pf.ones([5, 2]), [2, 2])


# --------------------------------------------------------------------------
# dims out of range -> IndexError
# --------------------------------------------------------------------------

BAD_DIM_CALLS = {
    "sum": lambda x: x.sum(dim=3),
    "sum_neg": lambda x: x.sum(dim=-4),
    "sum_tuple": lambda x: x.sum(dim=(0, 5)),
    "mean": lambda x: pf.mean(x, dim=3),
    "max": lambda x: x.max(dim=3),
    "min_fn": lambda x: pf.min(x, -4),
    "argmax": lambda x: x.argmax(dim=3),
    "softmax": lambda x: pf.softmax(x, dim=3),
    "log_softmax": lambda x: pf.log_softmax(x, dim=-4),
    "transpose": lambda x: x.transpose(0, 3),
    "squeeze": lambda x: x.squeeze(3),
    "unsqueeze": lambda x: x.unsqueeze(4),
    "unsqueeze_neg": lambda x: x.unsqueeze(-5),
    "cat": lambda x: pf.cat([x, x], dim=3),
    "stack": lambda x: pf.stack([x, x], dim=4),
    "split": lambda x: pf.split(x, 1, dim=3),
    "chunk": lambda x: pf.chunk(x, 2, dim=-4),
    "flatten": lambda x: x.flatten(0, 3),
    "permute": lambda x: x.permute([0, 1, 3]),
}


@pytest.mark.parametrize("call", list(BAD_DIM_CALLS.values()), ids=list(BAD_DIM_CALLS))
def test_dim_out_of_range_raises_index_error(call):
    x = pf.ones([2, 3, 4])
    with pytest.raises(IndexError):
        call(x)


def test_permute_wrong_length_or_repeated():
    x = pf.ones([2, 3, 4])
    with pytest.raises(ValueError):
        x.permute([0, 1])
    with pytest.raises(ValueError):
        x.permute([0, 1, 1])


def test_sum_repeated_dim():
    with pytest.raises(ValueError):
        pf.ones([2, 3]).sum(dim=(0, 0))


INDEX_ERRORS = {
    "int_past_end": lambda x: x[3],
    "int_neg_past_start": lambda x: x[-4],
    "second_dim": lambda x: x[0, 4],
    "too_many": lambda x: x[0, 0, 0],
    # data-dependent: may only be detectable when evaluated
    "int_tensor_oob": lambda x: x[pf.tensor([0, 3])].eval(),
}


@pytest.mark.parametrize("call", list(INDEX_ERRORS.values()), ids=list(INDEX_ERRORS))
def test_getitem_out_of_range(call):
    x = pf.ones([3, 4])
    with pytest.raises(IndexError):
        call(x)


def test_bool_mask_shape_mismatch():
    x = pf.ones([3, 4])
    with pytest.raises((IndexError, pf.ShapeError)):
        x[pf.tensor([True, False])]


def test_getitem_bad_index_type():
    x = pf.ones([3, 4])
    with pytest.raises((TypeError, IndexError)):  # NumPy and PyTorch raise IndexError here
        x["a"]
    with pytest.raises((TypeError, IndexError)):
        x[pf.tensor([0.5, 1.0])]  # float tensors are not indices


# --------------------------------------------------------------------------
# bad dtypes -> TypeError
# --------------------------------------------------------------------------


BAD_DTYPES = {
    "junk_str": "banana",
    "int": 42,
    "float": 3.5,
    "object": object(),
    "list": [pf.float32],
}


@pytest.mark.parametrize("bad", list(BAD_DTYPES.values()), ids=list(BAD_DTYPES))
def test_bad_dtype_argument(bad):
    with pytest.raises(TypeError):
        pf.zeros([2], dtype=bad)
    with pytest.raises(TypeError):
        pf.ones([2]).astype(bad)
    with pytest.raises(TypeError):
        pf.dtype_size(bad)
    with pytest.raises(TypeError):
        pf.dtype_name(bad)


def test_mean_of_int_is_type_error():
    with pytest.raises(TypeError):
        pf.tensor([1, 2, 3]).mean()


@pytest.mark.parametrize("op", ["and", "or", "xor", "invert"])
def test_logical_operators_on_float_raise_type_error(op):
    a, b = pf.ones([2]), pf.ones([2])
    with pytest.raises(TypeError):
        {"and": lambda: a & b, "or": lambda: a | b, "xor": lambda: a ^ b, "invert": lambda: ~a}[
            op
        ]()


def test_from_numpy_unsupported_dtype():
    with pytest.raises(TypeError):
        pf.from_numpy(np.array([1 + 2j, 3j]))
    with pytest.raises(TypeError):
        pf.from_numpy(np.array(["a", "b"]))
    with pytest.raises(TypeError):
        pf.from_numpy(np.array([object(), object()], dtype=object))


# --------------------------------------------------------------------------
# non-tensor arguments -> TypeError
# --------------------------------------------------------------------------

NON_TENSOR = {
    "relu_str": lambda x: pf.relu("abc"),
    "relu_none": lambda x: pf.relu(None),
    "exp_dict": lambda x: pf.exp({}),
    "matmul_str": lambda x: pf.matmul(x, "a"),
    "matmul_op_str": lambda x: x @ "a",
    "add_str": lambda x: x + "a",
    "radd_str": lambda x: "a" + x,
    "mul_none": lambda x: x * None,
    "cat_with_int": lambda x: pf.cat([x, 3]),
    "stack_with_none": lambda x: pf.stack([x, None]),
    "where_str": lambda x: pf.where("c", x, x),
    "from_numpy_list": lambda x: pf.from_numpy([1, 2, 3]),
    "sum_dim_str": lambda x: x.sum(dim="a"),
    "reshape_str": lambda x: x.reshape("ab"),
    "get_graph_int": lambda x: pf.get_graph(3),
    "is_lazy_list": lambda x: pf.is_lazy([1]),
    "eval_int": lambda x: pf.eval(3),
}


@pytest.mark.parametrize("call", list(NON_TENSOR.values()), ids=list(NON_TENSOR))
def test_non_tensor_arguments_raise_type_error(call):
    x = pf.ones([2, 2])
    with pytest.raises(TypeError):
        call(x)


# --------------------------------------------------------------------------
# other bad arguments -> ValueError
# --------------------------------------------------------------------------

BAD_VALUES = {
    "zeros_negative_dim": lambda: pf.zeros([-1, 3]),
    "ones_negative_dim": lambda: pf.ones([2, -5]),
    "randn_negative_dim": lambda: pf.randn([-2]),
    "arange_step_zero": lambda: pf.arange(0, 5, 0),
    "linspace_negative_steps": lambda: pf.linspace(0, 1, -1),
    "eye_negative": lambda: pf.eye(-1),
    "randint_low_ge_high": lambda: pf.randint(5, 5, [3]),
    "split_size_zero": lambda: pf.split(pf.ones([4]), 0),
    "chunk_zero": lambda: pf.chunk(pf.ones([4]), 0),
    "gelu_bad_approx": lambda: pf.gelu(pf.ones([2]), approximate="fast"),
    "item_multi_element": lambda: pf.ones([2]).item(),
    "tensor_ragged": lambda: pf.tensor([[1, 2], [3]]),
    "max_of_empty": lambda: pf.zeros([0]).max().eval(),
    "argmax_of_empty": lambda: pf.zeros([0, 3]).argmax().eval(),
    "row_partition_zero": lambda: pf.MeshLayout.row_partition(0),
    "grid_zero": lambda: pf.MeshLayout.grid(0, 4),
}


@pytest.mark.parametrize("call", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
def test_bad_values_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_errors_do_not_poison_later_work():
    a = pf.ones([3, 4])
    with pytest.raises(pf.ShapeError):
        a + pf.ones([5])
    b = a + 1.0
    np.testing.assert_array_equal(b.numpy(), np.full((3, 4), 2.0, np.float32))
