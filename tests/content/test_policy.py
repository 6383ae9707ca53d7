"""content.yaml is validated once: every error names the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.content.policy import expand, load_content_policy, read_term_list
from appliance.errors import PolicyError

GOOD = """\
version: 1
categories:
  - name: gambling
    terms: [online casino]
    action: {input: block, output: mask}
"""


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        (GOOD + "  - name: gambling\n    terms: [x]\n", 6, "defined twice"),
        (GOOD.replace("block", "deny"), 5, "input"),
        (GOOD + "    colour: red\n", 6, "colour"),
        (GOOD + "    regexes: ['(unclosed']\n", 6, "not a valid regex"),
        (GOOD + "    patterns: ['{a|{b}}']\n", 6, "pattern"),
        (GOOD + "    terms_files: [x.txt]\n", 6, "terms_files"),
        (GOOD.replace("[online casino]", "['?!']"), 4, "no letters"),
        (GOOD + "overrides:\n  roles:\n    auditor:\n      gamble: {input: flag}\n", 9, "gamble"),
        (GOOD.replace("name: gambling", "name: Gambling"), 3, "name"),
        ("- a list\n", 1, "mapping"),
    ],
)
def test_an_error_names_its_line(tmp_path: Path, text: str, line: int, says: str) -> None:
    path = tmp_path / "content.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as error:
        load_content_policy(path)
    assert f"{path}:{line}:" in error.value.message and says in error.value.message


def test_a_term_files_bad_line_is_named_in_that_file(tmp_path: Path) -> None:
    (tmp_path / "terms.txt").write_text("# comment\nfine term\n\n...\n", encoding="utf-8")
    path = tmp_path / "content.yaml"
    path.write_text(GOOD + "    term_files: [terms.txt]\n", encoding="utf-8")
    with pytest.raises(PolicyError) as error:
        load_content_policy(path)
    assert f"{tmp_path / 'terms.txt'}:4:" in error.value.message
    path.write_text(GOOD + "    term_files: [missing.txt]\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"missing\.txt: cannot be read"):
        load_content_policy(path)


def test_patterns_expand_every_alternative() -> None:
    assert sorted(expand("{ignore|skip} {all |}rules")) == [
        "ignore all rules", "ignore rules", "skip all rules", "skip rules",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="expands to"):
        list(expand("{a|b|c|d|e|f|g|h|i|j}" * 6))


def test_a_term_list_import_reports_duplicates_and_invalid_lines() -> None:
    terms, duplicates, invalid = read_term_list(
        "online casino\nOnline  Casino\n网络赌博\n網絡賭博\n,,,\n" + "x" * 600 + "\nsports,bet\n"
    )
    assert terms == ["online casino", "网络赌博", "sports"]
    assert duplicates == [(2, "Online  Casino"), (4, "網絡賭博")]
    assert [n for n, _ in invalid] == [5, 6]
