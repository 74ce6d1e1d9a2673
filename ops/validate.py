"""Offline checks of the deployment files (no Docker engine needed): run in CI.

    python ops/validate.py [--ops-dir ops]

Checks the compose file's structure (PostgreSQL, at least two dispatch processes from the
one image with a failover-ready DATABASE_URL, HAProxy with its configuration), that
HAProxy health-checks every dispatch process on /readyz, that the container file is
multi-stage, non-root, warms the numba cache and health-checks /readyz, and that every
metric the Prometheus rules use is one the service exports. Exits 1 listing what is wrong.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml


def _compose(ops: Path, problems: list[str]) -> list[str]:
    """Problems go to ``problems``; returns the dispatch services' names."""
    try:
        doc: Any = yaml.safe_load((ops / "compose.yml").read_text())
    except (OSError, yaml.YAMLError) as exc:
        problems.append(f"compose.yml: {exc}")
        return []
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
        problems.append("compose.yml: no services mapping")
        return []
    services: dict[str, Any] = doc["services"]
    for name, service in services.items():
        if not isinstance(service, dict) or not ("image" in service or "build" in service):
            problems.append(f"compose.yml: service {name} has neither image nor build")
    postgres = [n for n, s in services.items() if "postgres" in str(s.get("image", ""))]
    if not postgres:
        problems.append("compose.yml: no PostgreSQL service")
    dispatch = [
        n
        for n, s in services.items()
        if isinstance(s, dict) and "DATABASE_URL" in (s.get("environment") or {})
    ]
    if len(dispatch) < 2:
        problems.append("compose.yml: fewer than two dispatch services")
    for name in dispatch:
        service = services[name]
        url = str(service["environment"]["DATABASE_URL"])
        if "target_session_attrs=read-write" not in url:
            problems.append(f"compose.yml: {name}'s DATABASE_URL lacks target_session_attrs")
        if not any(p in url for p in (f"@{h}:" for h in postgres)):
            problems.append(f"compose.yml: {name}'s DATABASE_URL names no PostgreSQL service")
        if "postgres" not in (service.get("depends_on") or {}):
            problems.append(f"compose.yml: {name} does not wait for postgres")
    haproxy = [n for n, s in services.items() if "haproxy" in str(s.get("image", ""))]
    if not haproxy:
        problems.append("compose.yml: no HAProxy service")
    elif not any("haproxy.cfg" in str(v) for v in services[haproxy[0]].get("volumes", [])):
        problems.append("compose.yml: HAProxy does not mount haproxy.cfg")
    for name, service in services.items():
        for volume in service.get("volumes", []) if isinstance(service, dict) else []:
            source = str(volume).split(":", 1)[0]
            if source.startswith(".") and not (ops / source).exists():
                problems.append(f"compose.yml: {name} mounts missing {source}")
    return dispatch


def _haproxy(ops: Path, dispatch: list[str], problems: list[str]) -> None:
    text = (ops / "haproxy.cfg").read_text()
    if not re.search(r"^\s*option httpchk GET /readyz\s*$", text, re.M):
        problems.append("haproxy.cfg: backend does not check /readyz")
    servers = re.findall(r"^\s*server\s+\S+\s+([\w.-]+):\d+\s+.*\bcheck\b", text, re.M)
    for name in dispatch:
        if name not in servers:
            problems.append(f"haproxy.cfg: no checked server for {name}")


def _dockerfile(ops: Path, problems: list[str]) -> None:
    lines = [
        line.strip()
        for line in (ops / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    stages = [line for line in lines if line.upper().startswith("FROM ")]
    if len(stages) < 2:
        problems.append("Dockerfile: not multi-stage")
    final = lines[lines.index(stages[-1]) :] if stages else lines
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        problems.append("Dockerfile: the final stage runs as root")
    if not any(line.upper().startswith("HEALTHCHECK") and "/readyz" in line for line in final):
        problems.append("Dockerfile: no HEALTHCHECK on /readyz")
    if not any(line.upper().startswith("RUN") and "VolunteerIndex()" in line for line in lines):
        problems.append("Dockerfile: the numba cache is not warmed at build")
    if not any("COPY --from=" in line for line in final):
        problems.append("Dockerfile: the final stage copies nothing from the build stage")


def _rules(ops: Path, problems: list[str]) -> None:
    sys.path.insert(0, str(ops.resolve().parent))
    from dispatch.metrics import Metrics

    exported = {
        sample.name for metric in Metrics().registry.collect() for sample in metric.samples
    } | {metric.name for metric in Metrics().registry.collect()}
    doc: Any = yaml.safe_load((ops / "prometheus-rules.yml").read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            for name in re.findall(r"\bdispatch_\w+", rule["expr"]):
                if name not in exported and name.removesuffix("_total") not in exported:
                    problems.append(f"prometheus-rules.yml: {rule['alert']} uses unknown {name}")


def check(ops: Path) -> list[str]:
    problems: list[str] = []
    dispatch = _compose(ops, problems)
    _haproxy(ops, dispatch, problems)
    _dockerfile(ops, problems)
    _rules(ops, problems)
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops-dir", type=Path, default=Path(__file__).resolve().parent)
    problems = check(parser.parse_args().ops_dir)
    for problem in problems:
        sys.stderr.write(f"{problem}\n")
    if not problems:
        sys.stdout.write("ops files: ok\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
