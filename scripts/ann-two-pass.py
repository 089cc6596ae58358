#!/usr/bin/env python3
"""A model of the IVF's two-pass scan (ivf_index.h) on a face-shaped gallery: every template
is scored on the first 64 principal axes of its 4-bit code; the other axes are read only when
the first part plus the rest's mean and `z` standard deviations (4-bit levels of mean 7.5 and
variance 3.6 per axis) could still enter the best R by code. The scan goes through the gallery
in blocks of 512 in a random order, as cells are read. Reports the share of codes whose rest is
read, and the share of each probe's true top 10 (float32) and of first-ranked mates that are
among the best R, against reading every axis (z = 99).

The gallery is the one of scripts/ann-code-precision.py (whose helpers it uses): templates
drawn from a Gaussian with the mean and covariance of the LFW templates, plus the LFW gallery;
probes are other LFW images of gallery identities. Needs numpy and ~6 GB at --size 1000000.
Used for docs/benchmarks.md, issue 21 item 2.

  scripts/ann-two-pass.py --lfw ../shared/data/lfw --templates out/lfw.jsonl --size 1000000 --probes 150
"""
import argparse, importlib.util, os

import numpy as np

_spec = importlib.util.spec_from_file_location('acp', os.path.join(os.path.dirname(__file__), 'ann-code-precision.py'))
acp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(acp)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--lfw', required=True)
    ap.add_argument('--templates', required=True)
    ap.add_argument('--size', type=int, default=1000000)
    ap.add_argument('--probes', type=int, default=150)
    ap.add_argument('--rerank', type=int, default=100)
    ap.add_argument('--sigmas', default='3,4,5,99', help='z of the bound; 99: every axis read')
    ap.add_argument('--seed', type=int, default=1)
    a = ap.parse_args()
    D, DA, K, BLOCK, R = 128, 64, 4.0, 512, a.rerank

    mean, cov, _, axes, x, q, mate, n, rng = acp.face_shaped_gallery(a.lfw, a.templates, a.size, a.probes, a.seed)
    nq = len(q)
    p, mf = axes[:, :D], mean.astype(np.float32)
    y = np.empty((len(x), D), np.float32)
    for i in range(0, len(x), 200000):
        y[i:i + 200000] = (x[i:i + 200000] - mf) @ p
    sd = y[:n].std(0)
    lo, step = -K * sd, 2 * K * sd / 15
    c = np.clip(np.round((y - lo) / step), 0, 15).astype(np.float32)
    del y
    qy = (q - mf) @ p
    exact = np.empty((nq, len(x)), np.float32)
    for i in range(0, len(x), 200000):
        exact[:, i:i + 200000] = q @ x[i:i + 200000].T
    top10 = np.argsort(-exact, axis=1)[:, :10]
    first = top10[:, 0] == mate
    order = rng.permutation(len(x))
    print(f'{n} face-shaped + {len(x) - n} LFW templates, {nq} probes; exact scan: mate first {first.mean():.3f}; '
          f'4-bit level variance per axis {c.var(0).min():.2f}-{c.var(0).max():.2f}')
    for zm in (float(s) for s in a.sigmas.split(',')):
        kept_top, kept_mate, read = [], [], []
        for i in range(nq):
            w = qy[i] * step
            head, rest = c[:, :DA] @ w[:DA], c[:, DA:] @ w[DA:]
            full = head + rest
            bound = float(7.5 * w[DA:].sum() + zm * np.sqrt(3.6 * (w[DA:] ** 2).sum()))
            top_s, top_i, nread = np.empty(0, np.float32), np.empty(0, np.int64), 0
            for b0 in range(0, len(x), BLOCK):
                idx = order[b0:b0 + BLOCK]
                worst = top_s.min() if len(top_s) >= R else -np.inf
                s = idx[head[idx] + bound >= worst]
                nread += len(s)
                top_s, top_i = np.concatenate([top_s, full[s]]), np.concatenate([top_i, s])
                if len(top_s) > R:
                    k = np.argpartition(-top_s, R - 1)[:R]
                    top_s, top_i = top_s[k], top_i[k]
            got = set(top_i.tolist())
            kept_top.append(np.mean([j in got for j in top10[i]]))
            kept_mate.append(mate[i] in got)
            read.append(nread / len(x))
        kept_mate = np.array(kept_mate)
        print(f'z {zm:g}: rest read for {np.mean(read):.3f} of the codes; top 10 within R {np.mean(kept_top):.4f}; '
              f'first-ranked mates within R {np.mean(kept_mate[first]):.4f}', flush=True)


if __name__ == '__main__':
    main()
