#!/usr/bin/env python3
"""How precise must an approximate index's codes be on a face-shaped gallery? A model of the
first stage of an IVF or graph search, apart from any structure: every gallery template is
scored by a cheap estimate, the best R by estimate are re-scored exactly, and the question is
which share of each probe's true top 10, and of the mates the exact scan finds first, are
among those R.

The gallery follows `facevault bench index --gallery face`: templates drawn from a Gaussian
with the mean and covariance of the given LFW templates, normalised, plus the LFW gallery
(first image of each identity with >= 2 images); the probes are other images of those
identities. Estimates: the projection on the first D principal axes (float), and 4-bit codes
of it with per-axis ranges of mean +- K sigma (the IVF's codes) or with one scale per
template. Also the share of the gallery an IVF over those axes must scan to hold the true
top 10 (k-means cells, nearest first).

Needs numpy (Debian: python3-numpy) and ~6 GB of memory at --size 1000000. Used for
docs/benchmarks.md, issue 21 item 2.

  scripts/ann-code-precision.py --lfw ../shared/data/lfw --templates out/lfw.jsonl --size 1000000 --dims 64,128
"""
import argparse, os

import numpy as np

from lfw_templates import load


def lfw_split(root, templates):
    gallery, probes, mates = [], [], []
    images = os.path.join(root, 'images')
    for person in sorted(os.listdir(images)):
        files = sorted(os.path.realpath(os.path.join(images, person, f)) for f in os.listdir(os.path.join(images, person)))
        if len(files) < 2 or files[0] not in templates:
            continue
        g = len(gallery)
        gallery.append(templates[files[0]])
        for f in files[1:]:
            if f in templates:
                probes.append(templates[f])
                mates.append(g)
    return np.array(gallery), np.array(probes), np.array(mates)


def face_shaped_gallery(lfw, templates, size, probes, seed):
    """The gallery of --gallery face: `size` templates drawn from a Gaussian with the mean and
    covariance of the LFW templates (normalised), then the LFW gallery; `probes` LFW probes
    with their mates' rows. Returns mean, cov, eigenvalues and axes (largest first), the
    gallery, the probes, their mates, the synthetic count, and the generator for what follows."""
    t = load(templates)
    every = np.array(list(t.values()), dtype=np.float64)
    mean, cov = every.mean(0), np.cov(every.T)
    evals, axes = np.linalg.eigh(cov)
    evals, axes = evals[::-1], axes[:, ::-1].astype(np.float32)
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(cov + 1e-9 * np.eye(cov.shape[0]))
    gal, prb, mates = lfw_split(lfw, t)
    x = np.empty((size + len(gal), cov.shape[0]), np.float32)
    for i in range(0, size, 100000):
        m = min(100000, size - i)
        z = rng.standard_normal((m, cov.shape[0])) @ chol.T + mean
        x[i:i + m] = z / np.linalg.norm(z, axis=1, keepdims=True)
    x[size:] = gal
    pick = rng.choice(len(prb), min(probes, len(prb)), replace=False)
    return mean, cov, evals, axes, x, prb[pick], mates[pick] + size, size, rng


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--lfw', required=True, help='LFW root (images/ inside)')
    ap.add_argument('--templates', required=True, help='facevault embed output over every LFW image')
    ap.add_argument('--size', type=int, default=1000000, help='face-shaped synthetic templates')
    ap.add_argument('--probes', type=int, default=300)
    ap.add_argument('--dims', default='64,128', help='principal axes kept, comma-separated')
    ap.add_argument('--ranges', default='2.8,4.0', help='4-bit ranges in sigmas, comma-separated')
    ap.add_argument('--nlist', type=int, default=1024, help='k-means cells for the IVF coverage (0: skip)')
    ap.add_argument('--seed', type=int, default=1)
    a = ap.parse_args()

    mean, cov, evals, axes, x, q, mate, n, rng = face_shaped_gallery(a.lfw, a.templates, a.size, a.probes, a.seed)
    share = np.cumsum(evals) / evals.sum()
    print('variance on the first 32/64/128/192 axes:', ' / '.join(f'{share[k - 1]:.3f}' for k in (32, 64, 128, 192)))
    nq = len(q)
    exact = np.empty((nq, len(x)), np.float32)
    for i in range(0, len(x), 200000):
        exact[:, i:i + 200000] = q @ x[i:i + 200000].T
    top10 = np.argsort(-exact, axis=1)[:, :10]
    first = top10[:, 0] == mate
    print(f'{n} face-shaped + {len(x) - n} LFW templates, {nq} LFW probes; exact scan: mate first {first.mean():.3f}, '
          f'10th neighbour at {exact[np.arange(nq), top10[:, 9]].mean():.3f}')

    def report(est, label):
        r_mate = np.array([(est[i] > est[i, mate[i]]).sum() for i in range(nq)])
        r_top = np.array([[(est[i] > est[i, j]).sum() for j in top10[i]] for i in range(nq)])
        cells = [f'R {r}: top 10 {np.mean(r_top < r):.3f}, mates {np.mean((r_mate < r) & first):.3f}' for r in (100, 300, 1000, 3000)]
        print(f'{label:28s}', ' | '.join(cells), flush=True)

    for d in (int(s) for s in a.dims.split(',')):
        p = axes[:, :d]
        y = np.empty((len(x), d), np.float32)
        for i in range(0, len(x), 200000):
            y[i:i + 200000] = (x[i:i + 200000] - mean.astype(np.float32)) @ p
        qy = (q - mean.astype(np.float32)) @ p
        report(qy @ y.T, f'{d} axes, float')
        sd = y[:n].std(0)
        for k in (float(s) for s in a.ranges.split(',')):
            lo, step = -k * sd, 2 * k * sd / 15
            report(qy @ (lo + step * np.clip(np.round((y - lo) / step), 0, 15)).T, f'{d} axes, 4 bits, ±{k}σ')
        z = y / sd
        s = np.abs(z).max(1, keepdims=True) / 7.5
        report(qy @ ((np.clip(np.round(z / s + 7), 0, 15) - 7) * s * sd).T, f'{d} axes, 4 bits, per template')
        if a.nlist and d == max(int(s) for s in a.dims.split(',')):
            c = y[rng.choice(len(y), a.nlist, replace=False)].copy()
            sample = y[rng.choice(len(y), min(len(y), 64 * a.nlist), replace=False)]
            for _ in range(10):
                asg = np.argmax(sample @ c.T - 0.5 * (c * c).sum(1), axis=1)
                for j in range(a.nlist):
                    if (asg == j).any():
                        c[j] = sample[asg == j].mean(0)
            cell = np.concatenate([np.argmax(y[i:i + 100000] @ c.T - 0.5 * (c * c).sum(1), axis=1) for i in range(0, len(y), 100000)])
            size = np.bincount(cell, minlength=a.nlist)
            need_top, need_mate = [], []
            for i in range(nq):
                order = np.argsort(-((qy[i] @ c.T) - 0.5 * (c * c).sum(1)))
                pos = np.empty(a.nlist, np.int64)
                pos[order] = np.arange(a.nlist)
                cum = np.cumsum(size[order]) / len(y)
                need_top.append([cum[pos[cell[j]]] for j in top10[i]])
                need_mate.append(cum[pos[cell[mate[i]]]])
            need_top, need_mate = np.array(need_top), np.array(need_mate)
            print(f'IVF, {a.nlist} cells over {d} axes: ' + ' | '.join(
                f'scan {f:.0%}: top 10 {np.mean(need_top <= f):.3f}, mates {np.mean((need_mate <= f) & first):.3f}'
                for f in (0.1, 0.25, 0.4, 0.5)))


if __name__ == '__main__':
    main()
