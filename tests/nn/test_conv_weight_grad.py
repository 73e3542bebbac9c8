"""float32 convolution weight gradients against the float64 gradient, over channel counts
that are and are not multiples of the SIMD width, paddings, dilations and kernel sizes."""

import numpy as np
import pyflame as pf
import pytest
from pyflame.nn import functional as F


@pytest.mark.parametrize(
    "n,c,o,hw,k,padding,dilation",
    [
        (2, 5, 7, 9, 3, 1, 1),
        (3, 13, 33, 12, 3, 1, 1),
        (2, 12, 32, 8, 3, 0, 1),
        (1, 64, 64, 16, 3, 1, 1),
        (2, 24, 40, 11, 5, 2, 1),
        (2, 16, 20, 14, 3, 2, 2),
        (4, 40, 70, 6, 3, 1, 1),
        (2, 9, 3, 10, 1, 0, 1),
    ],
)
def test_weight_gradient_float32_matches_float64(n, c, o, hw, k, padding, dilation):
    rng = np.random.default_rng(n * 1000 + c * 10 + o)
    x = rng.standard_normal((n, c, hw, hw))
    w = rng.standard_normal((o, c, k, k)) * 0.2
    grads = {}
    for dtype in (np.float64, np.float32):
        wt = pf.tensor(w.astype(dtype), requires_grad=True)
        y = F.conv2d(pf.tensor(x.astype(dtype)), wt, padding=padding, dilation=dilation)
        upstream = np.cos(np.arange(int(np.prod(y.shape)))).reshape(y.shape).astype(dtype)
        (y * pf.tensor(upstream)).sum().backward()
        grads[dtype] = wt.grad.numpy().astype(np.float64)
    scale = np.abs(grads[np.float64]).max()
    np.testing.assert_allclose(
        grads[np.float32], grads[np.float64], atol=2e-5 * scale * np.sqrt(n * hw * hw)
    )
