"""Packaging tests: the Dockerfile, .dockerignore, docker-compose.yml and the installed wheel.

There is no Docker engine where the tests run, so the container is checked otherwise: hadolint
and a compose-spec schema check on the files, and an end-to-end run of the wheel with the
Dockerfile's own CMD and ENV. This module holds the small Dockerfile and .dockerignore readers
those tests share (enough for our Dockerfile, not a full BuildKit parser).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE_FILE = REPO / "docker-compose.yml"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: ``keyword`` upper-cased, ``value`` with continuations joined."""

    keyword: str
    value: str
    stage: int  # index of the FROM that opened its stage (-1 before the first FROM)


def read_dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    """The instructions of ``path``, in order (comments dropped, ``\\`` continuations joined)."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # Docker drops comments even inside continuations
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, value = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), value.strip(), stage))
    return instructions


def stage_of(instructions: list[Instruction], stage: int = -1) -> list[Instruction]:
    """The instructions of one stage (default: the last, i.e. the image that ships)."""
    last = max(i.stage for i in instructions)
    wanted = last + 1 + stage if stage < 0 else stage
    return [i for i in instructions if i.stage == wanted]


def exec_form(value: str) -> list[str]:
    """Parse an exec-form (JSON array of strings) argument; raise ``ValueError`` otherwise."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not exec form (a JSON array): {value!r}") from exc
    if not isinstance(parsed, list) or not all(isinstance(arg, str) for arg in parsed):
        raise ValueError(f"not exec form (a JSON array of strings): {value!r}")
    return parsed


_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def env_of(instructions: list[Instruction], base: Mapping[str, str]) -> dict[str, str]:
    """The environment the ENV instructions build on top of ``base`` (the base image's).

    ``$VAR``/``${VAR}`` expand, as in Docker, against the values from before each instruction.
    """
    env = dict(base)
    for instruction in instructions:
        if instruction.keyword != "ENV":
            continue
        before = dict(env)
        tokens = shlex.split(instruction.value)
        if "=" not in tokens[0]:  # the legacy `ENV KEY value with spaces` form
            tokens = [f"{tokens[0]}={' '.join(tokens[1:])}"]
        for token in tokens:
            key, _, value = token.partition("=")
            env[key] = _expand(value, before)
    return env


def _expand(value: str, env: Mapping[str, str]) -> str:
    return _VARIABLE.sub(lambda m: env.get(m[1] or m[2], ""), value)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regular expression."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i:]:
            end = pattern.index("]", i)
            inner = pattern[i + 1 : end]
            inner = "^" + inner[1:] if inner.startswith("!") else inner
            out, i = out + "[" + inner + "]", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore_admits(relative: str, path: Path = DOCKERIGNORE) -> bool:
    """Whether a file (path relative to the context, with ``/``) reaches the build context.

    As Docker does: the last pattern matching the file or one of its parent directories
    decides, and ``!`` patterns re-admit.
    """
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    admitted = True
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        regex = _glob_regex(pattern)
        if any(regex.fullmatch(candidate) for candidate in candidates):
            admitted = negate
    return admitted


def copy_build_context(stage: list[Instruction], destination: Path) -> None:
    """Lay out what the stage's plain ``COPY`` instructions copy, as ``destination`` (its WORKDIR).

    Sources come from the repository, filtered by .dockerignore, as ``docker build .`` would.
    """
    for instruction in stage:
        if instruction.keyword != "COPY" or "--from" in instruction.value:
            continue
        *sources, target = shlex.split(instruction.value)
        for source in sources:
            src = REPO / source
            files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
            for file in files:
                relative = file.relative_to(REPO).as_posix()
                if not dockerignore_admits(relative):
                    continue
                inner = file.name if file == src else file.relative_to(src).as_posix()
                out = destination / target / inner
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, out)
