"""Per-function bundles: each handler's code asset holds its own import closure and its group's requirements, stays
within its size budget, and imports in a fresh interpreter with nothing but itself and the runtime's boto3."""

import errno
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from stacks.constructs import functions
from tests.conftest import REPO_ROOT

def cold_start_benchmark():
    spec = importlib.util.spec_from_file_location("cold_start", REPO_ROOT / "benchmarks/cold_start.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def handler_modules() -> list[str]:
    """The module of every handler the synthesized app deploys."""
    modules = sorted({handler.rsplit(".", 1)[0] for handler in cold_start_benchmark().deployed_handlers()})
    assert {"lambdas.drift.handler", "lambdas.approval.handlers", "lambdas.pipeline.handlers"} <= set(modules)
    return modules


def test_only_the_monitors_bundles_carry_numpy_and_only_drifts_scipy(handler_modules):
    """The drift check carries numpy and scipy; the quality check numpy alone (its bootstrap and training's metrics;
    it reads files with lambdas/shared/capture_files.py, not the drift engine's readers): every other function keeps
    the small base bundle."""
    monitors = {"lambdas.drift.handler", "lambdas.quality.handler"}
    assert monitors <= set(handler_modules)
    for module in handler_modules:
        requirements = functions._bundle(module).requirements.read_text()
        assert ("numpy" in requirements) == (module in monitors), module
        assert ("scipy" in requirements) == (module == "lambdas.drift.handler"), module
    assert not [f for f in functions._bundle("lambdas.quality.handler").files if f.startswith("lambdas/drift/")]


def test_a_bundle_holds_the_first_party_modules_its_handler_imports_and_no_other():
    approval = functions._bundle("lambdas.approval.rotation").files
    assert "lambdas/approval/rotation.py" in approval and "lambdas/approval/tokens.py" in approval
    assert not [f for f in approval if f.startswith(("lambdas/drift/", "lambdas/pipeline/", "lambdas/runs/"))]
    drift = functions._bundle("lambdas.drift.handler").files
    assert {"lambdas/drift/engine.py", "lambdas/drift/capture.py", "pipelines/spec.py", "pipelines/__init__.py"} <= set(drift)
    assert not [f for f in drift if f.startswith("lambdas/approval/")]


def test_the_closure_follows_imports_inside_functions_and_relative_ones(tmp_path, monkeypatch):
    package = tmp_path / "lambdas" / "demo"
    package.mkdir(parents=True)
    for name in ("lambdas/__init__.py", "lambdas/demo/__init__.py", "lambdas/demo/helper.py", "lambdas/demo/lazy.py"):
        (tmp_path / name).write_text("")
    (package / "handler.py").write_text("from . import helper\n\ndef handle():\n    from lambdas.demo import lazy\n")
    monkeypatch.setattr(functions, "REPO_ROOT", tmp_path)
    assert functions.import_closure("lambdas.demo.handler") == (
        "lambdas/__init__.py", "lambdas/demo/__init__.py", "lambdas/demo/handler.py", "lambdas/demo/helper.py",
        "lambdas/demo/lazy.py")


def test_vendored_libraries_no_kept_binary_loads_are_pruned(tmp_path):
    package, libraries = tmp_path / "pkg", tmp_path / "pkg.libs"
    package.mkdir(), libraries.mkdir()
    (package / "_ext.so").write_bytes(b"\x7fELF\0libblas-1.so\0")
    (libraries / "libblas-1.so").write_bytes(b"\x7fELF\0libgfortran-2.so\0")
    (libraries / "libgfortran-2.so").write_bytes(b"\x7fELF")
    (libraries / "libunused-3.so").write_bytes(b"\x7fELF")
    functions.prune_unlinked_libraries(list(package.glob("*.so")), list(libraries.iterdir()))
    assert sorted(p.name for p in libraries.iterdir()) == ["libblas-1.so", "libgfortran-2.so"]


def test_pyarrow_keeps_the_readers_modules_and_the_one_copy_of_each_library_they_link(tmp_path):
    package = tmp_path / "pyarrow"
    (package / "include").mkdir(parents=True)
    for module in ("lib", "_compute", "_csv", "_json", "_flight", "_parquet", "_dataset"):
        (package / f"{module}.cpython-313-aarch64-linux-gnu.so").write_bytes(
            b"\x7fELF\0libarrow_python.so.2000\0libarrow.so.2000\0" if module == "lib" else
            b"\x7fELF\0libarrow_flight.so.2000\0" if module == "_flight" else b"\x7fELF\0libarrow.so.2000\0")
    for library in ("libarrow.so.2000", "libarrow_flight.so.2000", "libparquet.so.2000"):
        (package / library).write_bytes(b"\x7fELF")
    for copy in ("libarrow_python.so", "libarrow_python.so.2000", "libarrow_python.so.2000.0.0"):
        (package / copy).write_bytes(b"\x7fELF\0libarrow.so.2000\0")
    (package / "table.pxi").write_text("cdef")
    functions.prune_pyarrow(package)
    assert sorted(p.name for p in package.iterdir()) == [
        "_compute.cpython-313-aarch64-linux-gnu.so", "_csv.cpython-313-aarch64-linux-gnu.so",
        "_json.cpython-313-aarch64-linux-gnu.so", "lib.cpython-313-aarch64-linux-gnu.so", "libarrow.so.2000",
        "libarrow_python.so.2000"]


@pytest.mark.slow
def test_each_deployed_bundle_stays_within_its_budget(handler_modules):
    for module in handler_modules:
        bundle = functions._bundle(module)
        built = bundle.build()  # arm64 wheels for the runtime's Python, as deployed
        size = sum(p.stat().st_size for p in built.rglob("*") if p.is_file()) / 1e6
        assert size < bundle.budget_mb, f"{module}: {size:.1f} MB unzipped, budget {bundle.budget_mb} MB"
        assert (built / module.replace(".", "/")).with_suffix(".py").exists()
        assert not (built / "botocore").exists() and not (built / "boto3").exists()  # the runtime provides them
        if functions.bytecode_compiler(functions.runtime_version()):  # a CPython 3.13 here: bytecode ships with it
            assert list((built / module.replace(".", "/")).parent.glob(f"__pycache__/{module.split('.')[-1]}.cpython-313.pyc"))


@pytest.mark.slow
def test_bundles_and_staged_assets_link_their_groups_compiled_dependencies_instead_of_copying_them(tmp_path):
    """The drift bundle is 230 MB of numpy, scipy and pyarrow: copied into each bundle built and each cdk.out staged,
    a fresh clone's `make test` wrote gigabytes (and once filled the disk CI shares). The dependencies are compiled
    once in their cache; bundles and assets link them, and carry their own first-party files and bytecode."""
    bundle = functions._bundle("lambdas.drift.handler")
    built = bundle.build()
    cache = functions.install_dependencies(bundle.requirements)
    staged = tmp_path / "asset"
    bundle.write(staged)
    for relative in ("numpy/__init__.py", "aws_lambda_powertools/__init__.py"):
        assert (built / relative).stat().st_ino == (cache / relative).stat().st_ino == (staged / relative).stat().st_ino
    if functions.bytecode_compiler(functions.runtime_version()):
        assert list((built / "numpy").glob("__pycache__/__init__.cpython-313.pyc"))
        assert list((staged / "lambdas/drift").glob("__pycache__/handler.cpython-313.pyc"))
    handler = Path("lambdas/drift/handler.py")
    assert (built / handler).read_bytes() == (REPO_ROOT / handler).read_bytes()
    assert (built / handler).stat().st_ino != (REPO_ROOT / handler).stat().st_ino  # copied: editing the checkout never changes a built bundle
    assert not (staged / ".complete").exists()
    shutil.rmtree(staged)  # a copy, where tmp_path lies on another file system


def test_linking_never_writes_through_a_link_and_copies_where_links_fail(tmp_path, monkeypatch):
    """A bundle's files share their inodes with the dependency cache: putting a file where a linked one lies must
    replace the link, never rewrite the file every other bundle holds."""
    cached, source, target = tmp_path / "cached.py", tmp_path / "source", tmp_path / "target"
    cached.write_text("cached = 1\n")
    (source / "pkg").mkdir(parents=True)
    (source / "pkg/module.py").write_text("new = 1\n")
    (target / "pkg").mkdir(parents=True)
    os.link(cached, target / "pkg/module.py")
    functions.link_tree(source, target)
    assert (target / "pkg/module.py").stat().st_ino == (source / "pkg/module.py").stat().st_ino
    assert cached.read_text() == "cached = 1\n"

    os.unlink(target / "pkg/module.py")
    os.link(cached, target / "pkg/module.py")

    def no_links(*_args):
        raise OSError(errno.EXDEV, "Invalid cross-device link")
    monkeypatch.setattr(functions.os, "link", no_links)
    functions.link_tree(source, target)  # another file system: copies
    assert (target / "pkg/module.py").read_text() == "new = 1\n"
    assert (target / "pkg/module.py").stat().st_ino != (source / "pkg/module.py").stat().st_ino
    assert cached.read_text() == "cached = 1\n"


@pytest.mark.slow
def test_every_handler_imports_from_its_bundle_alone(handler_modules):
    """Built for this machine (same requirements and pruning), each handler module imports in a fresh interpreter
    whose sys.path holds only its bundle and the runtime's boto3: nothing it needs was pruned or left out."""
    benchmark = cold_start_benchmark()
    with tempfile.TemporaryDirectory() as folder:
        runtime = benchmark.runtime_dir(Path(folder))
        for module in handler_modules:
            bundle = benchmark.new_bundle(Path(folder), module)
            assert benchmark.import_seconds(module, [bundle, runtime], bundle) > 0
