"""Shared by the LFW evaluation scripts: reading `facevault embed` output."""
import json, os

import numpy as np


def load(path):
    """file -> unit template of the face nearest the image centre (the LFW convention)."""
    out = {}
    with open(path) as f:
        for line in f:
            j = json.loads(line)
            faces = [x for x in j.get('faces') or [] if 'template' in x]
            if not faces:
                continue
            cx, cy = j['width'] / 2, j['height'] / 2
            best = min(faces, key=lambda x: np.hypot(x['box'][0] + x['box'][2] / 2 - cx, x['box'][1] + x['box'][3] / 2 - cy))
            v = np.array(best['template'], dtype=np.float32)
            out[os.path.realpath(j['file'])] = v / np.linalg.norm(v)
    return out
