"""Shape and combination ops: reshape/view/transpose/permute/squeeze/unsqueeze/
flatten/expand/contiguous/T, cat/stack/split/chunk, and the shape properties."""

import numpy as np
import pf_testutil as U
import pyflame as pf
import pytest


def arange_t(*shape, dt="float32"):
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    return U.make(a, dt), a


# --------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [[], [0], [5], [3, 4], [2, 0, 3], [2, 3, 4, 5]],
    ids=lambda s: "x".join(map(str, s)) or "scalar",
)
def test_shape_ndim_numel_len(shape):
    x = pf.zeros(shape)
    assert x.shape == shape
    assert isinstance(x.shape, list)
    assert x.ndim == len(shape) and isinstance(x.ndim, int)
    assert x.numel == int(np.prod(shape)) and isinstance(x.numel, int)
    if shape:
        assert len(x) == shape[0]
    else:
        with pytest.raises(TypeError):
            len(x)


def test_spec_property_example():
    x = pf.randn([3, 4, 5])
    assert x.shape == [3, 4, 5]
    assert x.dtype == pf.float32
    assert x.ndim == 3
    assert x.numel == 60


# --------------------------------------------------------------------------
# reshape / view
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "src,new,expected",
    [
        ([12], [3, 4], [3, 4]),
        ([12], [2, 2, 3], [2, 2, 3]),
        ([24], [4, -1], [4, 6]),
        ([2, 3, 4], [-1], [24]),
        ([2, 3, 4], [-1, 4], [6, 4]),
        ([2, 3, 4], [6, -1, 2], [6, 2, 2]),
        ([1], [], []),
        ([], [1, 1], [1, 1]),
        ([0, 3], [3, 0], [3, 0]),
        ([0, 3], [-1, 3], [0, 3]),
    ],
    ids=lambda v: str(v).replace(" ", ""),
)
def test_reshape_shapes_and_values(src, new, expected):
    x, a = arange_t(*src)
    y = x.reshape(new)
    assert y.shape == expected
    U.assert_tensor_close(y, a.reshape(expected), exact=True)
    z = pf.reshape(x, new)
    assert z.shape == expected


def test_spec_reshape_arange():
    x = pf.arange(12)
    assert x.reshape([3, 4]).shape == [3, 4]
    assert x.reshape([2, 2, 3]).shape == [2, 2, 3]
    assert pf.randn([24]).reshape([4, -1]).shape == [4, 6]


def test_reshape_accepts_tuple():
    x, a = arange_t(2, 6)
    assert x.reshape((3, 4)).shape == [3, 4]


def test_reshape_of_transposed_is_row_major_of_logical_values():
    x, a = arange_t(3, 4)
    y = x.transpose(0, 1).reshape([-1])
    U.assert_tensor_close(y, a.T.reshape(-1), exact=True)
    z = x[:, ::2].reshape([2, 3])
    U.assert_tensor_close(z, a[:, ::2].reshape(2, 3), exact=True)


def test_view_contiguous():
    x, a = arange_t(4, 6)
    U.assert_tensor_close(x.view([3, 8]), a.reshape(3, 8), exact=True)
    U.assert_tensor_close(x.view([-1]), a.reshape(-1), exact=True)


def test_view_then_op_then_view(rng):
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    x = U.make(a, "float32")
    y = (x.view([6, 4]) * 2.0).view([2, 12])
    U.assert_tensor_close(y, (a.reshape(6, 4) * 2).reshape(2, 12), exact=True)


# --------------------------------------------------------------------------
# transpose / permute / T
# --------------------------------------------------------------------------


@pytest.mark.parametrize("d0,d1", [(0, 1), (1, 0), (0, 2), (-1, -3), (1, 1), (2, -2)])
def test_transpose(d0, d1):
    x, a = arange_t(2, 3, 4)
    y = x.transpose(d0, d1)
    ref = np.swapaxes(a, d0, d1)
    assert y.shape == list(ref.shape)
    U.assert_tensor_close(y, ref, exact=True)
    U.assert_tensor_close(pf.transpose(x, d0, d1), ref, exact=True)


def test_spec_transpose_example():
    assert pf.randn([3, 4]).transpose(0, 1).shape == [4, 3]
    assert pf.randn([3, 4, 5]).transpose(0, 2).shape == [5, 4, 3]


def test_T_property():
    x, a = arange_t(3, 5)
    U.assert_tensor_close(x.T, a.T, exact=True)
    U.assert_tensor_close(x.T.T, a, exact=True)


@pytest.mark.parametrize(
    "perm",
    [(0, 1, 2), (2, 1, 0), (1, 2, 0), (2, 0, 1), (-1, 0, 1)],
    ids=lambda p: "".join(str(i) for i in p),
)
def test_permute(perm):
    x, a = arange_t(2, 3, 4)
    y = x.permute(list(perm))
    U.assert_tensor_close(y, np.transpose(a, perm), exact=True)
    y2 = x.permute(*perm)
    U.assert_tensor_close(y2, np.transpose(a, perm), exact=True)


def test_double_transpose_roundtrip_and_ops_on_views():
    x, a = arange_t(3, 4)
    y = x.transpose(0, 1).transpose(0, 1)
    U.assert_tensor_close(y, a, exact=True)
    z = x.T + x.T
    U.assert_tensor_close(z, 2 * a.T, exact=True)
    w = x.T @ x
    U.assert_tensor_close(w, a.T @ a, rtol=1e-6)


# --------------------------------------------------------------------------
# squeeze / unsqueeze / flatten
# --------------------------------------------------------------------------


def test_spec_squeeze_unsqueeze():
    x = pf.randn([1, 3, 1, 4])
    assert x.squeeze().shape == [3, 4]
    assert x.squeeze(0).shape == [3, 1, 4]
    x = pf.randn([1, 3, 1, 4, 1])
    assert x.squeeze().shape == [3, 4]
    assert pf.squeeze(x, 0).shape == [3, 1, 4, 1]
    y = pf.randn([3, 4])
    assert y.unsqueeze(0).shape == [1, 3, 4]
    assert y.unsqueeze(2).shape == [3, 4, 1]
    assert y.unsqueeze(-1).shape == [3, 4, 1]
    assert pf.unsqueeze(y, 1).shape == [3, 1, 4]


def test_squeeze_non_unit_dim_is_noop():
    x = pf.zeros([2, 3])
    assert x.squeeze(0).shape == [2, 3]
    assert x.squeeze(-1).shape == [2, 3]


@pytest.mark.parametrize(
    "dim,expected",
    [(0, [1, 2, 3]), (1, [2, 1, 3]), (2, [2, 3, 1]), (-1, [2, 3, 1]), (-3, [1, 2, 3])],
)
def test_unsqueeze_positions(dim, expected):
    x, a = arange_t(2, 3)
    y = x.unsqueeze(dim)
    assert y.shape == expected
    U.assert_tensor_close(y, a.reshape(expected), exact=True)


@pytest.mark.parametrize(
    "start,end,expected",
    [(0, -1, [24]), (1, -1, [2, 12]), (0, 1, [6, 4]), (1, 2, [2, 12]), (2, 2, [2, 3, 4])],
)
def test_flatten_ranges(start, end, expected):
    x, a = arange_t(2, 3, 4)
    y = x.flatten(start, end)
    assert y.shape == expected
    U.assert_tensor_close(y, a.reshape(expected), exact=True)


def test_flatten_scalar_gives_1d():
    assert pf.tensor(3.0).flatten().shape == [1]


# --------------------------------------------------------------------------
# expand / contiguous
# --------------------------------------------------------------------------


def test_expand_values_and_chained_ops():
    x, a = arange_t(3, 1)
    y = x.expand([3, 4])
    U.assert_tensor_close(y, np.broadcast_to(a, (3, 4)), exact=True)
    U.assert_tensor_close(x.expand([2, 3, 4]), np.broadcast_to(a, (2, 3, 4)), exact=True)
    U.assert_tensor_close(x.expand([-1, 5]), np.broadcast_to(a, (3, 5)), exact=True)
    # expanded view feeding a reduction and a contiguous copy
    U.assert_tensor_close(y.sum(dim=1), a[:, 0] * 4, exact=True)
    U.assert_tensor_close(y.contiguous(), np.broadcast_to(a, (3, 4)), exact=True)


def test_expand_accepts_varargs():
    x, a = arange_t(1, 3)
    U.assert_tensor_close(x.expand(2, 3), np.broadcast_to(a, (2, 3)), exact=True)


def test_contiguous_of_strided_views():
    x, a = arange_t(4, 6)
    U.assert_tensor_close(x.T.contiguous(), a.T, exact=True)
    U.assert_tensor_close(x[1:, ::3].contiguous(), a[1:, ::3], exact=True)
    U.assert_tensor_close(x.contiguous(), a, exact=True)


def test_chain_of_views_matches_numpy():
    x, a = arange_t(4, 6, 5)
    y = x.permute([2, 0, 1])[1:, ::2].transpose(0, 2).reshape([-1, 4]).unsqueeze(0)[..., 1:]
    ref = np.transpose(a, (2, 0, 1))[1:, ::2].swapaxes(0, 2).reshape(-1, 4)[None][..., 1:]
    U.assert_tensor_close(y, ref, exact=True)


def test_view_of_lazy_tensor(rng):
    x = pf.randn([3, 4])
    y = x.transpose(0, 1).reshape([2, 6])
    xv = x.numpy()
    np.testing.assert_array_equal(y.numpy(), xv.T.reshape(2, 6))


# --------------------------------------------------------------------------
# cat / stack / split / chunk
# --------------------------------------------------------------------------


def test_spec_cat_stack_examples():
    a = pf.randn([3, 4])
    b = pf.randn([5, 4])
    assert pf.cat([a, b], dim=0).shape == [8, 4]
    c = pf.randn([3, 4])
    assert pf.stack([a, c], dim=0).shape == [2, 3, 4]


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_stack_dims(dim, rng):
    arrs = [rng.standard_normal((2, 3)).astype(np.float32) for _ in range(4)]
    out = pf.stack([U.make(x, "float32") for x in arrs], dim=dim)
    U.assert_tensor_close(out, np.stack(arrs, axis=dim), exact=True)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_dims_with_views(dim, rng):
    a = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal((3, 4)).astype(np.float32)
    ta, tb = U.make(a, "float32"), U.make(b, "float32").T
    out = pf.cat([ta, tb, ta], dim=dim)
    U.assert_tensor_close(out, np.concatenate([a, b.T, a], axis=dim), exact=True)


def test_cat_accepts_tuple_and_lazy_inputs(rng):
    a = pf.randn([2, 2])
    b = a * 2.0
    out = pf.cat((a, b), dim=1)
    av = a.numpy()
    np.testing.assert_array_equal(out.numpy(), np.concatenate([av, av * 2], axis=1))


def test_split_and_chunk_sizes():
    x, a = arange_t(10, 2)
    parts = pf.split(x, 4)
    assert isinstance(parts, (list, tuple))
    assert [p.shape for p in parts] == [[4, 2], [4, 2], [2, 2]]
    parts = pf.split(x, [3, 7])
    assert [p.shape for p in parts] == [[3, 2], [7, 2]]
    U.assert_tensor_close(parts[1], a[3:], exact=True)
    parts = pf.chunk(x, 3)
    assert [p.shape for p in parts] == [[4, 2], [4, 2], [2, 2]]
    parts = pf.chunk(x, 2, dim=1)
    assert [p.shape for p in parts] == [[10, 1], [10, 1]]
    U.assert_tensor_close(parts[1], a[:, 1:], exact=True)


def test_split_pieces_are_usable_in_ops():
    x, a = arange_t(6, 3)
    p0, p1 = pf.split(x, 3)
    U.assert_tensor_close(p0 + p1, a[:3] + a[3:], exact=True)
    U.assert_tensor_close(pf.cat(pf.chunk(x, 3), dim=0), a, exact=True)


@pytest.mark.parametrize("dt", ["float64", "int64", "bool", "float16"])
def test_cat_stack_keep_dtype(dt):
    a = pf.ones([2, 3], dtype=U.pfdt(dt))
    assert pf.cat([a, a]).dtype == U.pfdt(dt)
    assert pf.stack([a, a]).dtype == U.pfdt(dt)
    assert pf.split(a, 1)[0].dtype == U.pfdt(dt)
