"""__getitem__ / __setitem__ semantics, checked against NumPy indexing."""

import numpy as np
import pf_testutil as U
import pyflame as pf
import pytest

A = np.arange(60, dtype=np.float32).reshape(3, 4, 5)

E = Ellipsis
# (id, index) - the index is applied to both a pyflame tensor and NumPy.
BASIC_INDEXES = [
    ("int0", 0),
    ("int_neg", -1),
    ("int_pair", (1, 2)),
    ("int_triple_0d", (1, 2, 3)),
    ("int_neg_pair", (-1, -2)),
    ("slice_start", slice(1, None)),
    ("slice_stop", slice(None, 2)),
    ("slice_step", slice(None, None, 2)),
    ("slice_2d_step", (slice(1, 3), slice(None, None, 2))),
    ("slice_step3_mid", (slice(None), slice(1, 4, 2))),
    ("slice_neg_start", (slice(None), slice(None), slice(-2, None))),
    ("slice_neg_both", (slice(-2, None), slice(-3, -1))),
    ("slice_past_end", slice(5, None)),
    ("slice_empty_mid", (slice(None), slice(10, None))),
    ("slice_zero_len", slice(0, 0)),
    ("slice_clamped_stop", slice(1, 100)),
    ("slice_step_gt_len", (slice(None), slice(None, None, 7))),
    ("ellipsis_slice", (E, slice(1, 3))),
    ("ellipsis_int", (E, 0)),
    ("int_ellipsis", (0, E)),
    ("ellipsis_mid", (1, E, 2)),
    ("ellipsis_int_slice", (E, 1, slice(None))),
    ("ellipsis_only", E),
    ("none_front", None),
    ("none_second", (slice(None), None)),
    ("none_last", (E, None)),
    ("int_none_slice", (0, None, slice(1, 3))),
    ("none_none", (None, 1, None)),
    ("mixed", (1, E, None, slice(2, 4))),
    ("full_slice", slice(None)),
]


def _pf(dt="float32"):
    return U.make(A, dt)


@pytest.mark.parametrize("index", [pytest.param(i, id=n) for n, i in BASIC_INDEXES])
def test_getitem_basic(index):
    out = _pf()[index]
    ref = A[index]
    assert out.shape == list(np.shape(ref))
    U.assert_tensor_close(out, ref, out_dtype="float32", exact=True)


@pytest.mark.parametrize("index", [pytest.param(i, id=n) for n, i in BASIC_INDEXES[:12]])
@pytest.mark.parametrize("dt", ["int64", "bool", "float16", "bfloat16"])
def test_getitem_other_dtypes(index, dt):
    a = A if dt != "bool" else (A % 3 == 0)
    x = U.make(a, dt)
    U.assert_tensor_close(x[index], U.exact_inputs(a, dt)[index], out_dtype=dt, exact=True)


def test_getitem_chained_and_item():
    x = _pf()
    assert x[1][2][3].item() == A[1, 2, 3]
    assert x[1, 2, 3].item() == A[1, 2, 3]
    assert x[-1, -1, -1].shape == []
    assert x[2][1:3][:, ::2].tolist() == A[2][1:3][:, ::2].tolist()


def test_getitem_on_lazy_tensor():
    x = pf.randn([3, 4])
    y = x[1:, 2]
    full = x.numpy()
    np.testing.assert_array_equal(y.numpy(), full[1:, 2])


def test_getitem_result_feeds_ops():
    x = _pf()
    y = x[:, 1:3] * 2.0 + x[:, :2]
    U.assert_tensor_close(y, A[:, 1:3] * 2 + A[:, :2], exact=True)


def test_getitem_of_view():
    x = _pf().transpose(0, 2)
    U.assert_tensor_close(x[1:, ::2, -1], np.swapaxes(A, 0, 2)[1:, ::2, -1], exact=True)


# --------------------------------------------------------------------------
# integer tensor indices
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "idx",
    [[2, 0, 2], [1], [[0, 1], [2, 2]], [-1, 0], []],
    ids=["repeat", "single", "2d", "negative", "empty"],
)
def test_getitem_int_tensor_first_dim(idx):
    it = pf.tensor(idx, dtype=pf.int64)
    ref = A[np.array(idx, dtype=np.int64)]
    U.assert_tensor_close(_pf()[it], ref, exact=True)


def test_getitem_int_tensor_later_dim():
    it = pf.tensor([3, 0])
    U.assert_tensor_close(_pf()[:, it], A[:, np.array([3, 0])], exact=True)
    U.assert_tensor_close(_pf()[..., it], A[..., np.array([3, 0])], exact=True)


def test_getitem_int_tensor_from_argmax(rng):
    a = rng.standard_normal((6, 4)).astype(np.float32)
    x = U.make(a, "float32")
    idx = x.sum(dim=1).argmax(dim=0, keepdim=True)
    U.assert_tensor_close(x[idx], a[[np.argmax(a.sum(axis=1))]], exact=True)


# --------------------------------------------------------------------------
# boolean masks
# --------------------------------------------------------------------------


def test_getitem_bool_mask_full_shape():
    x = _pf()
    m = x > 30.0
    U.assert_tensor_close(x[m], A[A > 30.0], exact=True)


def test_getitem_bool_mask_first_dim():
    m = pf.tensor([True, False, True])
    U.assert_tensor_close(_pf()[m], A[np.array([True, False, True])], exact=True)


def test_getitem_bool_mask_2d_prefix():
    mnp = A.sum(axis=2) % 2 == 0
    U.assert_tensor_close(_pf()[U.make(mnp, "bool")], A[mnp], exact=True)


def test_getitem_bool_mask_all_false_and_all_true():
    x = _pf()
    assert x[x > 1000.0].shape == [0]
    U.assert_tensor_close(x[x >= 0.0], A.reshape(-1), exact=True)


def test_getitem_bool_mask_from_other_tensor(rng):
    a = rng.standard_normal(20).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    ta, tb = U.make(a, "float32"), U.make(b, "float32")
    U.assert_tensor_close(ta[tb > 0.0], a[b > 0], exact=True)
    U.assert_tensor_close(ta[(tb > 0.0) & (ta < 0.5)], a[(b > 0) & (a < 0.5)], exact=True)


# --------------------------------------------------------------------------
# __setitem__ on realized tensors
# --------------------------------------------------------------------------


def _realized(a, dt="float32"):
    return U.make(np.array(a, copy=True), dt)


B = np.arange(12, dtype=np.float32).reshape(3, 4)

# (id, index, numpy value, how to pass the value: "scalar" | "tensor")
SETITEM_CASES = [
    ("row_scalar", 0, 5.0, "scalar"),
    ("col_int_scalar", (slice(None), 1), 7, "scalar"),
    ("element", (1, 2), 9.5, "scalar"),
    ("neg_element", (-1, -1), -3.0, "scalar"),
    ("all", slice(None), 0.0, "scalar"),
    ("ellipsis", E, 2.0, "scalar"),
    (
        "strided_block_tensor",
        (slice(1, 3), slice(None, None, 2)),
        np.array([[100, 101], [102, 103]], np.float32),
        "tensor",
    ),
    ("row_tensor", 1, np.array([1, 2, 3, 4], np.float32), "tensor"),
    (
        "broadcast_row_into_block",
        (slice(None), slice(0, 2)),
        np.array([-1, -2], np.float32),
        "tensor",
    ),
    (
        "broadcast_col",
        (slice(None), slice(1, 3)),
        np.array([[10], [20], [30]], np.float32),
        "tensor",
    ),
    ("ellipsis_last_col", (E, -1), np.array([7, 8, 9], np.float32), "tensor"),
    ("0d_tensor_value", (0, slice(None)), np.array(4.5, np.float32), "tensor"),
]


@pytest.mark.parametrize(
    "index,value,kind", [pytest.param(i, v, k, id=n) for n, i, v, k in SETITEM_CASES]
)
def test_setitem(index, value, kind):
    x = _realized(B)
    ref = B.copy()
    ref[index] = value
    x[index] = value if kind == "scalar" else U.make(value, "float32")
    assert x.shape == [3, 4] and x.dtype == pf.float32
    U.assert_tensor_close(x, ref, exact=True)


def test_setitem_bool_mask_scalar():
    x = _realized(B)
    ref = B.copy()
    ref[ref > 5] = 0.0
    x[x > 5.0] = 0.0
    U.assert_tensor_close(x, ref, exact=True)


def test_setitem_bool_mask_tensor_values():
    x = _realized(B)
    mask = np.array([True, False, True])
    ref = B.copy()
    ref[mask] = np.array([-1, -2, -3, -4], np.float32)
    x[pf.tensor([True, False, True])] = pf.tensor([-1.0, -2.0, -3.0, -4.0])
    U.assert_tensor_close(x, ref, exact=True)


def test_setitem_int_tensor_index():
    x = _realized(B)
    ref = B.copy()
    ref[np.array([0, 2])] = -1.0
    x[pf.tensor([0, 2])] = -1.0
    U.assert_tensor_close(x, ref, exact=True)


def test_setitem_casts_value_dtype():
    x = _realized(B)
    x[0] = pf.tensor([1, 2, 3, 4])  # int64 into float32
    assert x.dtype == pf.float32
    ref = B.copy()
    ref[0] = [1, 2, 3, 4]
    U.assert_tensor_close(x, ref, exact=True)


def test_setitem_int_tensor():
    a = np.arange(10).reshape(2, 5)
    x = _realized(a, "int64")
    x[:, ::2] = 0
    x[1, 1] = -7
    ref = a.copy()
    ref[:, ::2] = 0
    ref[1, 1] = -7
    U.assert_tensor_close(x, ref, out_dtype="int64")


def test_setitem_visible_to_later_ops():
    x = _realized(B)
    x[1] = 0.0
    y = x * 2.0 + 1.0
    ref = B.copy()
    ref[1] = 0
    U.assert_tensor_close(y, ref * 2 + 1, exact=True)
    assert y.sum().item() == float((ref * 2 + 1).sum())


def test_setitem_repeated_writes():
    x = _realized(np.zeros((4,), np.float32))
    for i in range(4):
        x[i] = float(i * i)
    U.assert_tensor_close(x, np.array([0.0, 1.0, 4.0, 9.0]), exact=True)


def test_setitem_does_not_touch_source_array():
    a = B.copy()
    x = pf.tensor(a)  # pf.tensor copies its input (like torch.tensor)
    x.eval()
    x[0] = 99.0
    np.testing.assert_array_equal(a, B)
    assert x[0, 0].item() == 99.0
