"""The layering of ``appliance``: the contracts in pyproject.toml ([tool.importlinter]) hold,
no module is part of an import cycle, and the contracts do refuse what they forbid.

``make lint`` runs the same contracts (``lint-imports``); here they also run with the tests.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from importlinter import configuration
from importlinter.application.use_cases import read_user_options
from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.independence import IndependenceContract
from importlinter.domain.contract import Contract

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
CONTRACT_TYPES: dict[str, type[Contract]] = {
    "independence": IndependenceContract,
    "forbidden": ForbiddenContract,
    "acyclic_siblings": AcyclicSiblingsContract,
}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    """appliance's import graph, every import counted (lazy and TYPE_CHECKING ones too)."""
    return grimp.build_graph("appliance", cache_dir=None)


def contracts() -> dict[str, Contract]:
    """pyproject.toml's contracts by id, as lint-imports reads them."""
    configuration.configure()
    options = read_user_options(str(PYPROJECT))
    made = {}
    for contract_options in options.contracts_options:
        kind = CONTRACT_TYPES[contract_options["type"]]
        made[contract_options["id"]] = kind(
            name=contract_options["name"],
            session_options=options.session_options,
            contract_options=contract_options,
        )
    return made


def test_lint_imports_keeps_every_contract() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo", str(PYPROJECT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


def strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """The import cycles: components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    work: list[tuple[str, list[str]]] = []  # the depth-first path: (module, imports left)

    def enter(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        work.append((module, sorted(graph.find_modules_directly_imported_by(module))))

    for start in sorted(graph.modules):
        if start in index:
            continue
        enter(start)
        while work:
            module, pending = work[-1]
            if pending:
                imported = pending.pop()
                if imported not in index:
                    enter(imported)
                elif imported in on_stack:
                    low[module] = min(low[module], index[imported])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_is_part_of_an_import_cycle(graph: grimp.ImportGraph) -> None:
    assert strongly_connected(graph) == []


def test_a_cycle_is_found(graph: grimp.ImportGraph) -> None:
    cyclic = copy.deepcopy(graph)
    cyclic.add_import(importer="appliance.vault.rotation", imported="appliance.vault.store")
    assert strongly_connected(cyclic) == [["appliance.vault.rotation", "appliance.vault.store"]]


@pytest.mark.parametrize(
    ("contract_id", "importer", "imported"),
    [
        # What the limiter and the upstream client once did.
        ("domain-below-entry-points", "appliance.limits.limiter", "appliance.api.metrics"),
        ("domain-below-entry-points", "appliance.audit.service", "appliance.tasks"),
        ("domain-below-entry-points", "appliance.vault.store", "appliance.cli"),
        ("apps-independent", "appliance.portal.views", "appliance.api.context"),
        # Through another package: the API imports the upstream registry.
        ("apps-independent", "appliance.upstream.registry", "appliance.portal.context"),
        ("acyclic-packages", "appliance.vault.rotation", "appliance.vault.store"),
        ("acyclic-packages", "appliance.auth.tokens", "appliance.services"),
    ],
)
def test_each_contract_refuses_what_it_forbids(
    graph: grimp.ImportGraph, contract_id: str, importer: str, imported: str
) -> None:
    contract = contracts()[contract_id]
    assert _kept(contract, graph)
    broken = copy.deepcopy(graph)
    broken.add_import(importer=importer, imported=imported)
    assert not _kept(contract, broken)


def _kept(contract: Contract, graph: grimp.ImportGraph) -> bool:
    return contract.check(copy.deepcopy(graph), verbose=False).kept  # a check may squash
