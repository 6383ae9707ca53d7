"""The README is the front door: short, its links lead somewhere, and what it shows works
as printed (the SDK snippet in the venv `make run` builds, the curl, the masking example
under the shipped policy, the commands it names)."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from appliance.auth.rbac import Permission, load_rbac
from appliance.config import SHIPPED_POLICIES
from appliance.privacy.policy import load_privacy_policy
from appliance.privacy.transform import desensitize

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
EXPECTED_DOCS = (
    "api",
    "privacy",
    "portal",
    "audit",
    "vault",
    "finetune",
    "operations",
    "architecture",
)
DEMO_KEY = "sk-app-readme00" + "x" * 43  # what `make run` keeps in the demo key file
DEMO_KEY_ROLES = ["admin"]  # the demo key's user (bootstrap.ensure_demo_key)


def text() -> str:
    return README.read_text(encoding="utf-8")


def documents() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def fenced(source: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", source, flags=re.MULTILINE | re.DOTALL)


def section(source: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", source, re.M | re.S)
    assert match, f"no section '## {title}'"
    return match[1]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# ------------------------------------------------------------------ shape and links


def test_the_readme_is_at_most_150_lines() -> None:
    assert len(text().splitlines()) <= 150


def test_every_relative_link_of_the_readme_and_the_docs_exists() -> None:
    for doc in documents():
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{doc.relative_to(ROOT)} links to {target}, which is missing"


def test_the_readme_leads_to_every_doc() -> None:
    linked = set(re.findall(r"\]\(docs/([a-z-]+)\.md\)", text()))
    assert linked >= set(EXPECTED_DOCS)
    for name in EXPECTED_DOCS:
        assert len((DOCS / f"{name}.md").read_text().splitlines()) > 20, name
    assert "DESIGN.md" not in text()


def makefile_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", makefile, flags=re.MULTILINE))


def test_every_make_target_the_docs_name_exists() -> None:
    targets = makefile_targets() | {"check"}  # `make check`: added beside this change
    named = set()
    for doc in [*documents(), ROOT / "ansible" / "README.md", ROOT / "compose" / "README.md"]:
        body = doc.read_text(encoding="utf-8")
        code = re.findall(r"`([^`\n]+)`", body) + fenced(body, r"\w*")
        for snippet in code:
            named |= set(re.findall(r"(?:^|[\s;&|(])make ([a-z][\w-]*)", snippet, re.M))
    assert named >= {"run", "test"}
    assert named <= targets, f"not in the Makefile: {sorted(named - targets)}"


# ------------------------------------------------------------------ the SDK snippet and curl


def run_extra() -> list[Requirement]:
    return [Requirement(r) for r in pyproject()["project"]["optional-dependencies"]["run"]]


def test_make_run_installs_the_run_extra_that_declares_the_sdk() -> None:
    assert "openai" in {r.name for r in run_extra()}
    makefile = (ROOT / "Makefile").read_text()
    installs = re.findall(r"pip install -q -e '\.\[([a-z,]+)\]'", makefile)
    assert any("run" in extras.split(",") for extras in installs), installs


def test_the_sdk_snippet_imports_only_what_the_run_extra_declares() -> None:
    (snippet,) = fenced(text(), "python")
    declared = {r.name.replace("-", "_") for r in run_extra()}
    imported = set()
    for node in ast.walk(ast.parse(snippet)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    third_party = {name for name in imported if name not in sys.stdlib_module_names}
    assert third_party == {"openai"}
    assert third_party <= declared


class FakeApi(BaseHTTPRequestHandler):
    """Answers a chat completion like the appliance; remembers what it was sent."""

    seen: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append({"path": self.path, "auth": self.headers["Authorization"], "body": body})
        answer = json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hello from tiny"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def fake_api() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (FakeApi,), {"seen": seen}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture()
def checkout(tmp_path: Path) -> Path:
    """A directory laid out like a checkout after `make run`: the demo key file."""
    home = tmp_path / ".appliance-home"
    home.mkdir()
    (home / "demo-api-key").write_text(DEMO_KEY + "\n")
    return tmp_path


def on_port(snippet: str, port: int) -> str:
    assert "127.0.0.1:8000" in snippet
    return snippet.replace("127.0.0.1:8000", f"127.0.0.1:{port}")


def test_the_sdk_snippet_runs_as_printed(checkout: Path) -> None:
    (snippet,) = fenced(text(), "python")
    with fake_api() as (port, seen):
        result = subprocess.run(
            [sys.executable, "-c", on_port(snippet, port)],
            cwd=checkout,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from tiny\n"
    assert seen[0]["path"] == "/v1/chat/completions"
    assert seen[0]["auth"] == f"Bearer {DEMO_KEY}"
    assert seen[0]["body"]["model"] == "tiny"


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl here")
def test_the_curl_runs_as_printed(checkout: Path) -> None:
    (shell,) = [block for block in fenced(text(), "sh") if "curl" in block]
    with fake_api() as (port, seen):
        result = subprocess.run(
            ["bash", "-c", on_port(shell, port)],
            cwd=checkout,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["choices"][0]["message"]["content"] == "hello from tiny"
    assert seen[0]["auth"] == f"Bearer {DEMO_KEY}"
    assert seen[0]["body"]["messages"] == [{"role": "user", "content": "Hello"}]


# ------------------------------------------------------------------ the masking example


def masking_examples(source: str) -> list[tuple[str, str]]:
    sent = re.findall(r"^you send:\s+(.+)$", source, flags=re.MULTILINE)
    seen = re.findall(r"^the model sees:\s+(.+)$", source, flags=re.MULTILINE)
    assert len(sent) == len(seen)
    return list(zip(sent, seen, strict=True))


@pytest.mark.parametrize("doc", ["README.md", "docs/privacy.md"])
def test_the_masking_example_is_what_the_shipped_policy_does(doc: str) -> None:
    examples = masking_examples((ROOT / doc).read_text(encoding="utf-8"))
    assert examples, f"{doc} shows no masking example"
    policy = load_privacy_policy(SHIPPED_POLICIES / "desensitization.yaml")
    actions = policy.actions_for(DEMO_KEY_ROLES, None)
    for sent, shown in examples:
        done = desensitize(sent, actions, hash_key=b"k" * 32, find=policy.find)
        assert done.text == shown.rstrip()
        assert done.applied, "the example shows no personal data"


def test_the_shipped_policy_is_the_one_the_readme_names() -> None:
    assert SHIPPED_POLICIES.resolve() == (ROOT / "policies").resolve()
    assert "policies/desensitization.yaml" in text()


# ------------------------------------------------------------------ the quick start's commands


def readme_command(prefix: str) -> str:
    (line,) = [ln for b in fenced(text(), "sh") for ln in b.splitlines() if prefix in ln]
    return line.split("#")[0].strip()


def test_the_auditor_command_makes_an_account_that_can_read_the_audit(tmp_path: Path) -> None:
    rbac = load_rbac(SHIPPED_POLICIES / "rbac.yaml")
    assert not rbac.allows(["admin"], Permission.AUDIT_READ)
    assert rbac.allows(["auditor"], Permission.AUDIT_READ)

    checkout = tmp_path
    bin_dir = checkout / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "appliance").symlink_to(Path(sys.executable).parent / "appliance")
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}

    def sh(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    init = sh("APPLIANCE_HOME=.appliance-home .venv/bin/appliance init")
    assert init.returncode == 0, init.stderr
    created = sh(readme_command("user create auditor"))
    assert created.returncode == 0, created.stderr
    assert "roles auditor" in created.stdout
    assert len(created.stdout.strip().splitlines()[-1]) >= 12  # the password, last line

    verify = sh(re.search(r"`(APPLIANCE_HOME=\S+ \S+ audit verify)`", text())[1])  # type: ignore[index]
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith("intact:")


def test_the_readme_says_what_audit_verify_checks() -> None:
    paragraph = next(p for p in text().split("\n\n") if "audit verify" in p)
    assert "in the database" in paragraph
    assert "does not read `audit.jsonl`" in paragraph


def test_the_test_section_says_what_make_test_does_to_the_machine() -> None:
    tests = section(text(), "Test it")
    for needed in ("root", "Debian packages", "playbook against this machine", "32 minutes"):
        assert needed in tests, needed
