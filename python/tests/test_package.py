"""The package as a user gets it: it compiles, keeps to Python 3.9 syntax, installs with pip into a fresh venv,
builds into a wheel offline, and imports from there. Needs no server."""

from __future__ import annotations

import ast
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from tests.support import PACKAGE

# The interpreter the venvs are made from: Debian's, whose setuptools and wheel come from apt (python3-venv,
# python3-setuptools, python3-wheel in scripts/install-host-packages.sh), as a user without network has them.
BASE = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
WHEELS = "/usr/share/python-wheels"
SOURCES = sorted(glob.glob(os.path.join(PACKAGE, "mags", "*.py")))


def run(*args: str, cwd: "str | None" = None) -> str:
    out = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out.stdout


class SourceTest(unittest.TestCase):
    def test_it_compiles(self) -> None:
        run(sys.executable, "-m", "compileall", "-q", os.path.join(PACKAGE, "mags"), os.path.join(PACKAGE, "tests"))

    def test_python_3_9_can_run_it(self) -> None:
        """No syntax newer than 3.9 (match, except*, ...), and annotations stay strings, so `X | Y` or `list[str]`
        in one would not break 3.9 at import; the contract test evaluates them, so none may be there either."""
        for path in SOURCES:
            with open(path, encoding="utf-8") as f:
                src = f.read()
            tree = ast.parse(src, path, feature_version=(3, 9))
            self.assertTrue(
                any(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in tree.body) or not src.strip(),
                f"{path} must start with `from __future__ import annotations`",
            )
            for node in ast.walk(tree):
                self.assertNotIsInstance(node, ast.Match, f"{path}: match needs Python 3.10")
                annotation = getattr(node, "annotation", None) or getattr(node, "returns", None)
                if annotation is not None:
                    for part in ast.walk(annotation):
                        bad = isinstance(part, ast.BinOp) and isinstance(part.op, ast.BitOr)
                        self.assertFalse(bad, f"{path}:{node.lineno}: `X | Y` in an annotation needs Python 3.10")
                        if isinstance(part, ast.Subscript) and isinstance(part.value, ast.Name):
                            self.assertNotIn(
                                part.value.id, ("list", "dict", "tuple", "set"),
                                f"{path}:{node.lineno}: {part.value.id}[...] needs Python 3.9 at runtime; use typing",
                            )

    def test_standard_library_only(self) -> None:
        allowed = set(sys.stdlib_module_names) | {"mags"}
        for path in SOURCES:
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module or ""]
                else:
                    continue
                for name in names:
                    self.assertIn(name.split(".")[0], allowed, f"{path} imports {name}, which is not the standard library")

    def test_py_typed_is_shipped(self) -> None:
        self.assertTrue(os.path.exists(os.path.join(PACKAGE, "mags", "py.typed")))


class InstallTest(unittest.TestCase):
    """pip offline: nothing but the package itself and the setuptools already there may be used."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="mags-py-install-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        # A copy, so that building leaves no build/ or egg-info in the checkout.
        self.src = os.path.join(self.tmp, "python")
        shutil.copytree(PACKAGE, self.src, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info", "dist"))
        self.env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")

    def venv(self, name: str) -> str:
        path = os.path.join(self.tmp, name)
        # The system's site-packages lend the build its setuptools and wheel (nothing can be downloaded); the
        # package itself goes into the venv's own site-packages.
        run(BASE, "-m", "venv", "--system-site-packages", path)
        py = os.path.join(path, "bin", "python")
        probe = subprocess.run([py, "-c", "import setuptools, wheel"], capture_output=True, text=True)
        self.assertEqual(probe.returncode, 0, f"{BASE} needs setuptools and wheel (apt: python3-setuptools python3-wheel): {probe.stderr}")
        return py

    def check_import(self, py: str) -> None:
        out = run(
            py,
            "-c",
            "import mags, os, json; from mags import Mags, AsyncMags, MagsError; from mags.types import JobStatus;"
            "print(json.dumps([mags.__version__, os.path.dirname(mags.__file__),"
            " os.path.exists(os.path.join(os.path.dirname(mags.__file__), 'py.typed')),"
            " Mags(api_token='t', api_url='http://127.0.0.1:1').api_url]))",
            cwd=self.tmp,
        )
        import json

        version, where, typed, url = json.loads(out)
        self.assertEqual(version, "0.1.0")
        self.assertIn("site-packages", where, "imported from the venv, not the checkout")
        self.assertTrue(typed, "py.typed is installed")
        self.assertEqual(url, "http://127.0.0.1:1")

    def test_pip_install_of_the_directory_into_a_fresh_venv(self) -> None:
        """Exactly `pip install ./python`, build isolation and all, in a venv without system packages. Offline, the
        build's setuptools and wheel come from Debian's wheel directory (python3-setuptools-whl,
        python3-wheel-whl) through PIP_FIND_LINKS instead of an index."""
        path = os.path.join(self.tmp, "venv-dir")
        run(BASE, "-m", "venv", path)
        py = os.path.join(path, "bin", "python")
        env = dict(self.env, PIP_FIND_LINKS=WHEELS)
        out = subprocess.run(
            [py, "-m", "pip", "install", "./python"], capture_output=True, text=True, timeout=600, env=env, cwd=self.tmp
        )
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.check_import(py)
        show = run(py, "-m", "pip", "show", "magpie-mags")
        self.assertIn("Name: magpie-mags", show)

    def test_pip_install_without_build_isolation(self) -> None:
        py = self.venv("venv-noiso")
        out = subprocess.run(
            [py, "-m", "pip", "install", "--no-build-isolation", "./python"],
            capture_output=True, text=True, timeout=600, env=self.env, cwd=self.tmp,
        )
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.check_import(py)

    def test_a_wheel_builds_offline_and_installs(self) -> None:
        builder = self.venv("venv-build")
        dist = os.path.join(self.tmp, "dist")
        out = subprocess.run(
            [builder, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, self.src],
            capture_output=True, text=True, timeout=600, env=self.env, cwd=self.tmp,
        )
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        wheels = glob.glob(os.path.join(dist, "magpie_mags-0.1.0-py3-none-any.whl"))
        self.assertEqual(len(wheels), 1, os.listdir(dist))
        import zipfile

        names = set(zipfile.ZipFile(wheels[0]).namelist())
        self.assertTrue({"mags/__init__.py", "mags/client.py", "mags/py.typed"} <= names, names)
        self.assertFalse(any(n.startswith("tests/") for n in names), "the tests are not shipped")
        py = self.venv("venv-wheel")
        out = subprocess.run(
            [py, "-m", "pip", "install", wheels[0]], capture_output=True, text=True, timeout=600, env=self.env
        )
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.check_import(py)


if __name__ == "__main__":
    unittest.main()
