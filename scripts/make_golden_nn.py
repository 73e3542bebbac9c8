#!/usr/bin/env python3
"""Generates the PyTorch golden files for ``tests/nn`` (layers, losses and nn.functional).

Needs PyTorch (a dev-only dependency: the tests themselves never import torch). Run from the
repository root::

    python3 scripts/make_golden_nn.py            # writes tests/golden/nn/<case>.npz
    python3 scripts/make_golden_nn.py --check    # regenerates in memory, compares, writes nothing

Every case builds a ``torch.nn`` module (``kind="module"``) or calls a ``torch.nn.functional``
function (``kind="functional"``) on small float32 (or float64) inputs drawn from a fixed,
per-case seeded generator. A file holds:

* ``config``: JSON describing the case (class or function name, constructor and call
  arguments, mode, dtype, ...) so the tests can rebuild it in PyFlame;
* ``in_<i>``: the positional inputs; ``kw__<name>``: tensor constructor arguments (loss
  weights); ``ckw__<name>``: tensor call arguments (attention masks);
* ``pre_<k>_<i>``: inputs of ``pre_steps`` extra training-mode calls made before the measured
  call (BatchNorm running statistics);
* ``sd__<key>``: the module's initial ``state_dict``; ``final_sd__<key>``: its state after all
  calls;
* ``out_<j>``: the outputs; ``w_<j>``: fixed random weights; ``gin_<i>`` / ``gp__<name>``: the
  gradients of ``sum_j sum(out_j * w_j)`` with respect to the inputs and the parameters.

Example:
    >>> # python3 scripts/make_golden_nn.py && ls tests/golden/nn | head
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import warnings
import zlib
from typing import Any, Callable, Dict, List

import numpy as np

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "nn")


def F(shape: List[int], scale: float = 1.0, grad: bool = True) -> Dict[str, Any]:  # noqa: N802
    """A float input drawn from N(0, scale**2)."""
    return {"kind": "float", "shape": shape, "scale": scale, "grad": grad}


def I(shape: List[int], low: int, high: int, **extra: Any) -> Dict[str, Any]:  # noqa: E743, N802
    """An int64 input drawn uniformly from [low, high); ``set`` forces values at flat indices."""
    return {"kind": "int", "shape": shape, "low": low, "high": high, **extra}


def B(shape: List[int], p: float = 0.3, **extra: Any) -> Dict[str, Any]:  # noqa: N802
    """A bool input, True with probability p (``causal`` gives an upper-triangular mask)."""
    return {"kind": "bool", "shape": shape, "p": p, **extra}


def P(shape: List[int], log: bool = False, grad: bool = False) -> Dict[str, Any]:  # noqa: N802
    """Probabilities (softmax over dim 1, or its log) of a random draw."""
    return {"kind": "logprob" if log else "prob", "shape": shape, "grad": grad}


def U(shape: List[int], low: float, high: float, grad: bool = True) -> Dict[str, Any]:  # noqa: N802
    """A float input drawn uniformly from [low, high)."""
    return {"kind": "uniform", "shape": shape, "low": low, "high": high, "grad": grad}


def BIN(shape: List[int]) -> Dict[str, Any]:  # noqa: N802
    """Binary float targets (0.0 / 1.0)."""
    return {"kind": "binary", "shape": shape, "grad": False}


def M(target: str, *args: Any, inputs: List[Dict[str, Any]], **extra: Any) -> Dict[str, Any]:  # noqa: N802
    """A module case."""
    return {"kind": "module", "target": target, "args": list(args), "inputs": inputs, **extra}


def FN(target: str, *args: Any, inputs: List[Dict[str, Any]], **extra: Any) -> Dict[str, Any]:  # noqa: N802
    """A functional case (``args`` follow the tensor inputs)."""
    return {"kind": "functional", "target": target, "args": list(args), "inputs": inputs, **extra}


X4 = [F([3, 4], scale=3.0)]
# fmt: off
CASES: Dict[str, Dict[str, Any]] = {
    # ------------------------------------------------------------------ linear & shape
    "linear": M("Linear", 4, 3, inputs=[F([2, 4])]),
    "linear_nobias_3d": M("Linear", 4, 3, kwargs={"bias": False}, inputs=[F([2, 3, 4])]),
    "linear_f64": M("Linear", 5, 2, inputs=[F([3, 5])], dtype="float64"),
    "identity": M("Identity", inputs=[F([2, 3])]),
    "flatten": M("Flatten", inputs=[F([2, 3, 2, 2])]),
    "flatten_range": M("Flatten", 0, 1, inputs=[F([2, 3, 2])]),
    "unflatten": M("Unflatten", 1, [3, 2], inputs=[F([2, 6])]),
    # ------------------------------------------------------------------ convolution
    "conv2d": M("Conv2d", 3, 4, 3, inputs=[F([2, 3, 7, 6])]),
    "conv2d_stride_pad": M("Conv2d", 3, 4, 3, kwargs={"stride": 2, "padding": 1},
        inputs=[F([2, 3, 7, 6])]),
    "conv2d_dilation": M("Conv2d", 2, 3, 3, kwargs={"dilation": 2, "padding": 2},
        inputs=[F([1, 2, 8, 7])]),
    "conv2d_groups": M("Conv2d", 4, 6, 3, kwargs={"groups": 2, "padding": 1},
        inputs=[F([2, 4, 5, 5])]),
    "conv2d_depthwise": M("Conv2d", 4, 4, 3, kwargs={"groups": 4, "bias": False},
        inputs=[F([1, 4, 6, 6])]),
    "conv2d_same_even": M("Conv2d", 2, 3, 4, kwargs={"padding": "same"}, inputs=[F([2, 2, 6, 5])]),
    "conv2d_same_dilated": M("Conv2d", 2, 2, [2, 3], kwargs={"padding": "same", "dilation": [1, 2]},
        inputs=[F([1, 2, 5, 6])]),
    "conv2d_valid": M("Conv2d", 2, 3, [2, 3], kwargs={"padding": "valid", "stride": [2, 1]},
        inputs=[F([2, 2, 7, 6])]),
    "conv2d_rect": M("Conv2d", 3, 2, [2, 3], kwargs={"stride": [2, 1], "padding": [1, 0]},
        inputs=[F([1, 3, 6, 7])]),
    "conv2d_reflect": M("Conv2d", 2, 3, 3, kwargs={"padding": 1, "padding_mode": "reflect"},
        inputs=[F([1, 2, 5, 5])]),
    "conv2d_circular": M("Conv2d", 2, 2, 3, kwargs={"padding": [1, 2], "padding_mode": "circular"},
        inputs=[F([1, 2, 4, 5])]),
    "conv2d_same_reflect_even": M("Conv2d", 2, 2, [4, 3],
        kwargs={"padding": "same", "padding_mode": "reflect"}, inputs=[F([1, 2, 6, 5])]),
    "conv2d_unbatched": M("Conv2d", 2, 3, 3, inputs=[F([2, 5, 5])]),
    "conv2d_f64": M("Conv2d", 2, 3, 3, kwargs={"padding": 1}, inputs=[F([1, 2, 4, 4])],
        dtype="float64"),
    "conv1d_unbatched": M("Conv1d", 2, 3, 2, kwargs={"padding": 1}, inputs=[F([2, 6])]),
    "conv1d": M("Conv1d", 3, 4, 3, inputs=[F([2, 3, 9])]),
    "conv1d_stride_dil": M("Conv1d", 2, 4, 3, kwargs={"stride": 2, "padding": 2, "dilation": 2},
        inputs=[F([2, 2, 11])]),
    "conv1d_groups_same": M("Conv1d", 4, 4, 4, kwargs={"groups": 2, "padding": "same"},
        inputs=[F([2, 4, 7])]),
    "conv1d_replicate": M("Conv1d", 2, 2, 3, kwargs={"padding": 2, "padding_mode": "replicate"},
        inputs=[F([1, 2, 6])]),
    # ------------------------------------------------------------------ normalization
    "batchnorm1d_train": M("BatchNorm1d", 4, inputs=[F([6, 4])]),
    "batchnorm1d_3d": M("BatchNorm1d", 3, inputs=[F([4, 3, 5])]),
    "batchnorm1d_cumulative": M("BatchNorm1d", 3, kwargs={"momentum": None}, inputs=[F([5, 3])],
        pre_steps=3),
    "batchnorm1d_noaffine": M("BatchNorm1d", 3, kwargs={"affine": False, "momentum": 0.3},
        inputs=[F([5, 3, 2])], pre_steps=2),
    "batchnorm1d_notrack": M("BatchNorm1d", 3, kwargs={"track_running_stats": False},
        inputs=[F([5, 3])], mode="eval"),
    "batchnorm2d_train": M("BatchNorm2d", 4, inputs=[F([3, 4, 5, 5])]),
    "batchnorm2d_steps_eval": M("BatchNorm2d", 3, inputs=[F([4, 3, 3, 3], scale=2.0)], pre_steps=3,
        mode="eval"),
    "batchnorm2d_steps_train": M("BatchNorm2d", 2, kwargs={"momentum": 0.5, "eps": 0.001},
        inputs=[F([3, 2, 4, 4])], pre_steps=2),
    "layernorm": M("LayerNorm", 5, inputs=[F([2, 3, 5])]),
    "layernorm_2d": M("LayerNorm", [3, 5], inputs=[F([2, 3, 5])]),
    "layernorm_noaffine": M("LayerNorm", [4], kwargs={"elementwise_affine": False},
        inputs=[F([3, 4])]),
    "layernorm_nobias_f64": M("LayerNorm", 4, kwargs={"bias": False, "eps": 0.001},
        inputs=[F([3, 4])], dtype="float64"),
    "groupnorm_2d_input": M("GroupNorm", 2, 4, inputs=[F([3, 4])]),
    "layernorm_1d_input": M("LayerNorm", 4, inputs=[F([4])]),
    "groupnorm": M("GroupNorm", 2, 4, inputs=[F([2, 4, 3, 3])]),
    "groupnorm_one": M("GroupNorm", 1, 3, kwargs={"eps": 0.001}, inputs=[F([2, 3, 5])]),
    "groupnorm_noaffine": M("GroupNorm", 3, 6, kwargs={"affine": False}, inputs=[F([2, 6, 2, 2])]),
    "rmsnorm": M("RMSNorm", 5, inputs=[F([2, 3, 5])]),
    # ------------------------------------------------------------------ pooling
    "maxpool2d": M("MaxPool2d", 2, inputs=[F([2, 3, 6, 6])]),
    "maxpool2d_pad": M("MaxPool2d", 3, kwargs={"stride": 2, "padding": 1},
        inputs=[F([2, 2, 7, 6])]),
    "maxpool2d_ceil": M("MaxPool2d", 3, kwargs={"stride": 2, "ceil_mode": True},
        inputs=[F([1, 2, 8, 7])]),
    "maxpool2d_dilation": M("MaxPool2d", 2, kwargs={"stride": 1, "dilation": 2},
        inputs=[F([1, 2, 6, 5])]),
    "maxpool2d_rect": M("MaxPool2d", [2, 3], kwargs={"stride": [1, 2], "padding": [1, 1]},
        inputs=[F([1, 2, 5, 7])]),
    "maxpool1d": M("MaxPool1d", 3, kwargs={"stride": 2, "padding": 1}, inputs=[F([2, 3, 9])]),
    "maxpool1d_ceil_dilation": M("MaxPool1d", 2, kwargs={"stride": 2, "dilation": 2,
        "ceil_mode": True}, inputs=[F([2, 7])]),
    "avgpool2d": M("AvgPool2d", 2, inputs=[F([2, 3, 6, 6])]),
    "avgpool2d_pad": M("AvgPool2d", 3, kwargs={"stride": 2, "padding": 1},
        inputs=[F([1, 2, 7, 6])]),
    "avgpool2d_pad_exclude": M("AvgPool2d", 3,
        kwargs={"stride": 2, "padding": 1, "count_include_pad": False}, inputs=[F([1, 2, 7, 6])]),
    "avgpool2d_ceil": M("AvgPool2d", 3, kwargs={"stride": 2, "padding": 1, "ceil_mode": True},
        inputs=[F([1, 2, 8, 6])]),
    "avgpool2d_ceil_exclude": M("AvgPool2d", [2, 3],
        kwargs={"stride": 2, "ceil_mode": True, "count_include_pad": False},
        inputs=[F([1, 1, 7, 8])]),
    "avgpool2d_divisor": M("AvgPool2d", 2, kwargs={"divisor_override": 3},
        inputs=[F([1, 2, 4, 4])]),
    "avgpool1d": M("AvgPool1d", 3, kwargs={"stride": 2, "padding": 1}, inputs=[F([2, 3, 8])]),
    "adaptiveavgpool2d_1": M("AdaptiveAvgPool2d", [1, 1], inputs=[F([2, 3, 5, 4])]),
    "adaptiveavgpool2d_uneven": M("AdaptiveAvgPool2d", [3, 2], inputs=[F([2, 2, 7, 5])]),
    "adaptiveavgpool2d_even": M("AdaptiveAvgPool2d", 2, inputs=[F([1, 2, 6, 6])]),
    "adaptiveavgpool2d_none": M("AdaptiveAvgPool2d", [2, None], inputs=[F([1, 2, 5, 3])]),
    "adaptiveavgpool1d": M("AdaptiveAvgPool1d", 3, inputs=[F([2, 2, 7])]),
    "globalavgpool2d": M("GlobalAvgPool2d", inputs=[F([2, 3, 4, 5])], torch="GlobalAvgPool2d"),
    # ------------------------------------------------------------------ dropout / embedding
    "dropout_p0": M("Dropout", 0.0, inputs=[F([3, 4])]),
    "dropout_eval": M("Dropout", 0.5, inputs=[F([3, 4])], mode="eval"),
    "dropout2d_eval": M("Dropout2d", 0.5, inputs=[F([2, 3, 2, 2])], mode="eval"),
    "embedding": M("Embedding", 10, 4, inputs=[I([2, 5], 0, 10)]),
    "embedding_padding": M("Embedding", 6, 3, kwargs={"padding_idx": 1},
        inputs=[I([3, 4], 0, 6, set={0: 1, 5: 1})]),
    "embedding_scalar_index": M("Embedding", 5, 3, inputs=[I([], 0, 5)]),
    "embedding_freq": M("Embedding", 5, 3, kwargs={"scale_grad_by_freq": True},
        inputs=[I([8], 0, 3)]),
    "embedding_maxnorm": M("Embedding", 6, 4, kwargs={"max_norm": 1.0}, inputs=[I([2, 3], 0, 6)]),
    # ------------------------------------------------------------------ attention
    "mha_self": M("MultiheadAttention", 8, 2, inputs=[F([5, 2, 8])], call=[0, 0, 0]),
    "mha_cross": M("MultiheadAttention", 8, 4, inputs=[F([3, 2, 8]), F([6, 2, 8]), F([6, 2, 8])]),
    "mha_batch_first": M("MultiheadAttention", 8, 2, kwargs={"batch_first": True},
        inputs=[F([2, 4, 8]), F([2, 5, 8]), F([2, 5, 8])]),
    "mha_causal_bool": M("MultiheadAttention", 8, 2, inputs=[F([4, 2, 8])], call=[0, 0, 0],
        call_tensors={"attn_mask": B([4, 4], causal=True)}),
    "mha_float_mask_3d": M("MultiheadAttention", 6, 3,
        inputs=[F([3, 2, 6]), F([4, 2, 6]), F([4, 2, 6])],
        call_tensors={"attn_mask": F([6, 3, 4], grad=False)}),
    "mha_key_padding": M("MultiheadAttention", 8, 2,
        inputs=[F([3, 2, 8]), F([5, 2, 8]), F([5, 2, 8])],
        call_tensors={"key_padding_mask": B([2, 5], p=0.0, set={3: True, 9: True})},
        call_kwargs={"average_attn_weights": False}),
    "mha_both_masks": M("MultiheadAttention", 4, 2, kwargs={"batch_first": True},
        inputs=[F([2, 4, 4])], call=[0, 0, 0],
        call_tensors={"attn_mask": B([4, 4], causal=True),
                      "key_padding_mask": B([2, 4], p=0.0, set={7: True})}),
    "mha_no_weights": M("MultiheadAttention", 8, 2,
        inputs=[F([3, 2, 8]), F([4, 2, 8]), F([4, 2, 8])], call_kwargs={"need_weights": False}),
    "mha_kvdim": M("MultiheadAttention", 8, 2, kwargs={"kdim": 5, "vdim": 3},
        inputs=[F([3, 2, 8]), F([4, 2, 5]), F([4, 2, 3])]),
    "mha_bias_kv_zero_attn": M("MultiheadAttention", 4, 2,
        kwargs={"add_bias_kv": True, "add_zero_attn": True},
        inputs=[F([3, 2, 4]), F([4, 2, 4]), F([4, 2, 4])],
        call_tensors={"key_padding_mask": B([2, 4], p=0.0, set={2: True})}),
    "mha_fully_masked_no_weights": M("MultiheadAttention", 4, 2,
        inputs=[F([3, 2, 4]), F([4, 2, 4]), F([4, 2, 4])],
        call_tensors={"key_padding_mask": B([2, 4], p=0.0,
                                            set={4: True, 5: True, 6: True, 7: True, 0: True})},
        call_kwargs={"need_weights": False}),
    "mha_nobias": M("MultiheadAttention", 4, 1, kwargs={"bias": False}, inputs=[F([3, 2, 4])],
        call=[0, 0, 0]),
    "mha_unbatched": M("MultiheadAttention", 6, 2, inputs=[F([4, 6]), F([5, 6]), F([5, 6])]),
    "mha_dropout_eval": M("MultiheadAttention", 4, 2, kwargs={"dropout": 0.5},
        inputs=[F([3, 2, 4])], call=[0, 0, 0], mode="eval"),
    "self_attention": M("SelfAttention", 8, 2, inputs=[F([4, 2, 8])], torch="SelfAttention"),
    "self_attention_mask": M("SelfAttention", 8, 4, kwargs={"batch_first": True},
        inputs=[F([2, 4, 8])], torch="SelfAttention",
        call_tensors={"attn_mask": B([4, 4], causal=True)}),
    "cross_attention": M("CrossAttention", 8, 2, inputs=[F([3, 2, 8]), F([5, 2, 8])],
        torch="CrossAttention"),
    "cross_attention_kdim": M("CrossAttention", 4, 2, kwargs={"kdim": 6},
        inputs=[F([3, 2, 4]), F([5, 2, 6])], torch="CrossAttention"),
    # ------------------------------------------------------------------ activations
    "relu": M("ReLU", inputs=X4),
    "relu6": M("ReLU6", inputs=[F([3, 4], scale=5.0)]),
    "leaky_relu": M("LeakyReLU", 0.2, inputs=X4),
    "elu": M("ELU", 0.7, inputs=X4),
    "selu": M("SELU", inputs=X4),
    "gelu": M("GELU", inputs=X4),
    "gelu_tanh": M("GELU", kwargs={"approximate": "tanh"}, inputs=X4),
    "silu": M("SiLU", inputs=X4),
    "mish": M("Mish", inputs=X4),
    "sigmoid": M("Sigmoid", inputs=X4),
    "tanh": M("Tanh", inputs=X4),
    "softplus": M("Softplus", kwargs={"beta": 2.0, "threshold": 3.0}, inputs=X4),
    "softplus_default": M("Softplus", inputs=[F([3, 4], scale=15.0)]),
    "softsign": M("Softsign", inputs=X4),
    "hardtanh": M("Hardtanh", -0.5, 0.8, inputs=X4),
    "hardsigmoid": M("Hardsigmoid", inputs=X4),
    "hardswish": M("Hardswish", inputs=X4),
    "logsigmoid": M("LogSigmoid", inputs=[F([3, 4], scale=10.0)]),
    "threshold": M("Threshold", 0.1, -2.0, inputs=X4),
    "glu": M("GLU", 1, inputs=[F([2, 4, 3])]),
    "softmax": M("Softmax", 1, inputs=[F([2, 4, 3])]),
    "softmin": M("Softmin", 0, inputs=[F([3, 4])]),
    "log_softmax": M("LogSoftmax", -1, inputs=[F([2, 3, 4], scale=2.0)]),
    # ------------------------------------------------------------------ losses
    "mse_mean": M("MSELoss", inputs=[F([3, 4]), F([3, 4], grad=False)]),
    "mse_sum": M("MSELoss", kwargs={"reduction": "sum"}, inputs=[F([3, 4]), F([3, 4])]),
    "mse_none": M("MSELoss", kwargs={"reduction": "none"},
        inputs=[F([3, 4]), F([3, 4], grad=False)]),
    "l1_mean": M("L1Loss", inputs=[F([3, 4]), F([3, 4], grad=False)]),
    "l1_none": M("L1Loss", kwargs={"reduction": "none"}, inputs=[F([2, 5]), F([2, 5])]),
    "smooth_l1": M("SmoothL1Loss", kwargs={"beta": 0.5}, inputs=[F([4, 5]), F([4, 5], grad=False)]),
    "smooth_l1_beta0_sum": M("SmoothL1Loss", kwargs={"beta": 0.0, "reduction": "sum"},
        inputs=[F([4, 5]), F([4, 5], grad=False)]),
    "huber": M("HuberLoss", kwargs={"delta": 0.7, "reduction": "none"},
        inputs=[F([4, 5]), F([4, 5], grad=False)]),
    "ce": M("CrossEntropyLoss", inputs=[F([4, 5]), I([4], 0, 5)]),
    "ce_weight": M("CrossEntropyLoss", inputs=[F([6, 4]), I([6], 0, 4)],
        tensors={"weight": U([4], 0.2, 2.0, grad=False)}),
    "ce_ignore": M("CrossEntropyLoss", inputs=[F([6, 4]), I([6], 0, 4, set={1: -100, 4: -100})]),
    "ce_ignore_valid_class": M("CrossEntropyLoss", kwargs={"ignore_index": 2},
        inputs=[F([8, 4]), I([8], 0, 4, set={0: 2})]),
    "ce_smoothing": M("CrossEntropyLoss", kwargs={"label_smoothing": 0.2},
        inputs=[F([5, 4]), I([5], 0, 4)]),
    "ce_smoothing_weight_ignore": M("CrossEntropyLoss",
        kwargs={"label_smoothing": 0.15, "ignore_index": -1},
        inputs=[F([6, 5]), I([6], 0, 5, set={2: -1})],
        tensors={"weight": U([5], 0.2, 2.0, grad=False)}),
    "ce_smoothing_sum": M("CrossEntropyLoss", kwargs={"label_smoothing": 0.1, "reduction": "sum"},
        inputs=[F([4, 3]), I([4], 0, 3, set={3: -100})]),
    "ce_smoothing_none": M("CrossEntropyLoss", kwargs={"label_smoothing": 0.1, "reduction": "none"},
        inputs=[F([4, 3]), I([4], 0, 3, set={3: -100})]),
    "ce_probs": M("CrossEntropyLoss", inputs=[F([4, 5]), P([4, 5])]),
    "ce_probs_smooth_weight": M("CrossEntropyLoss", kwargs={"label_smoothing": 0.3},
        inputs=[F([4, 5]), P([4, 5])], tensors={"weight": U([5], 0.2, 2.0, grad=False)}),
    "ce_probs_kdim_none": M("CrossEntropyLoss", kwargs={"reduction": "none"},
        inputs=[F([2, 3, 4]), P([2, 3, 4])]),
    "ce_kdim": M("CrossEntropyLoss", inputs=[F([2, 4, 3, 3]), I([2, 3, 3], 0, 4, set={4: -100})]),
    "ce_kdim_none_weight": M("CrossEntropyLoss", kwargs={"reduction": "none"},
        inputs=[F([2, 3, 5]), I([2, 5], 0, 3)], tensors={"weight": U([3], 0.5, 1.5, grad=False)}),
    "ce_sum": M("CrossEntropyLoss", kwargs={"reduction": "sum"}, inputs=[F([4, 5]), I([4], 0, 5)]),
    "ce_unbatched": M("CrossEntropyLoss", inputs=[F([5]), I([], 0, 5)]),
    "ce_f64": M("CrossEntropyLoss", kwargs={"label_smoothing": 0.1},
        inputs=[F([4, 5]), I([4], 0, 5)], dtype="float64"),
    "nll": M("NLLLoss", inputs=[P([4, 5], log=True, grad=True), I([4], 0, 5)]),
    "nll_weight_ignore": M("NLLLoss", kwargs={"ignore_index": 0},
        inputs=[P([6, 4], log=True, grad=True), I([6], 0, 4, set={1: 0})],
        tensors={"weight": U([4], 0.2, 2.0, grad=False)}),
    "nll_none_kdim": M("NLLLoss", kwargs={"reduction": "none"},
        inputs=[P([2, 3, 4], log=True, grad=True), I([2, 4], 0, 3)]),
    "bce": M("BCELoss", inputs=[U([3, 4], 0.05, 0.95), BIN([3, 4])]),
    "bce_weight_none": M("BCELoss", kwargs={"reduction": "none"},
        inputs=[U([3, 4], 0.05, 0.95), U([3, 4], 0.0, 1.0, grad=False)],
        tensors={"weight": U([4], 0.5, 2.0, grad=False)}),
    "bce_logits": M("BCEWithLogitsLoss", inputs=[F([3, 4], scale=3.0), BIN([3, 4])]),
    "bce_logits_large": M("BCEWithLogitsLoss", kwargs={"reduction": "sum"},
        inputs=[F([3, 4], scale=40.0), BIN([3, 4])]),
    "bce_logits_pos_weight": M("BCEWithLogitsLoss", inputs=[F([3, 4], scale=2.0), BIN([3, 4])],
        tensors={"pos_weight": U([4], 0.5, 3.0, grad=False)}),
    "bce_logits_weight_none": M("BCEWithLogitsLoss", kwargs={"reduction": "none"},
        inputs=[F([3, 4]), U([3, 4], 0.0, 1.0, grad=False)],
        tensors={"weight": U([3, 1], 0.5, 2.0, grad=False)}),
    "kldiv_batchmean": M("KLDivLoss", kwargs={"reduction": "batchmean"},
        inputs=[P([3, 4], log=True, grad=True), P([3, 4])]),
    "kldiv_mean": M("KLDivLoss", inputs=[P([3, 4], log=True, grad=True), P([3, 4])]),
    "kldiv_sum_zero_target": M("KLDivLoss", kwargs={"reduction": "sum"},
        inputs=[P([3, 4], log=True, grad=True), U([3, 4], 0.0, 1.0, grad=False)],
        zero_input={"index": 1, "flat": [0, 5]}),
    "kldiv_none_log_target": M("KLDivLoss", kwargs={"reduction": "none", "log_target": True},
        inputs=[P([3, 4], log=True, grad=True), P([3, 4], log=True, grad=True)]),
    # ------------------------------------------------------------------ functional
    "f_linear": FN("linear", inputs=[F([3, 4]), F([2, 4]), F([2])]),
    "f_conv2d_same": FN("conv2d", inputs=[F([1, 2, 5, 6]), F([4, 1, 2, 4]), F([4])],
        kwargs={"padding": "same", "groups": 2}),
    "f_conv1d": FN("conv1d", inputs=[F([2, 3, 8]), F([2, 3, 3])],
        kwargs={"stride": 2, "padding": 1}),
    "f_pad_constant": FN("pad", [1, 2, 0, 1], inputs=[F([2, 3, 4])], kwargs={"value": 0.5}),
    "f_pad_crop": FN("pad", [-1, 2, 1, -1], inputs=[F([2, 3, 4])]),
    "f_pad_reflect": FN("pad", [2, 1, 1, 2], inputs=[F([1, 2, 4, 5])], kwargs={"mode": "reflect"}),
    "f_pad_replicate": FN("pad", [3, 1, 0, 2], inputs=[F([1, 2, 3, 4])],
        kwargs={"mode": "replicate"}),
    "f_pad_circular": FN("pad", [2, 1, 1, 3], inputs=[F([1, 2, 4, 3])],
        kwargs={"mode": "circular"}),
    "f_one_hot": FN("one_hot", inputs=[I([2, 3], 0, 4)], kwargs={"num_classes": 5}),
    "f_one_hot_infer": FN("one_hot", inputs=[I([5], 0, 4, set={2: 3})]),
    "f_sdpa": FN("scaled_dot_product_attention",
        inputs=[F([2, 2, 3, 4]), F([2, 2, 5, 4]), F([2, 2, 5, 3])]),
    "f_sdpa_bool_mask": FN("scaled_dot_product_attention",
        inputs=[F([2, 3, 4]), F([2, 5, 4]), F([2, 5, 4]),
                B([3, 5], p=0.3, set={0: False, 5: False, 10: False})]),
    "f_sdpa_float_mask_scale": FN("scaled_dot_product_attention",
        inputs=[F([2, 3, 4]), F([2, 5, 4]), F([2, 5, 4]), F([2, 3, 5])], kwargs={"scale": 0.3}),
    "f_sdpa_causal": FN("scaled_dot_product_attention",
        inputs=[F([1, 2, 4, 4]), F([1, 2, 4, 4]), F([1, 2, 4, 4])], kwargs={"is_causal": True}),
    "f_sdpa_gqa": FN("scaled_dot_product_attention",
        inputs=[F([1, 4, 3, 4]), F([1, 2, 3, 4]), F([1, 2, 3, 4])], kwargs={"enable_gqa": True}),
    "f_sdpa_float_mask_nograd": FN("scaled_dot_product_attention",
        inputs=[F([2, 3, 4]), F([2, 5, 4]), F([2, 5, 4]), F([3, 5], grad=False)]),
    "f_sdpa_causal_blocks": FN("scaled_dot_product_attention",
        inputs=[F([1, 2, 70, 4]), F([1, 2, 75, 4]), F([1, 2, 75, 3])],
        kwargs={"is_causal": True}),
    "f_sdpa_bool_mask_bcast": FN("scaled_dot_product_attention",
        inputs=[F([2, 2, 3, 4]), F([2, 2, 5, 4]), F([2, 2, 5, 4]),
                B([2, 1, 3, 5], p=0.3, set={0: False, 1: False, 2: False, 3: False, 4: False})]),
    "f_sdpa_f64": FN("scaled_dot_product_attention",
        inputs=[F([2, 3, 4]), F([2, 5, 4]), F([2, 5, 2])], dtype="float64"),
    "f_sdpa_batch_bcast": FN("scaled_dot_product_attention",
        inputs=[F([2, 2, 3, 4]), F([1, 2, 5, 4]), F([1, 2, 5, 4])]),
    "f_normalize": FN("normalize", inputs=[F([3, 4])], kwargs={"dim": 1}),
    "f_normalize_p1": FN("normalize", inputs=[F([3, 4])], kwargs={"p": 1.0, "dim": 0}),
    "f_cosine_similarity": FN("cosine_similarity", inputs=[F([3, 4]), F([3, 4])]),
    "f_dropout_eval": FN("dropout", inputs=[F([3, 4])], kwargs={"p": 0.3, "training": False}),
    "f_batch_norm_eval": FN("batch_norm",
        inputs=[F([4, 3]), U([3], -0.5, 0.5, grad=False), U([3], 0.5, 2.0, grad=False),
                F([3]), F([3])],
        kwargs={"training": False}),
    "f_layer_norm": FN("layer_norm", [4], inputs=[F([2, 3, 4])], kwargs={"eps": 0.001}),
    "f_group_norm": FN("group_norm", 2, inputs=[F([2, 4, 3])]),
    "f_rms_norm": FN("rms_norm", [4], inputs=[F([2, 3, 4])], call_tensors={"weight": F([4])},
        kwargs={"eps": 1e-4}),
    "f_embedding": FN("embedding", inputs=[I([2, 3], 0, 5), F([5, 3])], kwargs={"padding_idx": 0}),
    "f_softmax_f64": FN("softmax", inputs=[F([3, 4])], kwargs={"dim": 0}, dtype="float64"),
    "f_max_pool2d_unbatched": FN("max_pool2d", 2, inputs=[F([2, 4, 5])],
        kwargs={"ceil_mode": True}),
    "f_avg_pool2d_unbatched": FN("avg_pool2d", 2, inputs=[F([2, 4, 4])]),
    "f_adaptive_avg_pool2d": FN("adaptive_avg_pool2d", [2, 3], inputs=[F([1, 2, 5, 7])]),
}
# fmt: on

TOLERANCES = {"float32": (1e-4, 1e-5), "float64": (1e-9, 1e-11)}


def _seed(name: str) -> int:
    return zlib.crc32(name.encode())


def make_input(spec: Dict[str, Any], rng: np.random.Generator, dtype: str) -> np.ndarray:
    """Draws one input array for `spec`."""
    fdt = np.float64 if dtype == "float64" else np.float32
    shape = tuple(spec["shape"])
    kind = spec["kind"]
    if kind == "float":
        arr = (rng.standard_normal(shape) * spec.get("scale", 1.0)).astype(fdt)
    elif kind == "uniform":
        arr = rng.uniform(spec["low"], spec["high"], shape).astype(fdt)
    elif kind == "binary":
        arr = rng.integers(0, 2, shape).astype(fdt)
    elif kind in ("prob", "logprob"):
        z = rng.standard_normal(shape)
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        arr = (logp if kind == "logprob" else np.exp(logp)).astype(fdt)
    elif kind == "int":
        arr = rng.integers(spec["low"], spec["high"], shape).astype(np.int64)
    elif kind == "bool":
        if spec.get("causal"):
            arr = np.triu(np.ones(shape, dtype=bool), k=1)
        else:
            arr = rng.uniform(0.0, 1.0, shape) < spec["p"]
    else:
        raise ValueError(f"unknown input kind {kind}")
    arr = np.array(arr, copy=True, order="C")
    for flat, value in spec.get("set", {}).items():
        arr.reshape(-1)[int(flat)] = value
    return arr


def _torch_builders(torch: Any) -> Dict[str, Callable[..., Any]]:
    nn = torch.nn

    class TorchSelfAttention(nn.MultiheadAttention):
        def __init__(
            self,
            embed_dim: int,
            num_heads: int,
            dropout: float = 0.0,
            bias: bool = True,
            batch_first: bool = False,
        ) -> None:
            super().__init__(embed_dim, num_heads, dropout, bias, batch_first=batch_first)

        def forward(self, x: Any, attn_mask: Any = None, key_padding_mask: Any = None) -> Any:  # type: ignore[override]
            return super().forward(
                x, x, x, key_padding_mask=key_padding_mask, need_weights=False, attn_mask=attn_mask
            )[0]

    class TorchCrossAttention(nn.MultiheadAttention):
        def __init__(
            self,
            embed_dim: int,
            num_heads: int,
            dropout: float = 0.0,
            bias: bool = True,
            kdim: Any = None,
        ) -> None:
            super().__init__(embed_dim, num_heads, dropout, bias, kdim=kdim, vdim=kdim)

        def forward(
            self, q: Any, ctx: Any, attn_mask: Any = None, key_padding_mask: Any = None
        ) -> Any:  # type: ignore[override]
            return super().forward(
                q,
                ctx,
                ctx,
                key_padding_mask=key_padding_mask,
                need_weights=False,
                attn_mask=attn_mask,
            )[0]

    return {
        "SelfAttention": TorchSelfAttention,
        "CrossAttention": TorchCrossAttention,
        "GlobalAvgPool2d": lambda: nn.AdaptiveAvgPool2d(1),
    }


def _fix_args(args: List[Any]) -> List[Any]:
    return [tuple(a) if isinstance(a, list) else a for a in args]


def _fix_kwargs(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def run_case(name: str, case: Dict[str, Any], torch: Any) -> Dict[str, np.ndarray]:
    """Runs one case in PyTorch and returns the arrays of its golden file."""
    rng = np.random.default_rng(_seed(name))
    torch.manual_seed(0)
    dtype = case.get("dtype", "float32")
    tdtype = torch.float64 if dtype == "float64" else torch.float32
    specs = case["inputs"]
    arrays: Dict[str, np.ndarray] = {}
    inputs = [make_input(s, rng, dtype) for s in specs]
    zero = case.get("zero_input")
    if zero:
        for flat in zero["flat"]:
            inputs[zero["index"]].reshape(-1)[flat] = 0.0
    kw_arrays = {k: make_input(s, rng, dtype) for k, s in case.get("tensors", {}).items()}
    call_arrays = {k: make_input(s, rng, dtype) for k, s in case.get("call_tensors", {}).items()}
    pre = [[make_input(s, rng, dtype) for s in specs] for _ in range(case.get("pre_steps", 0))]
    for i, a in enumerate(inputs):
        arrays[f"in_{i}"] = a
    for k, a in kw_arrays.items():
        arrays[f"kw__{k}"] = a
    for k, a in call_arrays.items():
        arrays[f"ckw__{k}"] = a
    for s, step in enumerate(pre):
        for i, a in enumerate(step):
            arrays[f"pre_{s}_{i}"] = a

    def tt(a: np.ndarray, grad: bool = False) -> Any:
        t = torch.tensor(a)
        return t.requires_grad_() if grad else t

    tin = [tt(a, s.get("grad", False) and a.dtype.kind == "f") for a, s in zip(inputs, specs)]
    call = case.get("call", list(range(len(inputs))))
    call_kw = {k: tt(a) for k, a in call_arrays.items()}
    call_kw.update(case.get("call_kwargs", {}))
    module = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case["kind"] == "module":
            builders = _torch_builders(torch)
            ctor = builders[case["torch"]] if "torch" in case else getattr(torch.nn, case["target"])
            kwargs = _fix_kwargs(case.get("kwargs", {}))
            kwargs.update({k: tt(a) for k, a in kw_arrays.items()})
            module = ctor(*_fix_args(case["args"]), **kwargs).to(tdtype)
            for k, v in module.state_dict().items():
                arrays[f"sd__{k}"] = v.detach().numpy().copy()
            module.train()
            for step in pre:
                with torch.no_grad():
                    module(*[tt(step[i]) for i in call], **call_kw)
            module.train(case.get("mode", "train") == "train")
            out = module(*[tin[i] for i in call], **call_kw)
        else:
            fn = getattr(torch.nn.functional, case["target"])
            args = [tin[i] for i in call] + _fix_args(case["args"])
            out = fn(*args, **call_kw, **_fix_kwargs(case.get("kwargs", {})))
    outs = list(out) if isinstance(out, tuple) else [out]
    loss = None
    for j, o in enumerate(outs):
        if o is None:
            continue
        arrays[f"out_{j}"] = o.detach().numpy().copy()
        if not o.dtype.is_floating_point:
            continue
        w = rng.standard_normal(tuple(o.shape)).astype(arrays[f"out_{j}"].dtype)
        arrays[f"w_{j}"] = np.asarray(w)
        term = (o * torch.tensor(w)).sum()
        loss = term if loss is None else loss + term
    if loss is not None and loss.requires_grad:
        loss.backward()
    for i, t in enumerate(tin):
        if t.requires_grad and t.grad is not None:
            arrays[f"gin_{i}"] = t.grad.numpy().copy()
    if module is not None:
        for k, p in module.named_parameters():
            if p.grad is not None:
                arrays[f"gp__{k}"] = p.grad.numpy().copy()
        for k, v in module.state_dict().items():
            arrays[f"final_sd__{k}"] = v.detach().numpy().copy()
    config = {k: v for k, v in case.items() if k not in ("inputs",)}
    config["name"] = name
    config["dtype"] = dtype
    config["n_out"] = len(outs)
    config["input_grad"] = [
        bool(s.get("grad", False)) and s["kind"] not in ("int", "bool", "binary") for s in specs
    ]
    config["tolerance"] = case.get("tolerance", TOLERANCES[dtype])
    arrays["config"] = np.array(json.dumps(config, sort_keys=True))
    return arrays


def _serialize(arrays: Dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def main(argv: List[str]) -> int:
    """Writes (or with --check, compares) every golden file; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="compare with the files on disk, write nothing"
    )
    parser.add_argument("cases", nargs="*", help="only these cases (default: all)")
    opts = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    names = opts.cases or sorted(CASES)
    os.makedirs(OUT_DIR, exist_ok=True)
    bad = 0
    for name in names:
        arrays = run_case(name, CASES[name], torch)
        path = os.path.join(OUT_DIR, f"{name}.npz")
        if opts.check:
            with np.load(path, allow_pickle=False) as old:
                same = set(old.files) == set(arrays) and all(
                    np.array_equal(old[k], arrays[k]) for k in arrays
                )
            if not same:
                print(f"differs: {name}")
                bad += 1
            continue
        with open(path, "wb") as f:
            f.write(_serialize(arrays))
    if not opts.check and not opts.cases:
        stale = [f for f in os.listdir(OUT_DIR) if f.endswith(".npz") and f[:-4] not in CASES]
        for f in stale:
            os.remove(os.path.join(OUT_DIR, f))
        total = sum(os.path.getsize(os.path.join(OUT_DIR, f)) for f in os.listdir(OUT_DIR))
        print(
            f"wrote {len(names)} golden files to {os.path.normpath(OUT_DIR)} "
            f"({total / 1024:.0f} KiB)"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
