"""The fabric simulator reproduces PyFlame's CPU executor for every lowering rule on every
layout (the check runs inside code generation: ``sim_max_abs_error``)."""

import numpy as np
import pyflame as pf
import pytest
from pyflame.nn import functional as F

LAYOUTS = [
    pf.MeshLayout.single_pe(),
    pf.MeshLayout.row_partition(4),
    pf.MeshLayout.col_partition(4),
    pf.MeshLayout.grid(2, 2),
    pf.MeshLayout.grid(4, 4),
]
IDS = ["single_pe", "row4", "col4", "grid2x2", "grid4x4"]


def _x(layout, shape=(8, 16), shift=0.0):
    return pf.randn(list(shape), layout=layout) + shift


def _layernorm(x):
    mean = x.mean(dim=-1, keepdim=True)
    d = x - mean
    var = (d * d).mean(dim=-1, keepdim=True)
    return d / pf.sqrt(var + 1e-5)


def _ints(layout):
    return pf.from_numpy((np.arange(128, dtype=np.int32) % 17 - 8).reshape(8, 16), layout=layout)


def _eq_mask(a, b):
    return (a == pf.maximum(a, b)).float()


RULES = {
    "add_tile": lambda lay: _x(lay) + _x(lay),
    "sub_rowvec": lambda lay: _x(lay) - _x(lay, (16,)),
    "mul_colvec": lambda lay: _x(lay) * _x(lay, (8, 1)),
    "div_scalar": lambda lay: _x(lay) / 3.0,
    "rsub_scalar": lambda lay: 2.0 - _x(lay),
    "maximum": lambda lay: pf.maximum(_x(lay), _x(lay)),
    "minimum": lambda lay: pf.minimum(_x(lay), _x(lay, (16,))),
    "relu": lambda lay: pf.relu(_x(lay)),
    "sigmoid": lambda lay: pf.sigmoid(_x(lay)),
    "tanh": lambda lay: pf.tanh(_x(lay)),
    "exp": lambda lay: pf.exp(_x(lay)),
    "log": lambda lay: pf.log(pf.abs(_x(lay)) + 0.5),
    "sqrt": lambda lay: pf.sqrt(pf.abs(_x(lay))),
    "gelu": lambda lay: pf.gelu(_x(lay)),
    "silu": lambda lay: pf.silu(_x(lay)),
    "sum_last": lambda lay: _x(lay).sum(dim=-1),
    "sum_first": lambda lay: _x(lay).sum(dim=0),
    "mean_all": lambda lay: _x(lay).mean(),
    "max_last": lambda lay: _x(lay).amax(dim=-1, keepdim=True),
    "min_last": lambda lay: _x(lay).amin(dim=-1, keepdim=True),
    "min_first": lambda lay: _x(lay).amin(dim=0),
    "lt_mask": lambda lay: (_x(lay) < _x(lay, (16,))).float(),
    "ge_mask_scalar": lambda lay: (_x(lay) >= 0.25).float() * _x(lay),
    "eq_mask": lambda lay: _eq_mask(_x(lay), _x(lay)),
    "where": lambda lay: pf.where(_x(lay) > 0.0, _x(lay), _x(lay, (16,))),
    "matmul": lambda lay: _x(lay, (8, 16)) @ _x(lay, (16, 8)),
    "gemv": lambda lay: _x(lay, (8, 16)) @ _x(lay, (16,)),
    "softmax": lambda lay: pf.softmax(_x(lay), dim=-1),
    "softmax_dim0": lambda lay: pf.softmax(_x(lay), dim=0),
    "log_softmax": lambda lay: pf.log_softmax(_x(lay), dim=-1),
    "layernorm": lambda lay: _layernorm(_x(lay)),
    "transpose": lambda lay: pf.transpose(_x(lay), 0, 1),
    "transpose_add": lambda lay: pf.transpose(_x(lay), 0, 1) + _x(lay, (16, 8)),
    "transpose_matmul": lambda lay: pf.transpose(_x(lay, (16, 8)), 0, 1) @ _x(lay, (16, 8)),
    "permute_3d": lambda lay: pf.exp(pf.permute(_x(lay, (4, 8, 4)), [2, 0, 1])),
    "reshape_moves": lambda lay: _x(lay).reshape([16, 8]) * _x(lay, (16, 8)),
    "sum_middle": lambda lay: _x(lay, (4, 8, 16)).sum(dim=1),
    "mean_middle_keep": lambda lay: _x(lay, (4, 8, 16)).mean(dim=1, keepdim=True),
    "max_axes_0_2": lambda lay: _x(lay, (4, 8, 16)).amax(dim=(0, 2)),
    "min_first_3d": lambda lay: _x(lay, (4, 8, 16)).amin(dim=0),
    "softmax_middle": lambda lay: pf.softmax(_x(lay, (4, 8, 16)), dim=1),
    "log_softmax_first_3d": lambda lay: pf.log_softmax(_x(lay, (4, 8, 16)), dim=0),
    "slice_rows": lambda lay: pf.exp(_x(lay)[0:4]),
    "slice_strided": lambda lay: _x(lay)[:, 1::2] + 1.0,
    "expand": lambda lay: pf.relu(_x(lay).sum(dim=1, keepdim=True).expand(8, 16)),
    "cat_rows": lambda lay: pf.exp(pf.cat([_x(lay), _x(lay, (4, 16))], dim=0)),
    "cat_cols": lambda lay: pf.relu(pf.cat([_x(lay), _x(lay)], dim=1)),
    "sin": lambda lay: pf.sin(_x(lay) * 3.0),
    "cos": lambda lay: pf.cos(_x(lay) * 3.0),
    "floor": lambda lay: pf.floor(_x(lay) * 4.0),
    "ceil": lambda lay: pf.ceil(_x(lay) * 4.0),
    "sign": lambda lay: pf.sign(pf.relu(_x(lay))),
    "erf": lambda lay: pf.erf(_x(lay)),
    "cast_int_input": lambda lay: _ints(lay).float() * _x(lay),
    "cast_to_bool_where": lambda lay: pf.where(pf.relu(_x(lay)).bool(), _x(lay), 1.0),
    # the fused normalization kernels, lowered as the primitives they stand for
    "nn_layer_norm": lambda lay: F.layer_norm(_x(lay), [16], _x(lay, (16,)), _x(lay, (16,))),
    "nn_batch_norm": lambda lay: F.batch_norm(_x(lay), None, None, training=True),
    "mlp": lambda lay: pf.softmax(
        pf.relu(_x(lay, (8, 16)) @ _x(lay, (16, 8)) + _x(lay, (8,))), dim=-1
    ),
}


@pytest.mark.parametrize("layout", LAYOUTS, ids=IDS)
@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_on_layout(rule, layout, opts):
    pf.manual_seed(0)
    y = RULES[rule](layout)
    opts.use_cache = False
    r = pf.compile_to_csl(y, opts)
    assert r.success, r.error_message
    assert r.sim_max_abs_error is not None
    scale = float(np.max(np.abs(y.numpy()))) + 1.0
    assert r.sim_max_abs_error <= 1e-4 * scale, (rule, r.sim_max_abs_error)
    assert r.estimate["cycles"] > 0


def test_bool_output_is_an_explicit_error(opts):
    pf.manual_seed(0)
    a = pf.randn([4, 4])
    r = pf.compile_to_csl(a < pf.randn([4, 4]), opts)
    assert not r.success
    assert "bool" in r.error_message


def test_fused_attention_lowers_as_primitives(opts):
    pf.manual_seed(0)
    q, k, v = pf.randn([8, 16]), pf.randn([6, 16]), pf.randn([6, 4])
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=pf.randn([8, 6]))
    opts.use_cache = False
    r = pf.compile_to_csl(y, opts)
    assert r.success, r.error_message
    assert r.sim_max_abs_error <= 1e-4 * (float(np.max(np.abs(y.numpy()))) + 1.0)
