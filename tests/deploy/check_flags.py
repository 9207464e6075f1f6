"""Checks that the deploy files speak the CLI of the binary they run: every `--flag` and every
`WARREN_*` variable used by the Containerfile, the Kubernetes manifests and the README's cluster
section must appear in `warren serve --help`. Prints each unknown name with where it is used and
exits 1 when there is any.

Usage: check_flags.py WARREN_BINARY REPO_ROOT
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

FLAG = re.compile(r"--[a-z][a-z0-9-]*")
ENV = re.compile(r"\bWARREN_[A-Z0-9_]+\b")


def known(binary):
    help_text = subprocess.run(
        [binary, "serve", "--help"], check=True, capture_output=True, text=True
    ).stdout
    flags = set(re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)", help_text, re.M))
    flags |= {"--help", "--version"}
    envs = set(re.findall(r"\[env: (WARREN_[A-Z0-9_]+)", help_text))
    return flags, envs


def from_containerfile(path):
    """Flags of the ENTRYPOINT/CMD JSON arrays and names of ENV lines."""
    used = []
    for line in path.read_text().splitlines():
        line = line.strip()
        for word in ("ENTRYPOINT", "CMD"):
            if line.startswith(word + " ["):
                for arg in json.loads(line[len(word) :].strip()):
                    used += [(f, path.name) for f in FLAG.findall(arg.split("=")[0])]
        if line.startswith("ENV "):
            used += [(e, path.name) for e in ENV.findall(line)]
    return used


def containers(doc):
    spec = (doc.get("spec") or {}).get("template", {}).get("spec", {})
    return spec.get("containers", []) + spec.get("initContainers", [])


def from_manifests(directory):
    """Flags in container args/commands; WARREN_* names in env, envFrom sources (ConfigMaps and
    Secrets), and ConfigMap data keys."""
    used = []
    for path in sorted(directory.glob("*.yaml")):
        where = f"{directory.name}/{path.name}"
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            if doc.get("kind") in ("ConfigMap", "Secret"):
                for section in ("data", "stringData"):
                    for key in (doc.get(section) or {}):
                        used += [(e, where) for e in ENV.findall(key)]
            for container in containers(doc):
                for arg in container.get("args", []) + container.get("command", []):
                    flag = str(arg).split("=")[0]
                    if flag.startswith("--"):
                        used += [(f, where) for f in FLAG.findall(flag)]
                for env in container.get("env", []):
                    used += [(e, where) for e in ENV.findall(env["name"])]
    return used


def from_readme(path, heading="## From one node to three"):
    """Flags and variables on `warren serve` command lines of the README's cluster section."""
    text = path.read_text()
    start = text.find(heading)
    if start < 0:
        return [("(missing section)", heading)]
    end = text.find("\n## ", start + len(heading))
    section = text[start : end if end > 0 else len(text)]
    used, command = [], ""
    for line in section.splitlines():
        command = command + " " + line.strip() if command else line.strip()
        if command.endswith("\\"):
            command = command[:-1]
            continue
        if "warren serve" in command or command.startswith("WARREN_"):
            used += [(f, "README.md") for f in FLAG.findall(command.split("warren serve", 1)[-1])]
            used += [(e, "README.md") for e in ENV.findall(command)]
        command = ""
    return used


def main():
    binary, root = sys.argv[1], Path(sys.argv[2])
    flags, envs = known(binary)
    used = from_containerfile(root / "Containerfile")
    used += from_manifests(root / "deploy" / "kubernetes")
    used += from_readme(root / "README.md")
    unknown = sorted(
        {(name, where) for name, where in used if name not in (flags if name.startswith("--") else envs)}
    )
    checked = len({name for name, _ in used})
    if unknown:
        for name, where in unknown:
            print(f"unknown to `warren serve`: {name} (used in {where})")
        sys.exit(1)
    print(f"{checked} flags and variables used by the deploy files are all accepted by warren serve")


if __name__ == "__main__":
    main()
