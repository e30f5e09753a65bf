"""Start and stop a set of Ratifier processes (tally, validators, generator) as subprocesses.

Used by the demo and the end-to-end tests, so both run the very commands users run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import orjson

from ratifier.core.config import ENV_PREFIX, FOREVER, Settings
from ratifier.core.connection import Secret
from ratifier.core.polling import wait_until
from ratifier.core.topics import TopicNames
from ratifier.io.admin import group_member_count
from ratifier.io.readiness import read_status

logger = logging.getLogger(__name__)

SIMULATED = "ratifier.validators.builtin.simulated:SimulatedValidator"


def _render_param(value: object) -> str:
    """A ``--param`` value the CLI parses back to ``value``: it reads values as JSON and keeps
    text that is not JSON as a string, so only strings that would parse as JSON are quoted."""
    if isinstance(value, str):
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return orjson.dumps(value).decode()


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    name: str
    args: tuple[str, ...]  # arguments after `ratifier`
    # Variables for this process alone, e.g. its role's Kafka user on a secured cluster.
    env: tuple[tuple[str, str], ...] = ()

    def group(self, names: TopicNames) -> str:
        """The consumer group this process joins."""
        kind = self.args[0]
        if kind == "tally":
            return names.tally_app_id  # faust's group id is its app id
        if kind == "monitor":
            return names.monitor_group
        if kind == "outcomes":
            return names.outcomes_group
        if kind == "review":
            return names.review_feed_group
        ident = self.args[self.args.index("--id") + 1]
        return names.validator_group(ident) if kind == "validator" else names.generator_group(ident)

    @classmethod
    def tally(cls, name: str = "tally") -> ProcessSpec:
        return cls(name, ("tally", "run"))

    @classmethod
    def validator(
        cls,
        validator_id: str,
        target: str,
        params: Mapping[str, object] | None = None,
        *,
        instance: int = 0,
    ) -> ProcessSpec:
        args = ["validator", "run", target, "--id", validator_id]
        for key, value in (params or {}).items():
            args += ["--param", f"{key}={_render_param(value)}"]
        return cls(f"validator-{validator_id}-{instance}", tuple(args))

    @classmethod
    def monitor(cls, name: str = "monitor") -> ProcessSpec:
        return cls(name, ("monitor", "run"))

    @classmethod
    def outcomes(cls, name: str = "outcomes") -> ProcessSpec:
        return cls(name, ("outcomes", "run"))

    @classmethod
    def review(cls, port: int, tokens_file: Path, name: str = "review") -> ProcessSpec:
        """The reviewer page on ``port``, feeding the review queue from the escalate topic."""
        args = ("review", "serve", "--port", str(port), "--tokens-file", str(tokens_file))
        return cls(name, args)

    @classmethod
    def generator(cls, target: str, generator_id: str = "default") -> ProcessSpec:
        return cls(f"generator-{generator_id}", ("generator", "run", target, "--id", generator_id))


# The settings of docs/security.md a child process needs to connect as this one does.
_SECURITY_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(Settings)
    if f.name.startswith(("kafka_sasl_", "kafka_ssl_", "kafka_security_", "kafka_oauth_"))
    or f.name.startswith(("redis_username", "redis_password", "redis_ssl_", "outcomes_"))
)


def _security_env(settings: Settings) -> dict[str, str]:
    env: dict[str, str] = {}
    for name in _SECURITY_FIELDS:
        value = getattr(settings, name)
        if isinstance(value, Secret):
            value = value.reveal()  # handed to the child's environment, never logged
        if value:
            env[ENV_PREFIX + name.upper()] = str(value)
    return env


@dataclass
class Fleet:
    """Runs processes with the settings' environment; logs go to ``<log_dir>/<name>.log``.

    With ``metrics_port``, each process serves /metrics, /healthz and /readyz on a port of its
    own, counting up from it in start order (``metrics_ports``: name -> port).
    """

    settings_env: Mapping[str, str]
    log_dir: Path
    specs: Sequence[ProcessSpec] = ()
    metrics_port: int = 0
    metrics_ports: dict[str, int] = field(default_factory=dict)
    _procs: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)
    _started_specs: dict[str, ProcessSpec] = field(default_factory=dict)

    @property
    def _started(self) -> list[ProcessSpec]:
        return [self._started_specs[name] for name in self._procs]

    @staticmethod
    def env_for(settings: Settings) -> dict[str, str]:
        return {
            "RATIFIER_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "RATIFIER_REDIS_URL": settings.redis_url,
            "RATIFIER_TOPIC_PREFIX": settings.topic_prefix,
            "RATIFIER_PARTITIONS": str(settings.partitions),
            "RATIFIER_REPLICATION_FACTOR": str(settings.replication_factor),
            "RATIFIER_STATE_DIR": str(settings.state_dir),
            "RATIFIER_HOLD_MS": str(settings.hold_ms),
            "RATIFIER_RETENTION_MS": str(settings.retention_ms),
            "RATIFIER_RETRY_WAIT_MS": str(settings.retry_wait_ms),
            "RATIFIER_FINISHED_HORIZON_MS": (
                FOREVER
                if settings.finished_horizon_ms is None
                else str(settings.finished_horizon_ms)
            ),
            "RATIFIER_TALLY_STORE": settings.tally_store,
            "RATIFIER_TICK_INTERVAL_S": str(settings.tick_interval_s),
            "RATIFIER_TALLY_ENGINE": settings.tally_engine,
            "RATIFIER_COMMIT_INTERVAL_MS": str(settings.commit_interval_ms),
            "RATIFIER_MAX_CANDIDATE_BYTES": str(settings.max_candidate_bytes),
            "RATIFIER_MAX_RECORD_BYTES": str(settings.max_record_bytes),
            "RATIFIER_LOG_LEVEL": settings.log_level,
            **({"RATIFIER_POLICY_DIR": str(settings.policy_dir)} if settings.policy_dir else {}),
            **(
                {"RATIFIER_TALLY_SIGNING_KEY": str(settings.tally_signing_key)}
                if settings.tally_signing_key
                else {}
            ),
            **_security_env(settings),
        }

    async def start(self, *specs: ProcessSpec) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.settings_env, "PYTHONSAFEPATH": "1"}
        for spec in specs or self.specs:
            log = (self.log_dir / f"{spec.name}.log").open("ab")  # closed in stop()
            self._logs.append(log)
            self._started_specs[spec.name] = spec
            # Processes on one host cannot share a metrics port: one each, or none at all.
            own = {
                "RATIFIER_WORKER_ID": self.worker_id(spec),
                "RATIFIER_METRICS_PORT": "0",
                **dict(spec.env),
            }
            if self.metrics_port:
                port = self.metrics_ports.setdefault(
                    spec.name, self.metrics_port + len(self.metrics_ports)
                )
                own["RATIFIER_METRICS_PORT"] = str(port)
            self._procs[spec.name] = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "ratifier",
                *spec.args,
                env={**env, **own},
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
            )
            logger.info("started %s (pid %d)", spec.name, self._procs[spec.name].pid)

    def worker_id(self, spec: ProcessSpec) -> str:
        """The id a process writes in its records' headers and names its readiness file by."""
        return f"{self.settings_env.get('RATIFIER_TOPIC_PREFIX', 'ratifier')}.{spec.name}"

    async def wait_ready(self, settings: Settings, timeout_s: float = 60.0) -> None:
        """Wait until every started process's consumer group is stable with all its members,
        and every tally has restored the state of the partitions it owns.

        Until then a group may still rebalance: work would move between instances (and be
        redelivered), and a short voting window could close before a validator is listening.
        """
        names = TopicNames.from_settings(settings)
        expected = Counter(spec.group(names) for spec in self._started)
        for group, members in expected.items():

            async def joined(group: str = group, members: int = members) -> bool:
                if exited := self.exited():
                    raise RuntimeError(f"processes exited: {exited}; see {self.log_dir}")
                return await group_member_count(settings, group) == members

            await wait_until(joined, timeout_s, f"consumer group {group} with {members} member(s)")
        for name, spec in zip(self._procs, self._started, strict=True):
            if spec.args[0] == "tally":
                await self.wait_tally_ready(settings, name, timeout_s)

    async def wait_tally_ready(self, settings: Settings, name: str, timeout_s: float) -> None:
        """Wait until tally ``name`` (this very process, not an earlier one) says it is ready."""
        process = self._procs[name]
        worker_id = self.worker_id(self._started_specs[name])

        async def ready() -> bool:
            if process.returncode is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {self.log_dir}")
            status = read_status(settings, worker_id)
            return status is not None and status.pid == process.pid and status.ready

        await wait_until(ready, timeout_s, f"{name} ready (partitions assigned, state restored)")

    def pid_of(self, name: str) -> int:
        return int(self._procs[name].pid)

    def running(self) -> set[str]:
        """Names of the processes started and not stopped (some may have exited on their own)."""
        return set(self._procs)

    def exited(self) -> dict[str, int]:
        """Processes that ended on their own, with their exit codes."""
        return {n: p.returncode for n, p in self._procs.items() if p.returncode is not None}

    def spec_of(self, name: str) -> ProcessSpec:
        """The spec ``name`` was started with (to start it again after it ended)."""
        return self._started_specs[name]

    def pause_process(self, name: str) -> None:
        """SIGSTOP ``name``: it keeps its connections but runs no code, heartbeats included."""
        self._procs[name].send_signal(signal.SIGSTOP)

    def resume_process(self, name: str) -> None:
        """SIGCONT ``name`` after :meth:`pause_process`."""
        self._procs[name].send_signal(signal.SIGCONT)

    async def stop_process(self, name: str, timeout_s: float = 15.0) -> None:
        proc = self._procs.pop(name)
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            proc.send_signal(signal.SIGCONT)  # a paused process handles SIGTERM only once resumed
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                logger.warning("%s did not stop in %.0fs; killing it", name, timeout_s)
                proc.kill()
                await proc.wait()

    async def kill_process(self, name: str) -> int:
        """SIGKILL ``name``, as a crash would end it: no clean shutdown, no final commit.

        Returns its exit code (``-SIGKILL``). A process started again under the same name gets a
        fresh entry; its log is appended to the same file.
        """
        proc = self._procs.pop(name)
        if proc.returncode is None:
            proc.kill()
        return await proc.wait()

    async def stop(self) -> None:
        await asyncio.gather(*(self.stop_process(n) for n in list(self._procs)))
        for log in self._logs:
            with contextlib.suppress(OSError):
                log.close()
        self._logs.clear()

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _horizon(horizon_ms: int | None) -> str:
    return FOREVER if horizon_ms is None else str(horizon_ms)
