"""Helpers shared by the PyFlame Python tests.

Everything here is plain NumPy + pyflame; no torch.

Conventions
-----------
* dtypes are passed around by *name* (``"float32"``, ``"bfloat16"`` ...) so
  that pytest ids are readable; :func:`pfdt` resolves a name to ``pf.<name>``.
* :func:`make` builds a pyflame tensor holding exactly the values of a NumPy
  array in the requested dtype, and :func:`exact_inputs` returns (as float64)
  the values pyflame actually sees after rounding to that dtype, so that
  references are computed on the same inputs.
* :func:`to_np` reads a tensor back.  bfloat16 has no NumPy dtype, so it is
  read through an ``astype(float32)`` (exact).
"""

import math

import numpy as np
import pyflame as pf

FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")
LOW_PRECISION = ("float16", "bfloat16")
INT_DTYPES = ("int64", "int32", "int16", "int8", "uint8")
ALL_DTYPES = FLOAT_DTYPES + INT_DTYPES + ("bool",)

# NumPy equivalents (bfloat16 has none).
NP_DTYPE = {
    "float32": np.float32,
    "float64": np.float64,
    "float16": np.float16,
    "bfloat16": None,
    "int64": np.int64,
    "int32": np.int32,
    "int16": np.int16,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
}

DTYPE_SIZE = {
    "float32": 4,
    "float64": 8,
    "float16": 2,
    "bfloat16": 2,
    "int64": 8,
    "int32": 4,
    "int16": 2,
    "int8": 1,
    "uint8": 1,
    "bool": 1,
}

# Machine epsilon (spacing at 1.0) per float dtype.
EPS = {
    "float64": 2.0**-52,
    "float32": 2.0**-23,
    "float16": 2.0**-10,
    "bfloat16": 2.0**-7,
}

# Default comparison tolerances (rtol, atol) per output dtype.
DEFAULT_TOL = {
    "float64": (1e-12, 1e-12),
    "float32": (1e-5, 1e-6),
    # Low precision: the reference is rounded to the dtype, allow ~2 ulp.
    "float16": (2e-3, 1e-3),
    "bfloat16": (1.6e-2, 1e-2),
}


def pfdt(name):
    """``"float32"`` -> ``pf.float32`` (``"bool"`` -> ``pf.bool_``)."""
    if name == "bool":
        return pf.bool_
    return getattr(pf, name)


def is_float(name):
    return name in FLOAT_DTYPES


def is_int(name):
    return name in INT_DTYPES


def round_to_bf16(x):
    """Round float values to the nearest bfloat16 (round-half-to-even).

    Returns float32 values that are exactly representable in bfloat16.
    NaN is preserved; infinities stay infinite.
    """
    a = np.asarray(x, dtype=np.float32)
    shape = a.shape
    a = np.ascontiguousarray(a).reshape(-1)  # (ascontiguousarray makes 0-d 1-d)
    bits = a.view(np.uint32).astype(np.uint64)
    lsb = (bits >> 16) & 1
    rounded = ((bits + 0x7FFF + lsb) >> 16) << 16
    out = rounded.astype(np.uint32).view(np.float32)
    return np.where(np.isnan(a), np.float32(np.nan), out).reshape(shape)


def round_to(x, name):
    """Round an array to dtype ``name`` and return it as float64 (floats only)."""
    x = np.asarray(x, dtype=np.float64)
    if name == "bfloat16":
        return round_to_bf16(x.astype(np.float32)).astype(np.float64)
    if name in ("float16", "float32"):
        return x.astype(NP_DTYPE[name]).astype(np.float64)
    return x


def exact_inputs(arr, name):
    """The values pyflame holds after ``make(arr, name)``, as NumPy.

    Floats come back as float64 (exactly), ints/bool in their own dtype.
    """
    arr = np.asarray(arr)
    if is_float(name):
        return round_to(arr, name)
    return arr.astype(NP_DTYPE[name])


def make(arr, name):
    """Build a realized pyflame tensor of dtype ``name`` holding ``arr``'s values."""
    arr = np.asarray(arr)
    if name == "bfloat16":
        t = pf.from_numpy(np.array(arr, dtype=np.float32)).astype(pf.bfloat16)
    else:
        t = pf.from_numpy(np.array(arr, dtype=NP_DTYPE[name]))  # always a private copy
    t.eval()
    return t


def to_np(t):
    """Read a tensor into NumPy (bfloat16 is widened to float32 first)."""
    if t.dtype == pf.bfloat16:
        t = t.astype(pf.float32)
    out = t.numpy()
    assert isinstance(out, np.ndarray), type(out)
    return out


def dtype_name_of(t):
    return pf.dtype_name(t.dtype)


def assert_tensor_close(t, expected, out_dtype=None, rtol=None, atol=None, exact=None):
    """Check a pyflame tensor against a NumPy reference.

    * shape (as a Python list) and, if given, dtype (by name) must match;
    * float outputs: the reference is rounded to the output dtype and compared
      with ``rtol``/``atol`` (defaults from :data:`DEFAULT_TOL`), NaNs must match;
    * int/bool outputs (or ``exact=True``): exact equality.
    """
    expected = np.asarray(expected)
    assert isinstance(t, pf.Tensor), f"expected a pyflame Tensor, got {type(t)!r}"
    assert t.shape == list(expected.shape), f"shape {t.shape} != expected {list(expected.shape)}"
    if out_dtype is not None:
        got = pf.dtype_name(t.dtype)
        assert t.dtype == pfdt(out_dtype), f"dtype {got} != expected {out_dtype}"
    name = pf.dtype_name(t.dtype)
    actual = to_np(t)
    assert actual.shape == expected.shape, f"numpy() shape {actual.shape} != {expected.shape}"
    if exact is None:
        exact = not is_float(name)
    if exact:
        if is_float(name):
            np.testing.assert_array_equal(actual.astype(np.float64), round_to(expected, name))
        else:
            np.testing.assert_array_equal(actual, expected)
        return
    d_rtol, d_atol = DEFAULT_TOL[name]
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    ref = round_to(expected.astype(np.float64), name)
    np.testing.assert_allclose(actual.astype(np.float64), ref, rtol=rtol, atol=atol, equal_nan=True)


# --------------------------------------------------------------------------
# NumPy references for things NumPy lacks.
# --------------------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])


def np_erf(x):
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x.copy()
    return _erf(x)


def np_gelu(x):
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + np_erf(x / math.sqrt(2.0)))


def np_gelu_tanh(x):
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def np_sigmoid(x):
    x = np.asarray(x, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-x))


def np_silu(x):
    return np.asarray(x, dtype=np.float64) * np_sigmoid(x)


def np_softmax(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x.copy()
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def np_log_softmax(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x.copy()
    m = np.max(x, axis=axis, keepdims=True)
    s = x - m
    return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))
