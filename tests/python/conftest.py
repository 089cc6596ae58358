"""Fixtures of the facevault Python tests: the package, the models, sample photos.

The package comes from PYTHONPATH (CTest sets it to build/python). Tests that need the pinned
models skip when they are not fetched (`make models`); tests that need photos of people use
../shared/data/samples (FACEVAULT_SHARED overrides ../shared) or, without it, the face-api
sample photos of demo-photos.lock (fetched by `make models`), and skip with the reason when neither is there.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from typing import Optional

import pytest

import facevault

SOURCE_DIR = pathlib.Path(os.environ.get("FACEVAULT_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))


def demo_photos_dir() -> pathlib.Path:
    """Where scripts/fetch-models.sh puts the photos of demo-photos.lock."""
    if os.environ.get("FACEVAULT_DEMO_PHOTOS"):
        return pathlib.Path(os.environ["FACEVAULT_DEMO_PHOTOS"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(cache) / "facevault" / "demo-photos"


def shared_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("FACEVAULT_SHARED") or SOURCE_DIR.parent / "shared")


@dataclass
class Photos:
    """Photos for a test: `person` and `person_again` show the same person (or are the same
    photo when only group photos are at hand), `other` shows someone else (None when unknown).
    `face` is the index of the face to enroll in `person` (None: the photo has one face)."""

    source: str
    person: pathlib.Path
    person_again: pathlib.Path
    other: Optional[pathlib.Path]
    face: Optional[int] = None


@pytest.fixture(scope="session")
def engine() -> facevault.Engine:
    """One Engine for the whole session: the models are loaded once."""
    try:
        return facevault.Engine()
    except (facevault.NotFound, facevault.FailedPrecondition, facevault.CorruptData) as e:
        pytest.skip(f"models not usable ({e}): run `make models`")


@pytest.fixture(scope="session")
def photos(engine: facevault.Engine) -> Photos:
    examples = shared_dir() / "data" / "samples" / "face_recognition" / "examples"
    if all((examples / n).exists() for n in ("obama.jpg", "obama2.jpg", "biden.jpg")):
        return Photos("shared samples", examples / "obama.jpg", examples / "obama2.jpg", examples / "biden.jpg")
    demo = demo_photos_dir() / "@vladmandic" / "face-api@1.7.15" / "demo"
    samples = sorted(demo.glob("sample*.jpg")) if demo.is_dir() else []
    for sample in samples:
        faces = engine.detect(sample)
        good = [i for i, f in enumerate(faces) if f.quality.acceptable]
        if good:
            return Photos("face-api demo photos", sample, sample, None, face=good[0])
    pytest.skip(f"no sample photos: neither {examples} nor face-api demo photos in {demo}")
