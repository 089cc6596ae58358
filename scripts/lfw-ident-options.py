#!/usr/bin/env python3
"""Open-set identification on LFW for template variants that `facevault eval ident` cannot
compose by itself: a gallery from one template file and probes from another, concatenated
(fused) templates of two embedders, and per-gallery-template score normalisation (each
gallery template's score lowered by `a` times its mean similarity to its k nearest other
gallery templates, the gallery itself as the cohort). Same protocol and figures as
`facevault eval ident` (gallery: first image of each identity with >= 2 images; mated probes:
its other images; non-mated probes: single-image identities; FNIR counts a mate outside the
candidate list of 50 or below the threshold), computed in float32. Also View-1 (threshold
fitted on DevTrain, reported on DevTest) for plain template files.

Needs numpy (Debian: python3-numpy). Used for docs/benchmarks.md, issue 19 item 2.

  scripts/lfw-ident-options.py --lfw ../shared/data/lfw --templates out/lfw.jsonl
  scripts/lfw-ident-options.py --lfw ../shared/data/lfw --templates out/lfw_flip.jsonl --norm 10,0.5
  scripts/lfw-ident-options.py --lfw ../shared/data/lfw --templates out/lfw_flip.jsonl --fuse out/lfw_dlib.jsonl,1.0
  scripts/lfw-ident-options.py --lfw ../shared/data/lfw --templates out/lfw.jsonl --enrol 2 --probes-from 3
"""
import argparse, json, os, sys

import numpy as np

from lfw_templates import load


def protocol(images, templates, enrol=1, probes_from=1):
    """Gallery: the mean of the first `enrol` templates of each identity with more than
    `probes_from` images; mated probes: its images after the first `probes_from`;
    non-mated probes: the single-image identities."""
    people = sorted(os.listdir(images))
    gallery, probes, mate, nonmated, missing = [], [], [], [], 0
    for p in people:
        files = sorted(os.path.realpath(os.path.join(images, p, f)) for f in os.listdir(os.path.join(images, p)))
        if len(files) == 1:
            if files[0] in templates:
                nonmated.append(templates[files[0]])
            continue
        if len(files) <= probes_from:
            continue
        enrolled = [templates[f] for f in files[:enrol] if f in templates]
        if not enrolled:
            missing += len(files) - probes_from
            continue
        g = np.mean(enrolled, 0)
        gallery.append(g / np.linalg.norm(g))
        for f in files[probes_from:]:
            if f in templates:
                probes.append(templates[f])
                mate.append(len(gallery) - 1)
            else:
                missing += 1
    return np.array(gallery), np.array(probes), np.array(mate), np.array(nonmated), missing


def figures(Sp, Sn, mate, missing, listlen=50):
    n = len(mate) + missing
    ms = Sp[np.arange(len(mate)), mate]
    rank = (Sp > ms[:, None]).sum(1)
    top = np.sort(Sn.max(1))[::-1]
    out = {'rank1': float((rank == 0).sum() / n), 'misses': int(n - (rank == 0).sum())}
    for target in (0.01, 0.001):
        t = np.nextafter(top[int(np.floor(target * len(top)))], np.float32(2))
        out['fnir@fpir%g' % target] = float(1 - ((ms >= t) & (rank < listlen)).sum() / n)
    return out


def view1(lfw, T):
    def pairs(path):
        rows = [l.split() for l in open(path).read().strip().split('\n')[1:]]
        f = lambda n, i: os.path.realpath(f"{lfw}/images/{n}/{n}_{int(i):04d}.jpg")
        return [(f(r[0], r[1]), f(r[0], r[2]), 1) if len(r) == 3 else (f(r[0], r[1]), f(r[2], r[3]), 0) for r in rows]
    def scores(P):
        return (np.array([float(T[a] @ T[b]) if a in T and b in T else -1 for a, b, _ in P]), np.array([y for *_, y in P]))
    s1, y1 = scores(pairs(f'{lfw}/pairsDevTrain.txt'))
    s2, y2 = scores(pairs(f'{lfw}/pairsDevTest.txt'))
    acc = lambda s, y, t: float(((s >= t) == (y == 1)).mean())
    t = max(np.unique(s1), key=lambda t: acc(s1, y1, t))
    return {'view1_devtrain': acc(s1, y1, t), 'view1_devtest': acc(s2, y2, t), 'view1_threshold': float(t)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--lfw', required=True, help='LFW folder (images/, pairsDevTrain.txt, pairsDevTest.txt)')
    ap.add_argument('--templates', required=True, help='facevault embed JSONL (probes, and the gallery unless --gallery)')
    ap.add_argument('--gallery', help='JSONL whose templates form the gallery (e.g. mirror-averaged at enrolment only)')
    ap.add_argument('--fuse', help='FILE,W: concatenate each template with sqrt(W) times this file\'s, then normalise')
    ap.add_argument('--norm', help='K,A: subtract A x (mean similarity of each gallery template to its K nearest)')
    ap.add_argument('--enrol', type=int, default=1, help='photos fused (mean template) per gallery subject (default 1)')
    ap.add_argument('--probes-from', type=int, default=1,
                    help='probes are the images after this many (default 1; use the same value to compare --enrol values)')
    a = ap.parse_args()
    T = load(a.templates)
    if a.fuse:
        path, w = a.fuse.split(',')
        D = load(path)
        T = {k: np.concatenate([v, np.sqrt(float(w)) * D[k]]) / np.sqrt(1 + float(w)) for k, v in T.items() if k in D}
    Tg = load(a.gallery) if a.gallery else T
    images = os.path.join(a.lfw, 'images')
    if a.enrol > a.probes_from:
        ap.error('--enrol must not exceed --probes-from: enrolled photos are never probes')
    G, _, _, _, _ = protocol(images, Tg, a.enrol, a.probes_from)
    _, P, mate, N, missing = protocol(images, T, a.enrol, a.probes_from)
    Sp, Sn = P @ G.T, N @ G.T
    if a.norm:
        k, w = a.norm.split(',')
        GG = G @ G.T
        np.fill_diagonal(GG, -1)
        bias = float(w) * np.sort(GG, 1)[:, -int(k):].mean(1)
        Sp, Sn = Sp - bias, Sn - bias
    r = {'gallery': len(G), 'mated': len(mate) + missing, 'nonmated': len(N)}
    r.update(figures(Sp, Sn, mate, missing))
    if not a.gallery and not a.norm and a.enrol == 1 and a.probes_from == 1:
        r.update(view1(a.lfw, T))
    json.dump(r, sys.stdout)
    print()


if __name__ == '__main__':
    main()
