"""The type stubs match the module, and everything public has a docstring."""

from __future__ import annotations

import ast
import inspect
import pathlib

import facevault
from facevault import _facevault

PACKAGE_DIR = pathlib.Path(facevault.__file__).parent


def stub_tree(name: str) -> ast.Module:
    return ast.parse((PACKAGE_DIR / name).read_text())


def public(names: object) -> set[str]:
    return {n for n in names if not n.startswith("_")}  # type: ignore[attr-defined]


def stub_classes() -> dict[str, set[str]]:
    classes = {}
    for node in stub_tree("_facevault.pyi").body:
        if isinstance(node, ast.ClassDef):
            members = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AnnAssign)):
                    members.add(item.name if isinstance(item, ast.FunctionDef) else item.target.id)
            classes[node.name] = members
    return classes


def test_package_files_are_installed_beside_the_module() -> None:
    for name in ("__init__.py", "__init__.pyi", "_facevault.pyi", "errors.py", "py.typed"):
        assert (PACKAGE_DIR / name).is_file(), name


def test_stub_classes_are_the_module_classes() -> None:
    module_classes = {n for n, v in vars(_facevault).items() if inspect.isclass(v)}
    assert set(stub_classes()) == module_classes


def test_stub_members_are_the_members_of_each_class() -> None:
    for name, members in stub_classes().items():
        cls = getattr(_facevault, name)
        assert public(members) == public(dir(cls)) - {"__init__"}, name
        if "__enter__" in members:
            assert hasattr(cls, "__enter__") and hasattr(cls, "__exit__")


def test_stub_functions_are_the_module_functions() -> None:
    stubbed = {n.name for n in stub_tree("_facevault.pyi").body if isinstance(n, ast.FunctionDef)}
    compiled = {n for n, v in vars(_facevault).items()
                if callable(v) and not inspect.isclass(v) and not n.startswith("__")}
    assert stubbed == compiled


def test_stub_signatures_name_the_module_arguments() -> None:
    # pybind11 writes each function's signature into its docstring: "name(self: ..., a: ..., b: ... = ...)".
    for cls_node in (n for n in stub_tree("_facevault.pyi").body if isinstance(n, ast.ClassDef)):
        cls = getattr(_facevault, cls_node.name)
        for fn in (i for i in cls_node.body if isinstance(i, ast.FunctionDef)):
            if fn.name.startswith("__") and fn.name != "__init__":
                continue
            if any(isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list):
                continue
            stub_args = [a.arg for a in fn.args.args if a.arg != "self"]
            doc = (getattr(cls, fn.name).__doc__ or "").strip()
            assert compiled_arguments(doc) == stub_args, f"{cls_node.name}.{fn.name}: {doc.splitlines()[0]!r}"


def compiled_arguments(doc: str) -> list[str]:
    """The argument names in the signature line pybind11 puts first in a docstring."""
    line = doc.splitlines()[0]
    inner = line[line.index("(") + 1 : line.rindex(")")]
    args, depth, start = [], 0, 0
    for i, ch in enumerate(inner + ","):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            part = inner[start:i].strip()
            if part:
                args.append(part.split(":")[0].strip())
            start = i + 1
    return [a for a in args if a != "self"]


def test_init_stub_reexports_what_the_package_exports() -> None:
    names = set()
    for node in stub_tree("__init__.pyi").body:
        if isinstance(node, ast.ImportFrom):
            names |= {a.asname or a.name for a in node.names}
    assert names == set(facevault.__all__)
    for name in facevault.__all__:
        assert hasattr(facevault, name), name


def test_every_public_class_and_method_has_a_docstring() -> None:
    assert facevault.__doc__ and _facevault.__doc__
    for name in facevault.__all__:
        obj = getattr(facevault, name)
        assert obj.__doc__, name
        if inspect.isclass(obj):
            for member, value in vars(obj).items():
                if member.startswith("_") and member != "__init__":
                    continue
                assert getattr(value, "__doc__", None), f"{name}.{member}"
