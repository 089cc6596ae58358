"""Type stubs of facevault's compiled core (python/src/*.cpp)."""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

__version__: str

#: An encoded photo (bytes, bytearray, memoryview) or a local file path.
Photo = Union[bytes, bytearray, memoryview, str, os.PathLike[str]]
#: A photo, or a numpy uint8 array of shape (height, width, 3) in RGB order.
Image = Union[Photo, npt.NDArray[np.uint8]]
#: (x, y, width, height) in pixels.
Box = tuple[float, float, float, float]

def status_codes() -> list[str]:
    """The name of every status code an error can carry (Error.code), in the library's order."""

def decode(image: Image) -> npt.NDArray[np.uint8]:
    """The pixels the engine analyzes for an image (EXIF orientation applied), as (height, width, 3) RGB."""

def _raise_status(code: str, message: str) -> None:
    """Raises the error a C++ Status with this code and message becomes (the tests walk every code with it)."""

class Quality:
    """How fit a face is for enrollment, with the measurements behind the verdict."""

    @property
    def acceptable(self) -> bool: ...
    @property
    def reasons(self) -> list[str]: ...
    @property
    def box_height_px(self) -> float: ...
    @property
    def inter_eye_px(self) -> float: ...
    @property
    def sharpness(self) -> float: ...
    @property
    def yaw_deg(self) -> float: ...
    @property
    def roll_deg(self) -> float: ...
    @property
    def pitch_ratio(self) -> float: ...

class Face:
    """A face found in an image: box, detector score, 5 keypoints, quality and, from embed(), its template."""

    @property
    def box(self) -> Box: ...
    @property
    def score(self) -> float: ...
    @property
    def keypoints(self) -> list[tuple[float, float]]: ...
    @property
    def quality(self) -> Quality: ...
    @property
    def template(self) -> Optional[npt.NDArray[np.float32]]: ...
    @property
    def model(self) -> Optional[str]: ...
    def to_dict(self) -> dict[str, Any]:
        """The face as the HTTP API renders it (box and keypoints rounded to 0.1 px, score to 4 decimals)."""

class Comparison:
    """The 1:1 comparison of the largest face of two photos."""

    @property
    def similarity(self) -> float: ...
    @property
    def same(self) -> bool: ...
    @property
    def threshold(self) -> Optional[float]: ...
    @property
    def threshold_fmr(self) -> float: ...
    @property
    def score_fmr(self) -> Optional[float]: ...
    @property
    def calibration(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def faces_a(self) -> int: ...
    @property
    def faces_b(self) -> int: ...
    @property
    def box_a(self) -> Box: ...
    @property
    def box_b(self) -> Box: ...
    def to_dict(self) -> dict[str, Any]:
        """The comparison as the HTTP API renders it (similarity rounded to 4 decimals)."""

class Engine:
    """The face pipeline (detector, landmarks, embedder) on images in memory: no vault, no audit."""

    def __init__(
        self, model_dir: Optional[str] = None, threads: int = 1, embedder: str = "faceplugin-mobilefacenet-512"
    ) -> None:
        """Loads the pinned models from model_dir (default: $FACEVAULT_MODEL_DIR, else ~/.cache/facevault/models)."""
    def detect(self, image: Image) -> list[Face]:
        """Every face in the image, best score first, without templates."""
    def embed(self, image: Image) -> list[Face]:
        """Every face in the image with its template (Face.template, Face.model), as `facevault embed`."""
    def verify(self, a: Image, b: Image, fmr: float = 1e-4) -> Comparison:
        """Compares the largest face of two images at a false-match rate, as `facevault verify`."""
    @property
    def model_dir(self) -> str: ...
    @property
    def embedder(self) -> str: ...
    @property
    def threads(self) -> int: ...

class Basis:
    """A lawful-basis record just added."""

    @property
    def id(self) -> int: ...
    @property
    def subject(self) -> str: ...
    @property
    def subject_id(self) -> str: ...
    @property
    def subject_created(self) -> bool: ...
    @property
    def retention_until(self) -> str: ...
    @property
    def audit_hash(self) -> str: ...
    def to_dict(self) -> dict[str, Any]:
        """The result as `--json` and the HTTP API render it (service::render): plain dicts and lists."""

class Enrollment:
    """A face enrolled: its template is sealed in the vault."""

    @property
    def subject(self) -> str: ...
    @property
    def subject_id(self) -> str: ...
    @property
    def face_id(self) -> int: ...
    @property
    def image_id(self) -> int: ...
    @property
    def face(self) -> int: ...
    @property
    def box(self) -> Box: ...
    @property
    def sha256(self) -> str: ...
    @property
    def retention_until(self) -> str: ...
    @property
    def audit_hash(self) -> str: ...
    def to_dict(self) -> dict[str, Any]:
        """The result as `--json` and the HTTP API render it (service::render): plain dicts and lists."""

class Candidate:
    """An enrolled subject similar to a probe face: a lead for human review, not an identification."""

    @property
    def subject(self) -> str: ...
    @property
    def subject_id(self) -> str: ...
    @property
    def similarity(self) -> float: ...
    @property
    def fmr(self) -> Optional[float]: ...
    @property
    def fpir(self) -> Optional[float]: ...

class SearchFace:
    """A face of the probe photo and its candidates, best first."""

    @property
    def box(self) -> Box: ...
    @property
    def quality_ok(self) -> bool: ...
    @property
    def candidates(self) -> list[Candidate]: ...

class SearchResult:
    """A purpose-bound 1:N search of a photo: candidates for human review."""

    @property
    def faces(self) -> list[SearchFace]: ...
    @property
    def purpose(self) -> str: ...
    @property
    def case(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def eligible_subjects(self) -> int: ...
    @property
    def eligible_templates(self) -> int: ...
    @property
    def threshold(self) -> float: ...
    @property
    def max_fmr(self) -> float: ...
    @property
    def calibration(self) -> str: ...
    @property
    def audit_hash(self) -> str: ...
    @property
    def review_case(self) -> str: ...
    @property
    def authorisation(self) -> Optional[str]: ...
    @property
    def authorisation_pending(self) -> bool: ...
    @property
    def notice(self) -> str: ...
    def to_dict(self) -> dict[str, Any]:
        """The result as `--json` and the HTTP API render it (service::render): plain dicts and lists."""

class SubjectVerification:
    """A photo compared with one enrolled subject under a purpose."""

    @property
    def subject(self) -> str: ...
    @property
    def similarity(self) -> float: ...
    @property
    def same(self) -> bool: ...
    @property
    def threshold(self) -> float: ...
    @property
    def threshold_fmr(self) -> float: ...
    @property
    def score_fmr(self) -> Optional[float]: ...
    @property
    def box(self) -> Box: ...
    @property
    def audit_hash(self) -> str: ...
    def to_dict(self) -> dict[str, Any]:
        """The result as `--json` and the HTTP API render it (service::render): plain dicts and lists."""

class ErasureReceipt:
    """What an erasure (or a withdrawal) removed: the receipt to hand over."""

    @property
    def subject(self) -> str: ...
    @property
    def subject_id(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def erased_at(self) -> str: ...
    @property
    def basis_id(self) -> Optional[int]: ...
    @property
    def templates(self) -> int: ...
    @property
    def source_images(self) -> int: ...
    @property
    def kept_images(self) -> int: ...
    @property
    def lawful_bases(self) -> int: ...
    @property
    def subject_key_destroyed(self) -> bool: ...
    @property
    def free_pages_wiped(self) -> bool: ...
    @property
    def wipe_error(self) -> str: ...
    @property
    def search_index_removed(self) -> int: ...
    @property
    def audit_seq(self) -> int: ...
    @property
    def audit_hash(self) -> str: ...
    def to_dict(self) -> dict[str, Any]:
        """The result as `--json` and the HTTP API render it (service::render): plain dicts and lists."""

class ExpiryReport:
    """The subjects a retention run erased (or would erase, dry_run)."""

    @property
    def as_of(self) -> str: ...
    @property
    def dry_run(self) -> bool: ...
    @property
    def erased(self) -> list[ErasureReceipt]: ...
    @property
    def bases_lapsed(self) -> list[ErasureReceipt]: ...
    @property
    def audit_hash(self) -> str: ...
    def to_dict(self) -> dict[str, Any]:
        """The result as `--json` and the HTTP API render it (service::render): plain dicts and lists."""

class Optout:
    """An entry added to the opt-out registry."""

    @property
    def optout(self) -> str: ...
    @property
    def enrolled_match_count(self) -> int: ...
    @property
    def audit_hash(self) -> str: ...
    def to_dict(self) -> dict[str, Any]:
        """The result as `--json` and the HTTP API render it (service::render): plain dicts and lists."""

class AuditReport:
    """The check of the audit chain's hashes and links."""

    @property
    def ok(self) -> bool: ...
    @property
    def entries(self) -> int: ...
    @property
    def head(self) -> str: ...
    @property
    def first_bad_seq(self) -> int: ...
    @property
    def problem(self) -> str: ...
    @property
    def message(self) -> str: ...
    def to_dict(self) -> dict[str, Any]:
        """The result as `--json` and the HTTP API render it (service::render): plain dicts and lists."""

class Vault:
    """A handle on a vault: its use cases under the vault's policy, acting as one caller (actor, role)."""

    def __init__(
        self, path: Union[str, os.PathLike[str]], actor: Optional[str] = None, role: str = "admin", threads: int = 1
    ) -> None:
        """Opens the vault at path (master key from $FACEVAULT_MASTER_KEY or the vault's key file)."""
    @staticmethod
    def init(
        path: Union[str, os.PathLike[str]], retention_days: float = 365.0, actor: Optional[str] = None, threads: int = 1
    ) -> Vault:
        """Creates a vault at path, records who created it, and returns an admin handle on it."""
    def with_role(self, role: str) -> Vault:
        """Another handle on the same vault: the same actor in another role."""
    def as_actor(self, name: str, role: Optional[str] = None) -> Vault:
        """Another handle on the same vault acting as name (role: this one's by default)."""
    def add_basis(
        self,
        subject: str,
        kind: str,
        reference: str,
        purposes: Union[str, Sequence[str]],
        expires: Optional[str] = None,
    ) -> Basis:
        """Records a lawful basis for a subject (creating the subject when new)."""
    def withdraw_basis(self, basis_id: int) -> ErasureReceipt:
        """Withdraws a basis (e.g. consent): erases what it covered and returns the ErasureReceipt."""
    def enroll(
        self,
        subject: str,
        basis_id: int,
        image: Photo,
        face: Optional[int] = None,
        keep_image: bool = False,
        purpose: Optional[str] = None,
        source: Optional[str] = None,
        supplied_by: Optional[str] = None,
        method: str = "python",
        keep_reference: Optional[bool] = None,
    ) -> Enrollment:
        """Enrolls the one acceptable face of a photo (or face=index) under a basis, all or nothing."""
    def search(
        self,
        image: Photo,
        purpose: str,
        case: str,
        top: Optional[int] = None,
        mode: str = "threshold",
        max_fmr: Optional[float] = None,
        max_fpir: Optional[float] = None,
        authorisation: Optional[str] = None,
    ) -> SearchResult:
        """Searches the faces of a photo among the subjects enrolled for purpose, for case (both required)."""
    def verify(
        self,
        image: Photo,
        subject: str,
        purpose: str,
        case: str,
        max_fmr: Optional[float] = None,
        authorisation: Optional[str] = None,
    ) -> SubjectVerification:
        """Compares a photo's largest face with one enrolled subject, under search policy (purpose and case)."""
    def erase(self, subject: str, reason: str = "erasure request") -> ErasureReceipt:
        """Erases everything held about a subject (reference or vault id) and returns the ErasureReceipt."""
    def expire(self, as_of: Optional[str] = None, dry_run: bool = False) -> ExpiryReport:
        """Erases the subjects whose retention ended by as_of (default now; a future date needs dry_run), and what each expired basis covered when its subject stays under another."""
    def export(
        self, subject: str, include_templates: bool = False, images_dir: Optional[Union[str, os.PathLike[str]]] = None
    ) -> dict[str, Any]:
        """Everything held about a subject (the access export) as a dict; kept photos are written to images_dir."""
    def optout_add(self, image: Photo, face: Optional[int] = None) -> Optout:
        """Adds a face to the opt-out registry: enrollment of a matching face is refused from then on."""
    def review_list(self, status: Optional[str] = None, awaiting: bool = False) -> list[dict[str, Any]]:
        """The review cases this caller may see (status: open or closed; awaiting: those the caller may still decide)."""
    def review_show(self, case: str) -> dict[str, Any]:
        """One review case: candidates, their status, and the decisions the caller may see."""
    def review_decide(self, case: str, candidate: int, decision: str, reason: str) -> dict[str, Any]:
        """Records this caller's decision (confirm, reject or inconclusive, with a reason) on a candidate."""
    def audit_verify(self) -> AuditReport:
        """Checks the audit chain's hashes and links."""
    def close(self) -> None:
        """Releases this handle (the vault closes with its last handle)."""
    def __enter__(self) -> Vault: ...
    def __exit__(self, *args: object) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def role(self) -> str: ...
