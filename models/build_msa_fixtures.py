"""Build the fixtures of the MSA paper's three settings ("Who does what in deep learning", Dixit et al. 2025).

    python models/build_msa_fixtures.py [mlp] [generator] [moe]      (needs torch; a few minutes on a CPU)

* ``msa_mlp_wd.onnx`` / ``msa_mlp_nowd.onnx``: the same MLP (64 -> 64 -> 32 -> 10, ReLU) trained on the
  scikit-learn digits with and without weight decay; data ``msa_digits_flat.npz`` (the digits test split,
  flattened to [N, 64]). Per-class modes and hub concentration.
* ``msa_generator.onnx``: a DCGAN-like generator (Linear -> ConvTranspose 32->16 (4x4) -> ConvTranspose
  16->8 (8x8) -> Conv 8->1 -> Sigmoid) trained as the decoder of a small autoencoder on the digits, so latent
  codes make recognisable digits; data ``msa_codes.npz`` (the test digits' codes). Per-pixel modes.
* ``msa_moe.onnx``: a one-block transformer over the 8 rows of a digit (8 tokens of 8 pixels) with a
  mixture-of-experts feed-forward layer (4 experts, top-2 routing), trained on two domains: plain digits
  (group 0) and digits upside down and inverted (group 1); data ``msa_moe_domains.npz`` (x, y, group);
  ``msa_moe_experts.json`` groups each expert's output layer into one player. Per-domain modes.

Running the committed fixtures needs no torch; only this builder does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

MODELS = Path(__file__).resolve().parent
sys.path.insert(0, str(MODELS.parent))
SEED = 0


def _split():
    from models.build_fixtures import load_split

    return load_split(SEED)


def _export(
    model, example, path: Path, input_name: str = "input", output: str = "output", fold: bool = False
) -> None:
    import torch

    model.eval()
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=[input_name],
        output_names=[output],
        dynamic_axes={input_name: {0: "batch"}, output: {0: "batch"}},
        opset_version=17,
        dynamo=False,
        do_constant_folding=fold,  # the MoE folds Linear's weight transposes into constants (dense units)
    )


def _fit(model, x, y, loss_fn, epochs: int, weight_decay: float = 0.0, lr: float = 3e-3, batch: int = 64):
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), batch):
            idx = order[start : start + batch]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
    return model


def build_mlp(out_dir: Path = MODELS, epochs: int = 60) -> dict:
    """Two MLPs, trained with and without weight decay; the share of value held by the top units differs."""
    import torch
    from torch import nn

    split = _split()
    x_tr = torch.from_numpy(split.x_train.reshape(len(split.x_train), -1))
    y_tr = torch.from_numpy(split.y_train.astype(np.int64))
    x_te = split.x_test.reshape(len(split.x_test), -1).astype(np.float32)
    np.savez_compressed(out_dir / "msa_digits_flat.npz", x=x_te, y=split.y_test.astype(np.int64))
    out = {}
    for name, wd in (("msa_mlp_nowd", 0.0), ("msa_mlp_wd", 0.3)):
        torch.manual_seed(SEED)

        class MLP(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.fc1, self.fc2, self.fc3 = nn.Linear(64, 64), nn.Linear(64, 32), nn.Linear(32, 10)

            def forward(self, x):
                return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

        model = _fit(MLP(), x_tr, y_tr, nn.functional.cross_entropy, epochs=epochs, weight_decay=wd)
        _export(model, torch.from_numpy(x_te[:2]), out_dir / f"{name}.onnx", output="logits")
        with torch.no_grad():
            acc = float((model(torch.from_numpy(x_te)).argmax(1).numpy() == split.y_test).mean())
        out[name] = {"weight_decay": wd, "test_accuracy": round(acc, 4)}
    return out


def build_generator(
    out_dir: Path = MODELS,
    epochs: int = 150,
    widths: tuple[int, int, int] = (32, 16, 8),
    name: str = "msa_generator",
) -> dict:
    """A DCGAN-like generator trained as an autoencoder's decoder on the digits (``widths``: channels
    before, between and after its two ConvTranspose layers)."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    split = _split()
    x_tr = torch.from_numpy(split.x_train)  # [N, 1, 8, 8] in [0, 1]

    class Generator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, widths[0] * 2 * 2)
            self.up1 = nn.ConvTranspose2d(widths[0], widths[1], 4, stride=2, padding=1)  # 2 -> 4
            self.up2 = nn.ConvTranspose2d(widths[1], widths[2], 4, stride=2, padding=1)  # 4 -> 8
            self.out = nn.Conv2d(widths[2], 1, 3, padding=1)

        def forward(self, z):
            h = torch.relu(self.fc(z)).reshape(-1, widths[0], 2, 2)
            h = torch.relu(self.up2(torch.relu(self.up1(h))))
            return torch.sigmoid(self.out(h))

    encoder = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 16), nn.Tanh()
    )  # codes in [-1, 1]
    gen = Generator()
    auto = nn.Sequential(encoder, gen)
    _fit(auto, x_tr, x_tr, nn.functional.binary_cross_entropy, epochs=epochs, lr=3e-3)
    with torch.no_grad():
        codes = encoder(torch.from_numpy(split.x_test)).numpy().astype(np.float32)
        recon = gen(torch.from_numpy(codes)).numpy()
    np.savez_compressed(out_dir / "msa_codes.npz", x=codes, y=split.y_test.astype(np.int64))
    _export(gen, torch.from_numpy(codes[:2]), out_dir / f"{name}.onnx", input_name="z", output="image")
    return {"reconstruction_mae": round(float(np.abs(recon - split.x_test).mean()), 4)}


def _domains(x: np.ndarray) -> np.ndarray:
    """Domain 1: the digit upside down and inverted (1 - x)."""
    return np.ascontiguousarray(1.0 - x[:, :, ::-1, :]).astype(np.float32)


def build_moe(
    out_dir: Path = MODELS,
    epochs: int = 40,
    d: int = 32,
    hidden: int = 64,
    n_experts: int = 4,
    name: str = "msa_moe",
) -> dict:
    """A one-block mixture-of-experts transformer over digit rows, two domains (top-2 routing over
    ``n_experts`` experts of width ``hidden``, model width ``d``)."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    split = _split()

    def both(x, y):
        xx = np.concatenate([x, _domains(x)])[:, 0]  # [2N, 8 rows, 8 pixels]: 8 tokens
        return xx.astype(np.float32), np.concatenate([y, y]).astype(np.int64), np.repeat([0, 1], len(x))

    x_tr, y_tr, _ = both(split.x_train, split.y_train)
    x_te, y_te, g_te = both(split.x_test, split.y_test)

    class Expert(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, d)

        def forward(self, h):
            return self.fc2(torch.relu(self.fc1(h)))

    class MoE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gate = nn.Linear(d, n_experts)
            self.experts = nn.ModuleList(Expert() for _ in range(n_experts))

        def forward(self, h):
            logits = self.gate(h)
            kth = torch.topk(logits, 2, dim=-1).values[..., -1:]
            weights = torch.softmax(logits.masked_fill(logits < kth, -1e9), dim=-1)
            outs = torch.stack([e(h) for e in self.experts], dim=-1)  # [B, T, d, E]
            return (outs * weights.unsqueeze(-2)).sum(-1)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(8, d)
            self.pos = nn.Parameter(torch.randn(1, 8, d) * 0.1)
            self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
            self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.moe = MoE()
            self.head = nn.Linear(d, 10)

        def forward(self, x):
            h = self.embed(x) + self.pos
            a = self.norm1(h)
            h = h + self.attn(a, a, a, need_weights=False)[0]
            h = h + self.moe(self.norm2(h))
            return self.head(h.mean(1))

    model = _fit(
        Block(), torch.from_numpy(x_tr), torch.from_numpy(y_tr), nn.functional.cross_entropy, epochs=epochs
    )
    path = out_dir / f"{name}.onnx"
    _export(model, torch.from_numpy(x_te[:2]), path, output="logits", fold=True)
    np.savez_compressed(out_dir / "msa_moe_domains.npz", x=x_te, y=y_te, group=g_te)
    with torch.no_grad():
        pred = model(torch.from_numpy(x_te)).argmax(1).numpy()
    acc = {str(g): round(float((pred == y_te)[g_te == g].mean()), 4) for g in (0, 1)}
    from onnxshap import instrument

    table = instrument(path, units="dense", provider="cpu").units
    groups: dict[str, list[str]] = {}
    for layer in table.layers:
        for k in range(n_experts):
            if f"experts.{k}/fc2/" in layer.layer:
                groups[f"expert{k}"] = [layer.layer]
    if len(groups) != n_experts:
        raise SystemExit(f"expected {n_experts} expert output layers, found {sorted(groups)}")
    (out_dir / f"{name}_experts.json").write_text(json.dumps(groups, indent=1) + "\n")
    return {"accuracy_by_domain": acc}


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(2)
    wanted = argv or ["mlp", "generator", "moe"]
    builders = {"mlp": build_mlp, "generator": build_generator, "moe": build_moe}
    for name in wanted:
        print(name, builders[name]())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
