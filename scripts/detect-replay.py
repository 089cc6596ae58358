#!/usr/bin/env python3
"""Replays the detector pyramid's scoring on its raw candidates (`bench/detect_views` output)
and scores the result on WIDER FACE-format ground truth exactly as `facevault eval detect` does,
so that a scoring rule can be measured without running the network again (docs/models.md,
"Pyramid evidence"). The defaults reproduce `facevault eval detect` (--tile-score rows).

  build/bench/detect_views list.txt > views.jsonl            # list: one image path per line
  scripts/detect-replay.py --gt wider_face_train_bbx_gt.txt views.jsonl
  scripts/detect-replay.py --gt ... --flip orient-mean views.jsonl
  scripts/detect-replay.py --gt ... --vote-iou 0.5 views.jsonl

Rules (--flip): mean (default: a tile's score is the mean of its plain and mirrored passes),
max (the better of the two), orient-mean (the evidence of the plain passes and that of the
mirrored passes, each the mean of their best scales, averaged), orient-max (the better of those
two). --capable PX: a face's score is the mean of its best min(scales, n) scales, n the number
of scales in which the face is at least PX tall in the network input (the scales counted are
those with a candidate in the image).

What it does not model (none of it touches the WIDER event's figures, which it reproduces):
the pipeline's cap of 200 faces per image and its dropping of a face whose landmarks fail, and
the single reference pass of an image small enough for one tile (scored here by the pyramid's
rules). Images that detect_views could not read are missing from the dump, so they are left
out of the denominators here while `facevault eval detect` counts their faces as missed.

Needs numpy (Debian: python3-numpy).
"""
import argparse, json, sys

import numpy as np


def read_gt(path):
    lines = open(path).read().split('\n')
    gt, i = {}, 0
    while i < len(lines) and lines[i].strip():
        name, n = lines[i].strip(), int(lines[i + 1])
        faces = []
        for k in range(n):
            v = list(map(int, lines[i + 2 + k].split()[:8]))
            faces.append((v[0], v[1], v[0] + v[2], v[1] + v[3], v[7]))  # x1 y1 x2 y2 invalid
        gt[name] = faces
        i += 2 + max(n, 1)
    return gt


def iou(b, boxes):
    ix = np.clip(np.minimum(b[2], boxes[:, 2]) - np.maximum(b[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(b[3], boxes[:, 3]) - np.maximum(b[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    union = (b[2] - b[0]) * (b[3] - b[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0)


def evidence(tiles, combine, scales):
    per_scale = {}
    for level, plain, mirrored in tiles.values():
        per_scale[level] = max(per_scale.get(level, 0.0), combine(plain, mirrored))
    best = sorted(per_scale.values(), reverse=True)
    return sum(best[:scales]) / scales


def merge(views, height, a):
    """merge_views in src/face/nms.cpp: greedy clusters, evidence, box voting."""
    v = views[views[:, 3] >= a.floor]
    v = v[np.argsort(-v[:, 3], kind='stable')]
    boxes, claimed, out = v[:, 4:8], np.zeros(len(v), bool), []
    for lead in range(len(v)):
        if claimed[lead]:
            continue
        o = iou(boxes[lead], boxes)
        member = ~claimed & (o >= a.cluster_iou)
        member[lead] = True
        claimed |= member
        c, oc = v[member], o[member]
        tiles = {}
        for tile, level, mirrored, score in c[:, :4]:
            t = tiles.setdefault(tile, [level, 0.0, 0.0])
            t[2 if mirrored else 1] = max(t[2 if mirrored else 1], score)
        scales = a.scales
        if a.capable:
            h = boxes[lead][3] - boxes[lead][1]
            n = sum(1 for lv in a.levels if (h * 240 / height if lv == 0 else h / lv) >= a.capable)
            scales = max(1, min(a.scales, n))
        if a.flip == 'mean':
            score = evidence(tiles, lambda p, m: (p + m) / 2, scales)
        elif a.flip == 'max':
            score = evidence(tiles, max, scales)
        else:
            plain, mirrored = evidence(tiles, lambda p, m: p, scales), evidence(tiles, lambda p, m: m, scales)
            score = (plain + mirrored) / 2 if a.flip == 'orient-mean' else max(plain, mirrored)
        vote = oc >= a.vote_iou
        vote[0] = True  # the lead: every unclaimed index before it has led a cluster of its own
        w = c[vote, 3]
        out.append((score, (w[:, None] * c[vote, 4:8]).sum(0) / w.sum()))
    out.sort(key=lambda d: -d[0])
    return out


def nms(dets, threshold=0.4):
    kept = []
    for score, box in dets:
        if not kept or iou(box, np.array([k[1] for k in kept])).max() < threshold:
            kept.append((score, box))
    return kept


def drop_contained(dets, containment=0.6):
    area = lambda b: (b[2] - b[0]) * (b[3] - b[1])
    drop = [False] * len(dets)
    for i, (si, a) in enumerate(dets):
        for j, (sj, b) in enumerate(dets):
            if i == j or drop[j] or area(a) >= area(b) or sj < si:
                continue
            ix, iy = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
            if ix > 0 and iy > 0 and ix * iy >= containment * area(a):
                drop[i] = True
                break
    return [d for d, x in zip(dets, drop) if not x]


def score_detections(gt, predictions, min_height=32):
    """evaluate_detections in src/eval/detection_eval.cpp: recall at IoU >= 0.5 on valid faces
    >= min_height tall; a false positive overlaps no annotated face by IoU >= 0.3."""
    found = total = fp = 0
    for name, dets in predictions:
        faces = gt[name]
        evaluated = lambda f: not f[4] and f[3] - f[1] >= min_height
        g = np.array([f[:4] for f in faces], float).reshape(-1, 4)
        taken = [False] * len(faces)
        for _, box in sorted(dets, key=lambda d: -d[0]):
            o = iou(box, g) if len(g) else np.zeros(0)
            best, best_iou, best_eval, duplicate = -1, 0.5, False, False
            for j in range(len(faces)):
                if taken[j] and o[j] >= 0.5 and evaluated(faces[j]):
                    duplicate = True
                if taken[j] or o[j] < 0.5:
                    continue
                e = evaluated(faces[j])
                if best < 0 or (e and not best_eval) or (e == best_eval and o[j] > best_iou):
                    best, best_iou, best_eval = j, o[j], e
            if best >= 0:
                taken[best] = True
            elif not duplicate and (o.max() if len(o) else 0) < 0.3:
                fp += 1
        for j, f in enumerate(faces):
            if evaluated(f):
                total += 1
                found += taken[j]
    return found, total, fp / len(predictions)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('views')
    p.add_argument('--gt', required=True)
    p.add_argument('--thresholds', default='0.5,0.55,0.6')
    p.add_argument('--floor', type=float, default=0.3, help="the detector's candidate floor")
    p.add_argument('--cluster-iou', type=float, default=0.4)
    p.add_argument('--vote-iou', type=float, default=0.0, help='only members this close to the lead vote on the box')
    p.add_argument('--scales', type=int, default=2)
    p.add_argument('--flip', choices=['mean', 'max', 'orient-mean', 'orient-max'], default='mean')
    p.add_argument('--capable', type=float, default=0.0)
    a = p.parse_args()
    gt = read_gt(a.gt)
    merged = []
    for line in open(a.views):
        j = json.loads(line)
        name = j['file'].split('/images/', 1)[-1]
        if name not in gt:
            print(f'detect-replay: {j["file"]}: not in the ground truth, skipped', file=sys.stderr)
            continue
        v = np.array(j['views'], float).reshape(-1, 8)
        a.levels = sorted(set(v[:, 1]))
        merged.append((name, merge(v, j['height'], a)))
    if not merged:
        sys.exit('detect-replay: no image of the ground truth in ' + a.views)
    for t in map(float, a.thresholds.split(',')):
        preds = [(n, drop_contained(nms([d for d in m if d[0] >= t]))) for n, m in merged]
        found, total, fpi = score_detections(gt, preds)
        print(f'score >= {t:.2f}: recall {found}/{total} = {100 * found / total:.2f} %, {fpi:.3f} FP/image')


if __name__ == '__main__':
    main()
