#!/usr/bin/env python3
"""Medformer-small single-task, rebuilt in PyTorch: an independent peer of `mf run` for recipe questions.

Not a runtime dependency (the project never imports PyTorch). It answers one question the engine cannot
answer about itself: is a result (say, BreastMNIST sitting at the class prior for some seeds at lr 1e-3)
a property of the recipe, or of this engine? Same architecture as src/models/medformer.ts, same
initialisation (src/nn/layers.ts), same weight-decay mask (src/nn/parameters.ts defaultDecay), same
OneCycle without momentum cycling (src/train/schedule.ts, as the trainer uses it), same augmentation
policy "flips-rotations" (pad-and-crop 4 px, independent horizontal and vertical flips, rotation uniform
in +-10 degrees, fill 0), best checkpoint by validation AUC then test once.

Run with Debian's python3-torch and its threaded OpenBLAS (`apt-get install python3-torch libopenblas0-pthread`;
without the latter torch falls back to a reference BLAS many times slower):
    /usr/bin/python3 bench/medformer_small_torch.py ../shared/data/breastmnist.npz --seeds 0,1,2
prints one JSON line per seed (test AUC/ACC at the epoch of best validation AUC, and at the last epoch).
    /usr/bin/python3 bench/medformer_small_torch.py --bench-step 10
times one training step (forward, backward, clip, AdamW) of batch 64 on random 28x28 inputs: the PyTorch side of
`mf bench train --only small-2d` (issue 15's "CPU step at most 2x PyTorch").
    /usr/bin/python3 bench/medformer_small_torch.py --load-safetensors model.safetensors --predict-npy x.npy --out logits.npy
loads a file of `mf export --format torch` (one 2D head; the module's arguments are in its __metadata__) with
load_state_dict(strict=True) and saves the logits of a normalised batch (test/cli/export.test.ts compares them).
"""

import argparse
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def fan_in_linear(i, o, bias=True):
    lin = nn.Linear(i, o, bias=bias)
    nn.init.uniform_(lin.weight, -1 / math.sqrt(i), 1 / math.sqrt(i))
    if bias:
        nn.init.zeros_(lin.bias)
    return lin


def trunc02(*shape, std=0.02):
    p = nn.Parameter(torch.empty(*shape))
    nn.init.trunc_normal_(p, std=std, a=-2 * std, b=2 * std)
    return p


class Attention(nn.Module):
    def __init__(self, dim, heads, ctx_dim=None):
        super().__init__()
        ctx_dim = ctx_dim or dim
        self.heads = heads
        self.q, self.k, self.v = fan_in_linear(dim, dim), fan_in_linear(ctx_dim, dim), fan_in_linear(ctx_dim, dim)
        self.proj = fan_in_linear(dim, dim)

    def forward(self, x, ctx):
        b, n, d = x.shape
        h = self.heads
        split = lambda t: t.view(b, t.shape[1], h, d // h).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(ctx)), split(self.v(ctx))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // h), dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim, hidden, approximate="none"):
        super().__init__()
        self.fc1, self.fc2 = fan_in_linear(dim, hidden), fan_in_linear(hidden, dim)
        self.approximate = approximate

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate=self.approximate))


class Block(nn.Module):
    def __init__(self, dim, heads, ratio, approximate="none"):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, round(dim * ratio), approximate)

    def forward(self, x):
        y = self.norm1(x)
        x = x + self.attn(y, y)
        return x + self.mlp(self.norm2(x))


class CrossBlock(nn.Module):
    def __init__(self, dim, ctx_dim, heads, ratio, ctx_norm=True, approximate="none"):
        super().__init__()
        self.norm_q, self.norm_ctx = nn.LayerNorm(dim), nn.LayerNorm(ctx_dim) if ctx_norm else nn.Identity()
        self.attn = Attention(dim, heads, ctx_dim)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, round(dim * ratio), approximate)

    def forward(self, q, ctx):
        x = q + self.attn(self.norm_q(q), self.norm_ctx(ctx))
        return x + self.mlp(self.norm2(x))


class MedformerSmall(nn.Module):
    # channels and approximate (GELU "none" = erf, or "tanh" as the engine computes it) serve `mf export --format torch`
    # files (load_exported); the benchmark and recipe runs keep the defaults.
    def __init__(self, outputs, size=28, patch=4, hidden=128, latent=64, n_latents=32, layers=4, heads=4, ratio=2, task_latents=4, ctx_norm=True,
                 channels=1, approximate="none", pos_std=0.02):
        super().__init__()
        self.patch = patch
        self.patch_embed = fan_in_linear(channels * patch * patch, hidden)
        self.pos = trunc02((size // patch) ** 2, hidden, std=pos_std)
        self.latents = trunc02(n_latents, latent)
        # Dimensionality, modality and body-part embeddings: one row each is used for a single 2D data set, so
        # their sum is one more learned vector added to every latent.
        self.dim_embed, self.modality_embed, self.body_part_embed = trunc02(latent), trunc02(latent), trunc02(latent)
        self.cross_in = CrossBlock(latent, hidden, heads, ratio, ctx_norm, approximate)
        self.to_hidden = fan_in_linear(latent, hidden)
        self.blocks = nn.ModuleList([Block(hidden, heads, ratio, approximate) for _ in range(layers)])
        self.body_norm = nn.LayerNorm(hidden)
        self.task_latents = trunc02(task_latents, hidden)
        self.cross_out = CrossBlock(hidden, hidden, heads, ratio, approximate=approximate)
        self.out_norm = nn.LayerNorm(hidden)
        self.head = fan_in_linear(hidden, outputs)

    def forward(self, x):
        b, p = x.shape[0], self.patch
        patches = F.unfold(x, p, stride=p).transpose(1, 2)  # [B, tokens, p*p]
        tokens = self.patch_embed(patches) + self.pos
        lat = (self.latents + self.dim_embed + self.modality_embed + self.body_part_embed).expand(b, -1, -1)
        h = self.to_hidden(self.cross_in(lat, tokens))
        for blk in self.blocks:
            h = blk(h)
        h = self.body_norm(h)
        out = self.out_norm(self.cross_out(self.task_latents.expand(b, -1, -1), h))
        return self.head(out.mean(1))

    def param_groups(self, wd):
        # timm's rule, as src/nn/parameters.ts: matrices decay; biases, norms, position/latent/embedding tables do not.
        tables = {"pos", "latents", "dim_embed", "modality_embed", "body_part_embed", "task_latents"}
        decay, rest = [], []
        for name, p in self.named_parameters():
            (rest if p.ndim < 2 or name in tables else decay).append(p)
        return [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]


def augment(x, gen, pad=4, max_deg=10.0):
    """flips-rotations on [B,1,H,W] in [0,1]: pad-and-crop, independent h/v flips, rotation, fill 0."""
    b, _, hgt, wid = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    out = torch.empty_like(x)
    for i in range(b):
        dy, dx = torch.randint(0, 2 * pad + 1, (2,), generator=gen).tolist()
        s = xp[i, :, dy : dy + hgt, dx : dx + wid]
        if torch.rand(1, generator=gen).item() < 0.5:
            s = s.flip(-1)
        if torch.rand(1, generator=gen).item() < 0.5:
            s = s.flip(-2)
        out[i] = s
    ang = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(max_deg)
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(b)], 1), torch.stack([sin, cos, torch.zeros(b)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(out, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def auc_binary(scores, labels):
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    s = scores[order]
    i = 0
    while i < len(s):  # average ranks of ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = labels == 1
    n1, n0 = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        p = torch.sigmoid(model(x * 2 - 1)).squeeze(1).numpy()
    model.train()
    return auc_binary(p, y), float(((p > 0.5) == (y == 1)).mean())


def run(npz, seed, epochs, lr, wd, batch, warmup_epochs, clip, augment_on, log, init, arch):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    d = np.load(npz)
    to_x = lambda a: torch.from_numpy(a.astype(np.float32) / 255).unsqueeze(1)
    xtr, ytr = to_x(d["train_images"]), torch.from_numpy(d["train_labels"].reshape(-1).astype(np.float32))
    xva, yva = to_x(d["val_images"]), d["val_labels"].reshape(-1)
    xte, yte = to_x(d["test_images"]), d["test_labels"].reshape(-1)
    model = MedformerSmall(1, **arch)
    if init == "timm":  # ViT/timm: every Linear trunc_normal(0.02), zero bias
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04)
    elif init == "xavier":  # Perceiver/original ViT: xavier_uniform Linear weights
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
    opt = torch.optim.AdamW(model.param_groups(wd), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    steps_per_epoch = len(xtr) // batch
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=total, pct_start=warmup_epochs * steps_per_epoch / total, cycle_momentum=False
    )
    best = (-1.0, None, 0)
    t0 = time.time()
    for epoch in range(epochs):
        perm = torch.randperm(len(xtr), generator=gen)
        losses = []
        for s in range(steps_per_epoch):
            idx = perm[s * batch : (s + 1) * batch]
            xb = augment(xtr[idx], gen) if augment_on else xtr[idx]
            loss = F.binary_cross_entropy_with_logits(model(xb * 2 - 1).squeeze(1), ytr[idx])
            opt.zero_grad()
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
            losses.append(loss.item())
        vauc, vacc = evaluate(model, xva, yva)
        if log:
            print(f"seed {seed} epoch {epoch + 1} loss {np.mean(losses):.4f} val AUC {vauc:.4f} ACC {vacc:.3f}", flush=True)
        if vauc > best[0]:
            best = (vauc, {k: v.clone() for k, v in model.state_dict().items()}, epoch + 1)
    last_auc, last_acc = evaluate(model, xte, yte)
    model.load_state_dict(best[1])
    tauc, tacc = evaluate(model, xte, yte)
    majority = float(max((yte == 1).mean(), (yte == 0).mean()))
    return {
        "seed": seed, "epochs": epochs, "lr": lr, "batch": batch, "augment": augment_on, "init": init, "arch": arch, "best_epoch": best[2],
        "val_auc": round(best[0], 4), "test_auc": round(tauc, 4), "test_acc": round(tacc, 4),
        "majority_acc": round(majority, 4),
        "last_epoch_test_auc": round(last_auc, 4), "last_epoch_test_acc": round(last_acc, 4), "wall_s": round(time.time() - t0, 1),
    }


def bench_step(steps, batch, threads):
    torch.manual_seed(0)
    model = MedformerSmall(1)
    opt = torch.optim.AdamW(model.param_groups(1e-3), lr=1e-3)
    x, y = torch.rand(batch, 1, 28, 28) * 2 - 1, (torch.rand(batch) < 0.5).float()

    def step():
        loss = F.binary_cross_entropy_with_logits(model(x).squeeze(1), y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {
        "case": "small-2d", "batch": batch, "threads": threads, "median_ms": round(1000 * float(np.median(times)), 1),
        "min_ms": round(1000 * min(times), 1), "steps": steps, "params": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__, "blas": blas(),
    }


def read_safetensors(path):
    """A safetensors file without the safetensors package: 8-byte little-endian header length, JSON header, raw data."""
    with open(path, "rb") as fh:
        raw = fh.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n :]
    tensors = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            raise SystemExit(f"{path}: tensor {name} is {t['dtype']}; mf export writes F32")
        begin, end = t["data_offsets"]
        tensors[name] = torch.from_numpy(np.frombuffer(data[begin:end], dtype="<f4").copy().reshape(t["shape"]))
    return tensors, meta


def load_exported(path):
    """The module of an `mf export --format torch` file, its weights loaded strictly (every key, every shape)."""
    tensors, meta = read_safetensors(path)
    if meta.get("format") != "medformer-torch-state-dict":
        raise SystemExit(f"{path}: not written by mf export --format torch")
    kwargs = json.loads(meta["module"])
    if kwargs.pop("dim") != 2:
        raise SystemExit(f"{path}: a 3D head; this peer patchifies 2D images only (F.unfold)")
    model = MedformerSmall(**kwargs)
    model.load_state_dict(tensors, strict=True)
    return model.eval()


def blas():
    """The BLAS library this process loaded (Debian's torch reports BLAS_INFO=generic and links libblas.so.3,
    which the alternatives system points at OpenBLAS or at the slow reference BLAS)."""
    with open("/proc/self/maps") as maps:
        libs = {line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line}
    return sorted(libs)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("npz", nargs="?")
    ap.add_argument("--bench-step", type=int, default=0, metavar="N", help="time N training steps instead of training")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--warmup-epochs", type=float, default=5)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log", action="store_true")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument("--latents", type=int, default=32)
    ap.add_argument("--no-ctx-norm", action="store_true", help="no LayerNorm on the patch tokens the input latents attend")
    ap.add_argument("--pos-std", type=float, default=0.02, help="std of the position-embedding init (truncated at 2 std)")
    ap.add_argument("--init", choices=["fan_in", "timm", "xavier"], default="fan_in")
    ap.add_argument("--load-safetensors", metavar="FILE", help="an mf export --format torch file: load it and predict --predict-npy")
    ap.add_argument("--predict-npy", metavar="IN", help="with --load-safetensors: a float32 [N, C, H, W] batch, normalised as mf predict does")
    ap.add_argument("--out", metavar="OUT", help="with --load-safetensors: where to np.save the logits [N, outputs]")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.load_safetensors:
        if not (a.predict_npy and a.out):
            ap.error("--load-safetensors needs --predict-npy IN and --out OUT")
        model = load_exported(a.load_safetensors)
        with torch.no_grad():
            logits = model(torch.from_numpy(np.load(a.predict_npy).astype(np.float32)))
        np.save(a.out, logits.numpy())
        sys.exit(0)
    if a.bench_step:
        print(json.dumps(bench_step(a.bench_step, a.batch, a.threads)))
        sys.exit(0)
    if not a.npz:
        ap.error("give a MedMNIST .npz (a binary data set such as breastmnist.npz), or --bench-step N")
    for seed in [int(s) for s in a.seeds.split(",")]:
        r = run(a.npz, seed, a.epochs, a.lr, a.wd, a.batch, a.warmup_epochs, a.clip, not a.no_augment, a.log, a.init,
                dict(hidden=a.hidden, layers=a.layers, latent=a.latent, n_latents=a.latents, ctx_norm=not a.no_ctx_norm, pos_std=a.pos_std))
        r.update(torch=torch.__version__, command=" ".join(["bench/medformer_small_torch.py", *sys.argv[1:]]))
        print(json.dumps(r), flush=True)
