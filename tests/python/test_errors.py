"""Every status code of the library crosses into Python as its own exception class."""

from __future__ import annotations

import pytest

import facevault
from facevault import _facevault, errors


def test_every_status_code_has_its_exception_class() -> None:
    codes = facevault.status_codes()
    assert len(codes) == 14, codes  # a code added to StatusCode needs its class in errors.py
    assert set(codes) == set(errors.ERRORS_BY_CODE)
    classes = [errors.error_class(c) for c in codes]
    assert len(set(classes)) == len(classes), "two codes share an exception class"
    for cls in classes:
        assert issubclass(cls, facevault.Error) and cls is not facevault.Error
        assert getattr(facevault, cls.__name__) is cls, f"{cls.__name__} is not exported by facevault"


@pytest.mark.parametrize("code", _facevault.status_codes())
def test_a_status_raised_in_cpp_arrives_as_its_class(code: str) -> None:
    with pytest.raises(errors.error_class(code)) as info:
        _facevault._raise_status(code, "what went wrong")
    assert type(info.value) is errors.error_class(code)
    assert info.value.code == code
    assert info.value.message == "what went wrong"
    assert str(info.value) == f"{code}: what went wrong"


def test_an_unknown_code_name_is_an_invalid_argument() -> None:
    with pytest.raises(facevault.InvalidArgument):
        _facevault._raise_status("NO_SUCH_CODE", "x")


def test_errors_are_exceptions_with_code_and_message() -> None:
    e = facevault.NotFound("NOT_FOUND", "no subject 'x'")
    assert isinstance(e, Exception) and isinstance(e, facevault.Error)
    assert (e.code, e.message) == ("NOT_FOUND", "no subject 'x'")
