#!/usr/bin/env python3
"""ZoomNet and its GRPO/PPO update in PyTorch: the peer a researcher would
write instead of ViRL Studio's candle engine.

The network is layer for layer the one in `engine/src/policy/zoomnet.rs`
(including the shift-tolerant reader of the answer head, whose
nonlinearity is GELU, tanh approximation, as `policy.reader_activation`'s default)
(default shape: hidden 64, pixel_dim 32, crop_patch 8, crop_dim 16,
question_dim 128, 21 sizes, 9 offsets, 64 px views, max_rounds 6), and the
update is the trainer's: clipped-ratio policy gradient with an entropy bonus,
global gradient-norm clip, AdamW.

The workload is the one `virl bench policy` times on the same machine:
16 distinct samples × 8 rollouts = 128 episodes; the rollout asks the policy
for two actions per episode (a zoom at step 0 on a blank crop, then an action
at step 1 on a crop), i.e. 256 sampled actions; the update runs 2 epochs over
those 256 actions in one minibatch (the trainer's defaults). Inputs are
random bytes of the real shapes: the arithmetic does not depend on the
pixels. Environment stepping and scoring are not timed on either side.

Usage: python3 bench/torch_reference.py [--device cpu|cuda] [--iters N] [--threads N]
Prints one JSON line with the timings.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VIEW, HIDDEN, PIX, PATCH, CROP_DIM, QDIM, SIZES, OFFSETS, RAW = 64, 64, 32, 8, 16, 128, 21, 9, 27
READ_DIM, READ_PATCH = 48, 32
MAX_ROUNDS, ANSWERS = 6, 10
U, G = 16, 8
B = U * G


def read_act(x):
    """The reader path's nonlinearity (candle's `gelu` is the tanh approximation)."""
    return F.gelu(x, approximate="tanh")


class ZoomNet(nn.Module):
    def __init__(self):
        super().__init__()
        h, p = HIDDEN, PIX
        patches = (VIEW // PATCH) ** 2
        trunk_in = h + 2 * h + (MAX_ROUNDS + 1) + 2
        self.question = nn.Linear(QDIM, h)
        self.pix1 = nn.Linear(27, p)
        self.pix2 = nn.Linear(p, p)
        self.crop_patch = nn.Linear(PATCH * PATCH * 6, CROP_DIM)
        self.crop_fc = nn.Linear(patches * CROP_DIM, h)
        self.trunk1 = nn.Linear(trunk_in, h)
        self.trunk2 = nn.Linear(h, h)
        self.kind = nn.Linear(h, 2)
        self.answer = nn.Linear(h, ANSWERS)
        self.reader = nn.Linear(h + 8 * READ_DIM, h)
        self.read_patch = nn.Linear(PATCH * PATCH * 6, READ_PATCH)
        self.read1 = nn.Linear(4 * READ_PATCH, READ_DIM)
        self.read2 = nn.Linear(READ_DIM, READ_DIM)
        self.loc_q = nn.Linear(h, p)
        self.loc_qq = nn.Linear(h, p)
        self.fine = nn.Linear(p + RAW + h, h)
        self.offset = nn.Linear(h, OFFSETS)
        self.size = nn.Linear(h, SIZES)

    def encode_globals(self, g):  # g: [n, Vg, Vg, 3] float in [-0.5, 0.5]
        n, v = g.shape[0], g.shape[1]
        padded = F.pad(g, (0, 0, 1, 1, 1, 1))
        parts = [padded[:, dy:dy + v, dx:dx + v, :] for dy in range(3) for dx in range(3)]
        unfolded = torch.cat(parts, 3).reshape(n, v * v, 27)
        k = self.pix2(F.relu(self.pix1(unfolded)))
        return torch.cat([k, unfolded], 2)

    @staticmethod
    def patches(c):  # [n, V, V, 3] -> [n, g, g, ps*ps*6]
        n, v, ps = c.shape[0], VIEW, PATCH
        g = v // ps
        mean = c.reshape(n, v * v, 3).mean(1).reshape(n, 1, 1, 3)
        centred = c - mean
        x = torch.cat([centred, centred.abs() * 2.0], 3)
        return x.reshape(n, g, ps, g, ps, 6).permute(0, 1, 3, 2, 4, 5).reshape(n, g, g, ps * ps * 6)

    def encode_crops(self, c):
        n, g = c.shape[0], VIEW // PATCH
        e = F.relu(self.crop_patch(self.patches(c).reshape(n, g * g, -1)))
        return F.relu(self.crop_fc(e.reshape(n, g * g * CROP_DIM)))

    def read_crops(self, c):
        n = c.shape[0]
        p = read_act(self.read_patch(self.patches(c)))  # [n, g, g, RP]
        w = p.shape[1] - 1
        win = torch.cat([p[:, :w, :w], p[:, :w, 1:], p[:, 1:, :w], p[:, 1:, 1:]], 3)
        f = read_act(self.read2(read_act(self.read1(win))))  # [n, w, w, R]
        half = w // 2 + 1
        top = f[:, :half].reshape(n, -1, READ_DIM)
        bottom = f[:, w - half:].reshape(n, -1, READ_DIM)
        return torch.cat([top.amax(1), bottom.amax(1), top.mean(1), bottom.mean(1)], 1)

    def trunk(self, q, crops, prevs, steps):
        n = q.shape[0]
        q = F.relu(self.question(q))
        c, p = self.encode_crops(crops), self.encode_crops(prevs)
        r = MAX_ROUNDS + 1
        extra = torch.zeros(n, r + 2, device=q.device)
        extra[torch.arange(n, device=q.device), steps.clamp(max=MAX_ROUNDS)] = 1.0
        extra[:, r] = (steps >= 1).float()
        extra[:, r + 1] = (steps >= 2).float()
        h = F.relu(self.trunk1(torch.cat([q, c, p, extra], 1)))
        t = F.relu(self.trunk2(h)) + h
        rcp = self.read_crops(torch.cat([crops, prevs], 0))
        reader = read_act(self.reader(torch.cat([q, rcp[:n], rcp[n:]], 1)))
        query = self.loc_q(t) + self.loc_qq(q)
        return t, reader, query

    def heads(self, keys, group, t, reader, query, cell=None):
        loc = torch.einsum("rp,rnp->rn", query / math.sqrt(PIX), keys[group, :, :PIX])
        kind_l, ans_l = self.kind(t), self.answer(reader)
        if cell is None:
            cell = torch.distributions.Categorical(logits=loc).sample()
        k = keys[group, cell]
        f = F.relu(self.fine(torch.cat([k, t], 1)))
        return kind_l, ans_l, loc, self.offset(f), self.size(f), cell


def joint_logp(logits, idx):
    kind_l, ans_l, loc_l, off_l, size_l = logits
    kind, ans, cell, off, size = idx
    g = lambda l, i: F.log_softmax(l, -1).gather(1, i.unsqueeze(1)).squeeze(1)
    is_ans = kind.float()
    zoom = g(loc_l, cell) + g(off_l, off) + g(size_l, size)
    return g(kind_l, kind) + is_ans * g(ans_l, ans) + (1 - is_ans) * zoom


def entropy(logits):
    kind_l, ans_l, loc_l, off_l, size_l = logits
    ent = lambda l: -(F.softmax(l, -1) * F.log_softmax(l, -1)).sum(1)
    pk = F.softmax(kind_l, -1)
    return ent(kind_l) + pk[:, 1] * ent(ans_l) + pk[:, 0] * (ent(loc_l) + ent(off_l) + ent(size_l))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--global-view", type=int, default=VIEW,
                    help="side of the global view (env.global_view; `virl bench policy --global-view`)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    torch.manual_seed(0)
    net = ZoomNet().to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.0)
    rnd = lambda *s: torch.randint(0, 256, s, dtype=torch.uint8)
    globals_u8 = rnd(U, a.global_view, a.global_view, 3)
    crops_u8 = rnd(B, VIEW, VIEW, 3)
    blank_u8 = torch.full((B, VIEW, VIEW, 3), 128, dtype=torch.uint8)
    questions = (torch.rand(B, QDIM) < 0.06).float()
    group = torch.arange(U).repeat_interleave(G)
    to_f = lambda x: x.to(dev).float() / 255.0 - 0.5
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)

    def iteration():
        t0 = time.perf_counter()
        # Rollout: observations in, sampled indices and log-probs out.
        with torch.no_grad():
            keys = net.encode_globals(to_f(globals_u8))
            g = group.to(dev)
            q = questions.to(dev)
            rows = []
            for step, crop, prev in ((0, blank_u8, blank_u8), (1, crops_u8, blank_u8)):
                st = torch.full((B,), step, device=dev, dtype=torch.long)
                t, reader, query = net.trunk(q, to_f(crop), to_f(prev), st)
                kind_l, ans_l, loc, off_l, size_l, cell = net.heads(keys, g, t, reader, query)
                d = torch.distributions.Categorical
                kind, ans = d(logits=kind_l).sample(), d(logits=ans_l).sample()
                off, size = d(logits=off_l).sample(), d(logits=size_l).sample()
                idx = (kind, ans, cell, off, size)
                lp = joint_logp((kind_l, ans_l, loc, off_l, size_l), idx)
                host = [x.cpu() for x in idx] + [lp.cpu()]
                rows.append((step, crop, prev, host))
        sync()
        t1 = time.perf_counter()
        # Update: 2 epochs over the 256 actions, one minibatch each.
        steps = torch.cat([torch.full((B,), r[0]) for r in rows]).to(dev)
        crops = torch.cat([r[1] for r in rows])
        prevs = torch.cat([r[2] for r in rows])
        idx = [torch.cat([r[3][j] for r in rows]).to(dev) for j in range(5)]
        old = torch.cat([r[3][5] for r in rows]).to(dev)
        adv = torch.randn(2 * B, device=dev)
        g2 = torch.cat([group, group]).to(dev)
        q2 = torch.cat([questions, questions]).to(dev)
        for _ in range(2):
            keys = net.encode_globals(to_f(globals_u8))
            t, reader, query = net.trunk(q2, to_f(crops), to_f(prevs), steps)
            kind_l, ans_l, loc, off_l, size_l, _ = net.heads(keys, g2, t, reader, query, cell=idx[2])
            logits = (kind_l, ans_l, loc, off_l, size_l)
            lp = joint_logp(logits, idx)
            ent = entropy(logits)
            ratio = (lp - old).exp()
            pg = -torch.minimum(ratio * adv, ratio.clamp(0.8, 1.2) * adv).mean()
            loss = pg - 0.01 * ent.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
        sync()
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1

    iteration()  # warm-up (allocator, kernels)
    times = [iteration() for _ in range(a.iters)]
    roll = sorted(t[0] for t in times)[len(times) // 2]
    upd = sorted(t[1] for t in times)[len(times) // 2]
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "device": str(dev),
        "threads": torch.get_num_threads(), "iters": a.iters, "global_view": a.global_view,
        "rollout_ms": round(roll * 1e3, 2), "update_ms": round(upd * 1e3, 2),
        "actions_per_s": round(2 * B / (roll + upd), 1),
        "trajectories_per_s": round(B / (roll + upd), 1),
    }))


if __name__ == "__main__":
    main()
