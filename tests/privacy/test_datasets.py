"""Fine-tune datasets desensitized in batch: chat and prompt records, counts per type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.errors import InvalidRequest
from appliance.privacy.datasets import DatasetScanner
from appliance.privacy.policy import load_privacy_policy
from tests.privacy.test_transform import scan

POLICY = """
actions:
  CN_PHONE: pseudonymize
  EMAIL: mask
  CN_RESIDENT_ID: block
"""


@pytest.fixture()
def scanner(tmp_path: Path) -> DatasetScanner:
    path = tmp_path / "desensitization.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return DatasetScanner(load_privacy_policy(path), hash_key=None)


def test_chat_records_keep_their_shape_and_one_mapping_per_record(
    scanner: DatasetScanner,
) -> None:
    record = {
        "messages": [
            {"role": "system", "content": "客服助手"},
            {"role": "user", "content": "我的号码13812345678，邮箱 li@corp.cn"},
            {"role": "assistant", "content": [{"type": "text", "text": "已记录13812345678"}]},
        ],
        "weight": 1,
    }
    out = scanner.record(1, record)
    assert out is not None
    assert out["weight"] == 1 and out["messages"][0] == record["messages"][0]
    assert out["messages"][1]["content"] == "我的号码[CN_PHONE_1]，邮箱 l*@corp.cn"
    assert out["messages"][2]["content"][0]["text"] == "已记录[CN_PHONE_1]"
    assert "13812345678" in json.dumps(record, ensure_ascii=False)  # the input is untouched
    prompt = scanner.record(2, {"prompt": "call 13912345678", "completion": "ok 13912345678"})
    assert prompt == {"prompt": "call [CN_PHONE_1]", "completion": "ok [CN_PHONE_1]"}
    assert scanner.report.found == {"CN_PHONE": 4, "EMAIL": 1}


def test_a_record_with_a_blocked_type_is_dropped_and_counted(scanner: DatasetScanner) -> None:
    record = {"messages": [{"role": "user", "content": "身份证11010519491231002X"}]}
    assert scanner.record(1, record) is None
    assert scanner.report.dropped == 1 and scanner.report.found == {"CN_RESIDENT_ID": 1}
    assert scanner.report.summary() == (
        "1 records, 1 dropped (blocked types); personal data found: CN_RESIDENT_ID 1"
    )


@pytest.mark.parametrize(
    ("record", "error"),
    [
        ({"messages": ["hi"]}, r"line 7: messages\[0\] must be an object with content"),
        ({"messages": [{"role": "user", "content": 5}]}, r"messages\[0\].content must be text"),
        ({"other": 1}, r'line 7: expected an object with a string "text", "messages"'),
        ([1, 2], r'line 7: expected an object with a string "text"'),
    ],
)
def test_malformed_records_name_their_line(
    scanner: DatasetScanner, record: object, error: str
) -> None:
    with pytest.raises(InvalidRequest, match=error):
        scanner.record(7, record)


def test_the_cli_desensitizes_a_training_file(tmp_path: Path) -> None:
    source, out = tmp_path / "train.jsonl", tmp_path / "clean.jsonl"
    records = [
        {"messages": [{"role": "user", "content": "电话13812345678"}]},
        {"prompt": "SSN 123-45-6789", "completion": "noted"},
        {"text": "mail a.b@corp.cn"},
    ]
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    done = scan(str(source), "--out", str(out), home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "3 records, 0 dropped" in done.stderr and "CN_PHONE 1, EMAIL 1, US_SSN 1" in done.stderr
    chat, prompt, text = (json.loads(line) for line in out.read_text().splitlines())
    assert chat == {"messages": [{"role": "user", "content": "电话[CN_PHONE_1]"}]}
    assert prompt == {"prompt": "SSN [US_SSN]", "completion": "noted"}
    assert text["text"] == "mail [EMAIL_1]" and text["findings"][0]["type"] == "EMAIL"


def test_names_and_addresses_in_training_records_and_scan_lines() -> None:
    """The shipped policy pseudonymizes PERSON and ADDRESS in fine-tune records (one mapping
    per record, so a name repeated in the answer keeps its placeholder) and in scan lines."""
    shipped = Path(__file__).parents[2] / "policies" / "desensitization.yaml"
    scanner = DatasetScanner(load_privacy_policy(shipped), hash_key=None)
    record = {
        "messages": [
            {"role": "user", "content": "患者张伟，住址：上海市浦东新区张江路88号3幢2单元501室"},
            {"role": "assistant", "content": "张伟先生您好，已记录。"},
        ]
    }
    out = scanner.record(1, record)
    assert out is not None
    user, answer = (m["content"] for m in out["messages"])
    assert "张伟" not in user + answer and "张江路" not in user
    assert user == "患者[PERSON_1]，住址：[ADDRESS_1]"
    assert answer == "[PERSON_1]先生您好，已记录。"
    line = scanner.record(2, {"text": "Dear Mary Johnson, your parcel to 350 Fifth Avenue."})
    assert line is not None
    assert [f["type"] for f in line["findings"]] == ["PERSON", "ADDRESS"]
    assert line["text"] == "Dear [PERSON_1], your parcel to [ADDRESS_1]."
