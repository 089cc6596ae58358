"""facevault.Vault: the use cases under the vault's policy, as from the CLI and the HTTP API."""

from __future__ import annotations

import datetime
import os
import pathlib
from typing import Iterator

import pytest

import facevault
from conftest import Photos

PURPOSE = "access-control"


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory, engine: facevault.Engine) -> Iterator[facevault.Vault]:
    """A new vault whose master key is a key file (FACEVAULT_MASTER_KEY unset), as admin."""
    saved = os.environ.pop("FACEVAULT_MASTER_KEY", None)
    try:
        v = facevault.Vault.init(tmp_path_factory.mktemp("vault") / "v", actor="pytest")
        yield v
        v.close()
    finally:
        if saved is not None:
            os.environ["FACEVAULT_MASTER_KEY"] = saved


def subjects_found(result: facevault.SearchResult) -> set[str]:
    return {c.subject for f in result.faces for c in f.candidates}


def test_init_creates_a_vault_with_a_key_file(vault: facevault.Vault) -> None:
    assert (pathlib.Path(vault.path) / "master.key").is_file()
    assert (vault.actor, vault.role) == ("pytest", "admin")
    assert repr(vault) == f"Vault({vault.path!r}, actor='pytest', role='admin')"
    with pytest.raises(facevault.AlreadyExists):
        facevault.Vault.init(vault.path)


def test_opening_a_missing_vault_is_not_found(tmp_path: pathlib.Path) -> None:
    with pytest.raises(facevault.NotFound):
        facevault.Vault(tmp_path / "none")


def test_enroll_search_erase_forgets(vault: facevault.Vault, photos: Photos) -> None:
    basis = vault.add_basis("alice", "consent", "form-1", [PURPOSE])
    assert basis.subject == "alice" and basis.subject_created and basis.id > 0
    assert basis.to_dict()["basis"] == basis.id

    enrolled = vault.enroll("alice", basis.id, photos.person, face=photos.face)
    assert enrolled.subject == "alice" and len(enrolled.sha256) == 64 and enrolled.face_id > 0
    assert enrolled.to_dict()["subject"] == "alice"

    investigator = vault.as_actor("ivan", "investigator")
    assert (investigator.actor, investigator.role) == ("ivan", "investigator")
    found = investigator.search(photos.person_again, PURPOSE, "case-7")
    assert "alice" in subjects_found(found), photos.source
    best = max((c for f in found.faces for c in f.candidates), key=lambda c: c.similarity)
    assert best.subject == "alice" and best.similarity >= found.threshold
    assert found.purpose == PURPOSE and found.case == "case-7" and found.eligible_subjects == 1
    assert found.notice.startswith("candidates for human review, not an identification")
    assert found.review_case.startswith("rv_") and found.review_case in found.notice
    assert found.authorisation is None and not found.authorisation_pending
    rendered = found.to_dict()
    assert rendered["notice"] == found.notice and rendered["case"] == "case-7"
    assert rendered["faces"][0]["candidates"][0]["subject"] == "alice"
    assert rendered["faces"][0]["candidates"][0]["confirmed"] is False

    # Two reviewers confirm the candidate; one confirmation is not enough.
    case = vault.as_actor("rita", "reviewer").review_show(found.review_case)
    alice = next(c for c in case["candidates"] if c["subject"] == "alice")
    assert alice["status"] == "pending" and "decisions" not in alice
    with pytest.raises(facevault.PermissionDenied):
        investigator.review_decide(found.review_case, alice["id"], "confirm", "same person")
    vault.as_actor("rita", "reviewer").review_decide(found.review_case, alice["id"], "confirm", "same scar")
    after_one = vault.as_actor("sam", "reviewer").review_show(found.review_case)
    one = next(c for c in after_one["candidates"] if c["id"] == alice["id"])
    assert one["status"] == "pending" and one["decisions_recorded"] == 1 and "decisions" not in one
    decision = vault.as_actor("sam", "reviewer").review_decide(found.review_case, alice["id"], "confirm", "agree")
    assert decision["reviewer"] == "sam" and decision["decision"] == "confirm"
    after_two = vault.as_actor("sam", "reviewer").review_show(found.review_case)
    two = next(c for c in after_two["candidates"] if c["id"] == alice["id"])
    assert two["status"] == "confirmed" and two["confirmed"] is True and len(two["decisions"]) == 2

    exported = vault.with_role("auditor").export("alice")
    assert isinstance(exported, dict) and "alice" in str(exported)

    receipt = vault.with_role("auditor").erase("alice", reason="subject asked")
    assert receipt.subject == "alice" and receipt.reason == "subject asked"
    assert receipt.templates >= 1 and receipt.lawful_bases == 1 and receipt.subject_key_destroyed
    assert receipt.to_dict()["receipt"] == "erasure"

    again = investigator.search(photos.person_again, PURPOSE, "case-7")
    assert "alice" not in subjects_found(again) and again.eligible_subjects == 0
    with pytest.raises(facevault.NotFound):
        vault.with_role("auditor").export("alice")

    report = vault.audit_verify()
    assert report.ok and report.entries >= 6 and report.first_bad_seq == 0
    assert report.to_dict()["ok"] is True


def test_policy_refusals_raise_their_exception_types(vault: facevault.Vault, photos: Photos) -> None:
    bob = vault.add_basis("bob", "consent", "form-2", PURPOSE)  # one purpose may be a string
    carol = vault.add_basis("carol", "consent", "form-3", ["research"])
    # Enrollment needs a lawful basis: none for an unknown subject or an unknown basis id...
    with pytest.raises(facevault.NotFound):
        vault.enroll("nobody", bob.id, photos.person, face=photos.face)
    with pytest.raises(facevault.NotFound):
        vault.enroll("bob", 999_999, photos.person, face=photos.face)
    # ...and the basis must be the subject's own and cover the purpose asked for.
    with pytest.raises(facevault.FailedPrecondition):
        vault.enroll("bob", carol.id, photos.person, face=photos.face)
    with pytest.raises(facevault.FailedPrecondition):
        vault.enroll("carol", carol.id, photos.person, face=photos.face, purpose=PURPOSE)
    # A search needs a purpose and a case reference.
    investigator = vault.with_role("investigator")
    with pytest.raises(facevault.InvalidArgument):
        investigator.search(photos.person, "", "case-1")
    with pytest.raises(facevault.InvalidArgument):
        investigator.search(photos.person, PURPOSE, "")
    # Roles: an investigator may not enroll, an enroller may not search or erase.
    with pytest.raises(facevault.PermissionDenied) as info:
        investigator.enroll("bob", bob.id, photos.person, face=photos.face)
    assert info.value.code == "PERMISSION_DENIED"
    enroller = vault.with_role("enroller")
    with pytest.raises(facevault.PermissionDenied):
        enroller.search(photos.person, PURPOSE, "case-1")
    with pytest.raises(facevault.PermissionDenied):
        enroller.erase("bob")
    # Malformed input.
    with pytest.raises(facevault.InvalidArgument):
        vault.with_role("superuser")
    with pytest.raises(facevault.InvalidArgument):
        vault.add_basis("dave", "because", "x", [PURPOSE])
    with pytest.raises((facevault.CorruptData, facevault.Unsupported)):
        vault.enroll("bob", bob.id, b"not a photo")
    with pytest.raises(TypeError):
        vault.enroll("bob", bob.id, facevault.decode(photos.person))  # pixels: the vault takes photos
    # Every refusal above is in the audit chain, which still verifies.
    assert vault.audit_verify().ok


def test_a_closed_handle_refuses_and_others_keep_working(vault: facevault.Vault) -> None:
    other = vault.with_role("auditor")
    other.close()
    with pytest.raises(facevault.FailedPrecondition):
        other.audit_verify()
    assert vault.with_role("auditor").audit_verify().ok


def test_retention_run_dry_run_reports_without_erasing(vault: facevault.Vault) -> None:
    report = vault.with_role("auditor").expire(as_of="2999-01-01", dry_run=True)
    assert report.dry_run and report.erased and all(r.subject for r in report.erased)
    assert report.to_dict()["dry_run"] is True
    assert all(r.basis_id is None for r in report.erased)


def test_a_retention_run_names_an_expired_basis_whose_subject_stays(vault: facevault.Vault, photos: Photos) -> None:
    # Gina keeps a basis that does not expire: in three days only what the other covered is due.
    today = datetime.datetime.now(datetime.timezone.utc).date()
    vault.add_basis("gina", "consent", "form-g1", [PURPOSE])
    lapsing = vault.add_basis("gina", "consent", "form-g2", ["research"], expires=str(today + datetime.timedelta(days=2)))
    vault.enroll("gina", lapsing.id, photos.person, face=photos.face)
    report = vault.with_role("auditor").expire(as_of=str(today + datetime.timedelta(days=3)), dry_run=True)
    assert "gina" not in [r.subject for r in report.erased]
    assert [(r.subject, r.basis_id) for r in report.bases_lapsed] == [("gina", lapsing.id)]
    assert report.to_dict()["bases_lapsed"][0]["basis_id"] == lapsing.id
    assert vault.export("gina")["templates"], "a dry run erases nothing"
    withdrawn = vault.withdraw_basis(lapsing.id)
    assert withdrawn.basis_id == lapsing.id and withdrawn.templates == 1 and not withdrawn.subject_key_destroyed
    with pytest.raises(facevault.InvalidArgument):
        vault.with_role("auditor").expire(as_of="2999-01-01")  # a future date needs dry_run
    with pytest.raises(facevault.PermissionDenied):
        vault.with_role("investigator").expire(dry_run=True)


def test_an_opt_out_refuses_the_enrollment_of_that_face(vault: facevault.Vault, photos: Photos) -> None:
    # Last in this file: from here on the vault refuses this face.
    basis = vault.add_basis("erin", "consent", "form-5", [PURPOSE])
    entry = vault.with_role("enroller").optout_add(photos.person, face=photos.face)
    assert entry.optout and entry.to_dict()["optout"] == entry.optout
    with pytest.raises(facevault.FailedPrecondition):
        vault.enroll("erin", basis.id, photos.person_again, face=photos.face)
