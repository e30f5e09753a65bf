"""mypy (strict, pyproject's [tool.mypy]) over the package as it is installed, and bench/.

setuptools maps streams/, schemas/ and validators/ into the import root ``ratifier``
(package-dir in pyproject.toml). mypy knows nothing of package-dir: from the repository root,
``ratifier`` is the folder ratifier/ alone and ``ratifier.streams`` & co. are not found. The strict
editable install (``make dev``) builds a link tree with the real layout, one link per file, under
build/__editable__.ratifier-*/. This script finds that tree through the import system (so the
version in its name never matters), checks that it links to this checkout, puts it first on
mypy's path (MYPYPATH) and runs mypy from the repository root. Errors are printed with the
source paths (streams/processor.py), not the links' (build/__editable__.../ratifier/streams/...).

Usage: .venv/bin/python scripts/typecheck.py [mypy options]    (``make lint`` runs it)
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The folders package-dir maps into ratifier: each must be in the tree, or mypy would not see it.
MAPPED = {"streams": "streams", "schemas": "schemas", "validators": "validators"}


def link_tree() -> Path:
    """The folder holding the installed ``ratifier`` package; exits if it is not this checkout's
    strict editable install (a regular install would be type-checked instead of the sources)."""
    spec = importlib.util.find_spec("ratifier")  # finds without importing (no side effects)
    if spec is None or spec.origin is None:
        sys.exit("typecheck: ratifier is not installed in this Python; run `make dev`")
    package = Path(spec.origin).parent
    for sub, folder in {"": "ratifier", **MAPPED}.items():
        init = package / sub / "__init__.py"
        if init.resolve() != ROOT / folder / "__init__.py":
            sys.exit(
                f"typecheck: {init} is not a link to {ROOT / folder}: ratifier must be installed "
                "from this checkout with `make dev` (a strict editable install)"
            )
    return package.parent


def source_path(line: str) -> str:
    """``line`` with a leading path inside the link tree replaced by the file it links to."""
    path, sep, rest = line.partition(":")
    if not sep or not path.endswith((".py", ".pyi")):
        return line
    real = (ROOT / path).resolve()  # the link's target (hard links, if used, stay as they are)
    if not real.is_relative_to(ROOT):
        return line
    return f"{real.relative_to(ROOT)}{sep}{rest}"


def main(argv: list[str]) -> int:
    tree = link_tree()
    env = {
        **os.environ,
        "MYPYPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("MYPYPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-m", "mypy", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    for line in done.stdout.splitlines():
        print(source_path(line))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
