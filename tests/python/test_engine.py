"""facevault.Engine: detection, templates and 1:1 verification on images in memory."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import facevault
from conftest import Photos


def test_detect_finds_a_face_with_box_keypoints_and_quality(engine: facevault.Engine, photos: Photos) -> None:
    faces = engine.detect(photos.person)
    assert faces, f"no face in {photos.person}"
    face = faces[photos.face or 0]
    x, y, w, h = face.box
    assert w > 20 and h > 20 and x >= 0 and y >= 0
    assert 0.5 < face.score <= 1.0
    assert len(face.keypoints) == 5
    (lx, ly), (rx, ry) = face.keypoints[0], face.keypoints[1]
    assert lx < rx and x <= lx <= x + w and y <= ly <= y + h
    assert isinstance(face.quality.acceptable, bool) and face.quality.inter_eye_px > 0
    assert face.template is None and face.model is None  # detect computes no template
    d = face.to_dict()
    assert set(d) >= {"box", "score", "keypoints", "quality"} and "template" not in d


def test_bytes_path_and_pathlike_give_the_same_faces(engine: facevault.Engine, photos: Photos) -> None:
    data = photos.person.read_bytes()
    a = engine.embed(data)
    b = engine.embed(str(photos.person))
    c = engine.embed(bytearray(data))
    assert [f.box for f in a] == [f.box for f in b] == [f.box for f in c]
    assert all(np.array_equal(x.template, y.template) for x, y in zip(a, b))


def test_embed_gives_unit_float32_templates(engine: facevault.Engine, photos: Photos) -> None:
    faces = engine.embed(photos.person)
    t = faces[photos.face or 0].template
    assert isinstance(t, np.ndarray) and t.dtype == np.float32 and t.ndim == 1 and t.size >= 128
    assert abs(float(np.linalg.norm(t)) - 1.0) < 1e-3
    assert faces[0].model == "faceplugin-mobilefacenet-512"
    assert engine.embedder == "faceplugin-mobilefacenet-512" and engine.threads == 1


def test_a_numpy_array_gives_the_same_faces_as_the_file(engine: facevault.Engine, photos: Photos) -> None:
    pixels = facevault.decode(photos.person)
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
    from_array = engine.embed(pixels)
    from_file = engine.embed(photos.person)
    assert [f.box for f in from_array] == [f.box for f in from_file]
    assert all(np.array_equal(a.template, f.template) for a, f in zip(from_array, from_file))
    # A non-contiguous view (every other column) is accepted and copied.
    assert engine.detect(pixels[:, ::2, :]) is not None


def test_pixels_round_trip_through_an_encoded_photo(engine: facevault.Engine, photos: Photos) -> None:
    pixels = facevault.decode(photos.person)
    h, w, _ = pixels.shape
    ppm = f"P6 {w} {h} 255\n".encode() + pixels.tobytes()  # lossless, so the same pixels again
    assert np.array_equal(facevault.decode(ppm), pixels)
    assert [f.box for f in engine.detect(ppm)] == [f.box for f in engine.detect(pixels)]


def test_verify_same_and_different_people(engine: facevault.Engine, photos: Photos) -> None:
    if photos.other is None:
        pytest.skip(f"{photos.source}: no two photos of one person and one of another")
    same = engine.verify(photos.person, photos.person_again)
    assert same.same and same.similarity >= same.threshold
    assert same.threshold_fmr == 1e-4 and same.score_fmr is not None and same.score_fmr <= 1e-3
    assert same.faces_a >= 1 and same.faces_b >= 1 and same.model == "faceplugin-mobilefacenet-512"
    diff = engine.verify(photos.person, photos.other, fmr=1e-3)
    assert not diff.same and diff.similarity < diff.threshold and diff.threshold_fmr == 1e-3
    assert set(diff.to_dict()) >= {"similarity", "same", "threshold", "score_fmr", "box_a", "box_b"}


def test_a_photo_verified_against_itself_is_the_same_person(engine: facevault.Engine, photos: Photos) -> None:
    r = engine.verify(photos.person, photos.person)
    assert r.same and r.similarity > 0.999 and r.box_a == r.box_b


def test_verify_refuses_an_image_without_a_face(engine: facevault.Engine, photos: Photos) -> None:
    blank = np.full((240, 320, 3), 128, dtype=np.uint8)
    with pytest.raises(facevault.FailedPrecondition) as info:
        engine.verify(photos.person, blank)
    assert info.value.code == "FAILED_PRECONDITION"
    with pytest.raises(facevault.InvalidArgument):
        engine.verify(photos.person, photos.person, fmr=0.9)


def test_threads_share_one_engine(engine: facevault.Engine, photos: Photos) -> None:
    # The GIL is released during analysis; calls wait for the engine's pipeline in turn and
    # each gets the same answer.
    data = photos.person.read_bytes()
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: engine.embed(data), range(3)))
    for faces in results[1:]:
        assert [f.box for f in faces] == [f.box for f in results[0]]
        assert all(np.array_equal(a.template, b.template) for a, b in zip(faces, results[0]))


def test_no_face_in_a_blank_array(engine: facevault.Engine) -> None:
    assert engine.detect(np.zeros((120, 160, 3), dtype=np.uint8)) == []


def test_bad_images_raise_typed_errors(engine: facevault.Engine, tmp_path: pathlib.Path) -> None:
    with pytest.raises((facevault.CorruptData, facevault.Unsupported)):
        engine.detect(b"this is not an image")
    with pytest.raises(facevault.NotFound):
        engine.detect(tmp_path / "missing.jpg")
    with pytest.raises(facevault.InvalidArgument):
        engine.detect(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(facevault.InvalidArgument):
        engine.detect(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(TypeError):
        engine.detect(12345)


def test_a_missing_model_folder_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(facevault.Error) as info:
        facevault.Engine(model_dir=str(tmp_path))
    assert info.value.code in ("NOT_FOUND", "FAILED_PRECONDITION")


def test_templates_equal_the_cli_templates_bit_for_bit(engine: facevault.Engine, photos: Photos) -> None:
    binary = os.environ.get("FACEVAULT_BINARY")
    if not binary or not os.path.exists(binary):
        pytest.skip("FACEVAULT_BINARY is not set to the built facevault binary (CTest sets it)")
    out = subprocess.run([binary, "embed", "--json", "--no-progress", str(photos.person)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    cli_faces = json.loads(out.stdout.splitlines()[0])["faces"]
    py_faces = engine.embed(photos.person)
    assert len(cli_faces) == len(py_faces) > 0
    for cli, py in zip(cli_faces, py_faces):
        assert cli["model"] == py.model
        values = cli["template"]
        # The CLI prints each float32 with enough digits to round-trip: equal as float32 and as
        # the doubles they widen to, element by element.
        assert np.array_equal(np.asarray(values, dtype=np.float32), py.template)
        assert [float(v) for v in py.template] == values
