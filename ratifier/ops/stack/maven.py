"""Resolve the Kafka broker's jars from Maven Central into the cache, once per version."""

from __future__ import annotations

import importlib.resources
import logging
import re
import shutil
import subprocess
import time
from pathlib import Path

from ratifier.core.config import Settings
from ratifier.core.errors import JarResolutionFailed
from ratifier.ops.stack.process import file_lock, require_program

log = logging.getLogger(__name__)

# Maven 3.8's default dependency plugin predates the options we rely on; name a version.
_COPY_GOAL = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
_MARKER = ".complete"
_TIMEOUT_S = 900
_INSTALL_HINT = "Run scripts/install-prereqs as root (or: apt-get install maven)."


def kafka_home(settings: Settings) -> Path:
    return settings.cache_dir / f"kafka-{settings.kafka_version}"


def libs_dir(settings: Settings) -> Path:
    return kafka_home(settings) / "libs"


def is_resolved(settings: Settings) -> bool:
    """True when a previous resolution finished: the marker lists every jar and all are present."""
    libs = libs_dir(settings)
    marker = libs / _MARKER
    if not marker.is_file():
        return False
    names = marker.read_text().split()
    return bool(names) and all((libs / name).is_file() for name in names)


def resolve(settings: Settings) -> Path:
    """The folder of broker jars for ``settings.kafka_version``, resolving them if needed."""
    home = kafka_home(settings)
    libs = libs_dir(settings)
    if is_resolved(settings):
        return libs
    with file_lock(settings.cache_dir / f"kafka-{settings.kafka_version}.lock"):
        if is_resolved(settings):  # another process finished while we waited for the lock
            return libs
        mvn = require_program("mvn", _INSTALL_HINT)
        home.mkdir(parents=True, exist_ok=True)
        pom = home / "pom.xml"
        pom.write_bytes(
            importlib.resources.files("ratifier.ops.stack").joinpath("pom.xml").read_bytes()
        )
        # Resolve into a scratch folder and rename at the end: an interrupted run leaves no
        # half-filled libs/ that could pass for a complete one.
        scratch = home / "libs.partial"
        shutil.rmtree(scratch, ignore_errors=True)
        log.info("resolving Kafka %s jars from Maven Central into %s", settings.kafka_version, libs)
        started = time.monotonic()
        _run_maven(mvn, pom, scratch, settings.kafka_version)
        jars = sorted(p.name for p in scratch.glob("*.jar"))
        if not any(name.startswith(f"kafka_2.13-{settings.kafka_version}") for name in jars):
            raise JarResolutionFailed(
                f"Maven finished but {scratch} holds no kafka_2.13-{settings.kafka_version}.jar"
            )
        (scratch / _MARKER).write_text("\n".join(jars) + "\n")
        shutil.rmtree(libs, ignore_errors=True)
        scratch.rename(libs)
        log.info("resolved %d jars in %.1f s", len(jars), time.monotonic() - started)
    return libs


def _run_maven(mvn: str, pom: Path, out_dir: Path, version: str) -> None:
    argv = [
        mvn,
        "--batch-mode",
        "--no-transfer-progress",
        # Re-ask Central about artifacts an earlier failed run recorded as missing.
        "--update-snapshots",
        "-Dstyle.color=never",
        "-f",
        str(pom),
        f"-Dkafka.version={version}",
        _COPY_GOAL,
        "-DincludeScope=runtime",
        f"-DoutputDirectory={out_dir}",
    ]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False, cwd=pom.parent
        )
    except subprocess.TimeoutExpired as exc:
        raise JarResolutionFailed(
            f"Maven did not finish resolving Kafka {version} within {_TIMEOUT_S} s. "
            "Check the network path to Maven Central (a proxy goes in ~/.m2/settings.xml)."
        ) from exc
    if done.returncode != 0:
        tail = "\n".join(_relevant_lines(done.stdout + done.stderr)[-12:])
        raise JarResolutionFailed(
            f"Maven could not resolve the jars of Kafka {version} (exit {done.returncode}).\n"
            f"--- last lines of Maven's output ---\n{tail}\n---\n"
            f"What to do: check that Kafka {version} is published on Maven Central "
            "(RATIFIER_KAFKA_VERSION picks another), that this machine reaches Maven Central "
            "(a proxy goes in ~/.m2/settings.xml), then run `ratifier stack up` again. "
            f"To reproduce by hand: {' '.join(argv)}"
        )


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Maven's generic advice after every failure; the lines before it say what went wrong.
_BOILERPLATE = ("To see the full stack trace", "Re-run Maven", "For more information", "] [Help 1]")


def _relevant_lines(output: str) -> list[str]:
    lines = []
    for raw in output.splitlines():
        line = _ANSI.sub("", raw).rstrip()
        if line.strip("[]INFOERW ").strip("-") == "" or any(b in line for b in _BOILERPLATE):
            continue
        lines.append(line)
    return lines
