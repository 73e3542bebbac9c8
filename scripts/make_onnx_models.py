"""Exports the pyflame_rt equivalence/benchmark models to ONNX (dev only: needs torch and
onnxruntime, which are never dependencies of pyflame).

Writes, into ``target/onnx_models/`` (gitignored; override with ``--out`` or the
``PYFLAME_RT_MODELS`` environment variable):

- ``resnet18.onnx``: ResNet-18 (BasicBlock [2, 2, 2, 2], 7x7 stem + max pool, as torchvision's)
  for 3x32x32 inputs and 10 classes, with a dynamic batch dimension (about 45 MB of weights).
- ``bert_encoder.onnx``: a BERT-style encoder, 4 layers, hidden 256, 4 heads, FFN 1024, GELU,
  post-LayerNorm, sequence 128, with a dynamic batch dimension.
- ``*_ref.npz``: inputs and reference outputs computed by onnxruntime (batch 1 and 32 for
  ResNet-18, batch 8 for the encoder).

Usage::

    pip install torch onnxruntime onnx
    python scripts/make_onnx_models.py            # then: pytest tests/runtime/test_models.py
"""

from __future__ import annotations

import argparse
import os

import numpy as np


def default_dir() -> str:
    """Where the models go (``$PYFLAME_RT_MODELS`` or ``<repo>/target/onnx_models``).

    Example:
        >>> default_dir().endswith("onnx_models") or "PYFLAME_RT_MODELS" in os.environ
        True
    """
    env = os.environ.get("PYFLAME_RT_MODELS")
    if env:
        return env
    return os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "target", "onnx_models"
    )


def build_resnet18(num_classes: int = 10):  # noqa: ANN201 - returns a torch module
    """ResNet-18 (torchvision's architecture) without torchvision."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return torch.relu(y + (x if self.down is None else self.down(x)))

    class ResNet18(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(
                nn.Conv2d(3, 64, 7, 2, 3, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(),
                nn.MaxPool2d(3, 2, 1),
            )
            layers, cin = [], 64
            for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
                layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
                cin = cout
            self.layers = nn.Sequential(*layers)
            self.fc = nn.Linear(512, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.layers(self.stem(x))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))

    model = ResNet18()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial BN statistics so the folding is exercised
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def build_bert(layers: int = 4, hidden: int = 256, heads: int = 4, ffn: int = 1024):  # noqa: ANN201
    """A BERT-style post-LN encoder over float embeddings [B, S, H]."""
    import torch
    from torch import nn

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv = nn.Linear(hidden, 3 * hidden)
            self.out = nn.Linear(hidden, hidden)
            self.ln1 = nn.LayerNorm(hidden)
            self.ff1 = nn.Linear(hidden, ffn)
            self.ff2 = nn.Linear(ffn, hidden)
            self.ln2 = nn.LayerNorm(hidden)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            b, s, _ = x.shape
            q, k, v = self.qkv(x).reshape(b, s, 3, heads, hidden // heads).permute(2, 0, 3, 1, 4)
            att = torch.softmax(q @ k.transpose(-1, -2) / (hidden // heads) ** 0.5 + mask, -1)
            ctx = (att @ v).transpose(1, 2).reshape(b, s, hidden)
            x = self.ln1(x + self.out(ctx))
            return self.ln2(x + self.ff2(nn.functional.gelu(self.ff1(x))))

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList([Layer() for _ in range(layers)])

        def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            mask = (1.0 - attention_mask[:, None, None, :]) * -10000.0
            for layer in self.layers:
                x = layer(x, mask)
            return x

    torch.manual_seed(0)
    return Encoder().eval()


def main() -> None:
    """Exports both models and their onnxruntime reference outputs."""
    import onnxruntime
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=default_dir())
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(0)

    resnet = build_resnet18()
    path = os.path.join(args.out, "resnet18.onnx")
    torch.onnx.export(
        resnet,
        torch.zeros(1, 3, 32, 32),
        path,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        opset_version=17,
        dynamo=False,
    )
    sess = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    ref = {}
    for b in (1, 32):
        x = rng.standard_normal((b, 3, 32, 32)).astype(np.float32)
        ref[f"input_{b}"] = x
        ref[f"logits_{b}"] = sess.run(None, {"input": x})[0]
    np.savez(os.path.join(args.out, "resnet18_ref.npz"), **ref)

    bert = build_bert()
    path = os.path.join(args.out, "bert_encoder.onnx")
    x = torch.zeros(8, 128, 256)
    m = torch.ones(8, 128)
    torch.onnx.export(
        bert,
        (x, m),
        path,
        input_names=["hidden", "attention_mask"],
        output_names=["output"],
        dynamic_axes={"hidden": {0: "B"}, "attention_mask": {0: "B"}, "output": {0: "B"}},
        opset_version=17,
        dynamo=False,
    )
    sess = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    h = rng.standard_normal((8, 128, 256)).astype(np.float32)
    mask = np.ones((8, 128), np.float32)
    mask[:, 100:] = 0.0
    out = sess.run(None, {"hidden": h, "attention_mask": mask})[0]
    np.savez(
        os.path.join(args.out, "bert_encoder_ref.npz"), hidden=h, attention_mask=mask, output=out
    )
    print(f"wrote models and references to {args.out}")


if __name__ == "__main__":
    main()
