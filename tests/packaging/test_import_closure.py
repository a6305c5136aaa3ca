"""The agent and the collector are two distributions that never import each other (issue 15).

Each side's import closure is measured in a fresh interpreter that imports every module of the
side (every probe and parser, whatever the OS) and then lists `sys.modules`: the agent's holds
no collector module and no server library, and every third-party module it holds comes from the
agent distribution's declared dependencies; the collector's holds no agent module.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import pytest

# What `devposture-agent` depends on, as its distribution declares it: nothing else may load.
AGENT_PYPROJECT = Path(__file__).parents[2] / "installers" / "python" / "agent" / "pyproject.toml"
AGENT_DISTRIBUTIONS = {"grpcio", "protobuf", "cryptography", "psutil", "watchdog"}
SERVER_LIBRARIES = {
    "starlette", "uvicorn", "jinja2", "prometheus_client", "grpc_health", "grpc_reflection",
    "anyio", "h11", "markupsafe", "psycopg",
}  # fmt: skip

# grpc/__init__.py imports grpc_tools, grpc_health and grpc_reflection when they are installed;
# the development environment has them, the agent's own environment does not. The agent's
# closure is measured as there: they cannot be imported (and an agent module that needs one
# fails to import, which fails the test too).
NOT_IN_THE_AGENT_ENVIRONMENT = ("grpc_tools", "grpc_health", "grpc_reflection")

_CLOSURE = """
import importlib, json, pkgutil, sys
absent, packages = sys.argv[1].split(","), sys.argv[2:]

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in absent:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Absent())
for name in packages:
    package = importlib.import_module(name)
    for info in pkgutil.walk_packages(package.__path__, name + "."):
        if not info.name.endswith(".__main__"):  # runs the CLI
            importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""


def closure(*packages: str, absent: tuple[str, ...] = ()) -> set[str]:
    """Every module loaded by importing all of `packages` and their submodules, with the
    `absent` top-level packages made impossible to import."""
    done = subprocess.run(
        [sys.executable, "-c", _CLOSURE, ",".join(absent), *packages],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return set(json.loads(done.stdout))


def normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def requirement_closure(names: set[str]) -> set[str]:
    """`names` and every distribution they require, as installed here (extras left out)."""
    seen: set[str] = set()
    todo = [normalized(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for requirement in requires(name) or ():
            if "extra ==" in requirement.replace('"', "").replace("'", ""):
                continue
            found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
            if found:
                todo.append(normalized(found.group(0)))
    return seen


def tops(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


@pytest.fixture(scope="module")
def agent_closure() -> set[str]:
    """The agent's modules and what they load, less what the interpreter loads by itself
    at start (site's .pth files, e.g. setuptools' _distutils_hack)."""
    loaded = closure("devposture.agent", absent=NOT_IN_THE_AGENT_ENVIRONMENT)
    return loaded - closure(absent=NOT_IN_THE_AGENT_ENVIRONMENT)


def test_the_agent_distribution_declares_exactly_these_dependencies() -> None:
    declared = tomllib.loads(AGENT_PYPROJECT.read_text(encoding="utf-8"))["project"]
    names = {
        normalized(re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0]) for d in declared["dependencies"]
    }
    assert names == AGENT_DISTRIBUTIONS | {"devposture-common"}


def test_the_agent_imports_no_collector_module(agent_closure: set[str]) -> None:
    assert "devposture.agent.probes.chat_backups" in agent_closure  # it walked the whole agent
    assert "devposture.agent.parsers.windows.netsh_firewall" in agent_closure
    assert not {m for m in agent_closure if m.startswith("devposture.collector")}


def test_the_agent_loads_no_server_library(agent_closure: set[str]) -> None:
    assert not tops(agent_closure) & SERVER_LIBRARIES


def test_every_third_party_module_of_the_agent_is_a_declared_dependency(
    agent_closure: set[str],
) -> None:
    allowed = requirement_closure(AGENT_DISTRIBUTIONS)
    providers = packages_distributions()
    third_party = {
        top for top in tops(agent_closure)
        if top in providers and top != "devposture" and top not in sys.stdlib_module_names
    }  # fmt: skip
    assert {"grpc", "google", "cryptography", "psutil", "watchdog"} <= third_party
    undeclared = {
        top: providers[top] for top in third_party
        if not {normalized(d) for d in providers[top]} & allowed
    }  # fmt: skip
    assert not undeclared, undeclared


def test_the_collector_imports_no_agent_module() -> None:
    loaded = closure("devposture.collector")
    assert "devposture.collector.web.app" in loaded and "starlette" in tops(loaded)
    assert not {m for m in loaded if m.startswith("devposture.agent")}


def test_the_check_can_fail() -> None:
    """Importing a collector module does load server libraries: the closure sees them."""
    loaded = closure("devposture.collector.web")
    assert tops(loaded) & SERVER_LIBRARIES
