"""Evaluations of many kernels run on the pool's first worker while the others spin
(`exec::evaluate_in`). Two Python threads evaluating at once, with fewer, as many or more
workers than cores, must all finish with the right values."""

import pytest

_SCRIPT = """
from concurrent.futures import ThreadPoolExecutor
import numpy as np
import pyflame as pf
from pyflame import nn, optim


def work(seed, errors):
    try:
        rng = np.random.default_rng(seed)
        w1 = rng.standard_normal((24, 40)).astype(np.float32)
        w2 = rng.standard_normal((40, 5)).astype(np.float32)
        pool = pf._core.ThreadPool(2)
        for step in range(30):
            x = rng.standard_normal((16, 24)).astype(np.float32)
            # a graph of several kernels: matmul, relu, matmul, softmax, sum
            a, b = pf.tensor(w1, requires_grad=True), pf.tensor(w2, requires_grad=True)
            h = pf.relu(pf.tensor(x) @ a)
            p = pf.softmax(h @ b, dim=1)
            loss = (p * p).sum()
            loss.backward()
            if step % 3 == 0:
                pool.eval(a.grad, b.grad)
            got = float(loss.item())
            hr = np.maximum(x.astype(np.float64) @ w1, 0) @ w2
            e = np.exp(hr - hr.max(1, keepdims=True))
            pr = e / e.sum(1, keepdims=True)
            assert abs(got - (pr * pr).sum()) < 1e-3 * max(1.0, abs(got)), (got, (pr * pr).sum())
            assert tuple(a.grad.shape) == (24, 40) and np.isfinite(a.grad.numpy()).all()
        # a few optimizer steps (one evaluation with forward, backward and update)
        net = nn.Sequential(nn.Linear(24, 40), nn.ReLU(), nn.Linear(40, 5))
        opt = optim.Adam(net.parameters(), lr=1e-2)
        xs = pf.tensor(rng.standard_normal((32, 24)).astype(np.float32))
        ys = pf.tensor(rng.integers(0, 5, 32))
        first = None
        for _ in range(40):
            loss = nn.CrossEntropyLoss()(net(xs), ys)
            opt.zero_grad()
            loss.backward()
            opt.step()
            first = loss.item() if first is None else first
        assert loss.item() < first, (first, loss.item())
    except Exception as e:  # reported by the main thread
        errors.append(repr(e))


errors = []
work(0, errors)
# two Python threads at once (evaluation releases the GIL)
with ThreadPoolExecutor(max_workers=2) as ex:
    list(ex.map(lambda seed: work(seed, errors), (1, 2)))
assert not errors, errors
print("ok")
"""


@pytest.mark.parametrize("threads", ["1", "2", "4"])
def test_two_python_threads_evaluate_at_once(threads, run_script_ok):
    run_script_ok(_SCRIPT, threads)
