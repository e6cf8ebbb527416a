"""`phi4 ingest --schema chat|pairs|problems`: the published formats in, one schema out, bad rows named."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import BENCHMARKS

from phi4cli.errors import Phi4Error
from phi4cli.io import read_table
from phi4cli.io.schemas import (
    CHAT_SCHEMA,
    PAIRS_SCHEMA,
    PROBLEMS_SCHEMA,
    BadRow,
    chat_row,
    pairs_row,
    require_schema,
)


def write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def rows_of(path) -> list[dict]:
    return read_table([str(path)]).to_pylist()


CHAT_ROWS = [
    # OpenAI style, content as a string and as text parts
    {
        "id": "o1",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]},
        ],
        "lang": "en",
    },
    # ShareGPT
    {"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]},
    # prompt/response
    {"prompt": "Name a colour.", "response": "Blue."},
]


def test_chat_formats_to_one_schema(phi4, tmp_path):
    write_jsonl(tmp_path / "chat.jsonl", CHAT_ROWS)
    phi4("ingest", "chat.jsonl", "--schema", "chat", "-o", "chat")
    table = read_table([str(tmp_path / "chat")])
    assert table.schema.equals(CHAT_SCHEMA)
    rows = table.to_pylist()
    assert rows[0]["id"] == "o1" and json.loads(rows[0]["meta"]) == {"lang": "en"}
    assert rows[0]["messages"][2] == {"role": "assistant", "content": "Hello"}
    assert rows[1]["id"] == "chat:1"
    assert rows[1]["messages"] == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    assert rows[2]["messages"] == [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
    ]


def test_chat_custom_fields(phi4, tmp_path):
    write_jsonl(tmp_path / "alpaca.jsonl", [{"instruction": "Say hi", "output": "hi"}])
    phi4(
        "ingest",
        "alpaca.jsonl",
        "--schema",
        "chat",
        "--prompt-field",
        "instruction",
        "--response-field",
        "output",
        "-o",
        "c",
    )
    assert rows_of(tmp_path / "c")[0]["messages"][1] == {"role": "assistant", "content": "hi"}


BAD_CHAT = [
    ({"messages": [{"role": "user", "content": "only a question"}]}, "no assistant turn"),
    (
        {"messages": [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "y"}]},
        "unknown role 'wizard'",
    ),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}]}, "empty content"),
    ({"conversations": [{"from": "robot", "value": "q"}, {"from": "gpt", "value": "a"}]}, "unknown role 'robot'"),
    (
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {}}]},
                {"role": "assistant", "content": "a"},
            ]
        },
        "'image_url' part",
    ),
]


@pytest.mark.parametrize("row,reason", BAD_CHAT)
def test_bad_chat_rows_are_refused_with_their_reason(row, reason):
    with pytest.raises(BadRow, match=re.escape(reason)):
        chat_row(row, "x:0")


def test_a_bad_row_is_one_line_naming_file_and_row(phi4, tmp_path):
    write_jsonl(tmp_path / "c.jsonl", [CHAT_ROWS[2], BAD_CHAT[0][0]])
    result = phi4("ingest", "c.jsonl", "--schema", "chat", "-o", "out", check=False)
    err = result.stderr.decode()
    assert result.returncode != 0 and err.count("\n") == 1, err
    assert err.startswith("phi4: error: c.jsonl:2: 'messages': no assistant turn"), err
    assert not (tmp_path / "out").exists()


def test_bad_rows_go_to_rejected_with_reason(phi4, tmp_path):
    write_jsonl(tmp_path / "c.jsonl", [CHAT_ROWS[2]] + [row for row, _ in BAD_CHAT])
    phi4("ingest", "c.jsonl", "--schema", "chat", "-o", "out", "--rejected", "bad")
    assert len(rows_of(tmp_path / "out")) == 1
    bad = rows_of(tmp_path / "bad")
    assert [r["row"] for r in bad] == [1, 2, 3, 4, 5]
    assert all(reason in r["reason"] for r, (_, reason) in zip(bad, BAD_CHAT))
    assert json.loads(bad[0]["record"]) == BAD_CHAT[0][0]


ULTRAFEEDBACK = {  # the layout of HuggingFaceH4/ultrafeedback_binarized
    "prompt": "What is 2+2?",
    "prompt_id": "abc",
    "chosen": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}],
    "rejected": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "5"}],
    "messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}],
    "score_chosen": 8.0,
    "score_rejected": 2.0,
}


def test_pairs_as_published(phi4, tmp_path):
    rows = [
        {"prompt": "The sky is", "chosen": " blue.", "rejected": " green."},  # TRL standard
        {
            "prompt": [{"role": "user", "content": "Sky colour?"}],  # TRL conversational
            "chosen": [{"role": "assistant", "content": "Blue."}],
            "rejected": [{"role": "assistant", "content": "Green."}],
        },
        ULTRAFEEDBACK,
        {
            "chosen": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
            ],  # implicit prompt
            "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}],
        },
        {
            "id": "t",
            "prompt_ids": [1, 2, 3],
            "chosen_ids": [7],
            "rejected_ids": [9],
            "p_before": 0.5,
        },  # token ids (PTS)
    ]
    write_jsonl(tmp_path / "pairs.jsonl", rows)
    phi4("ingest", "pairs.jsonl", "--schema", "pairs", "-o", "pairs")
    table = read_table([str(tmp_path / "pairs")])
    assert table.schema.equals(PAIRS_SCHEMA)
    out = table.to_pylist()
    assert [json.loads(out[0][k]) for k in ("prompt", "chosen", "rejected")] == ["The sky is", " blue.", " green."]
    assert out[0]["prompt_ids"] == [] and out[0]["chosen_ids"] == []
    assert json.loads(out[1]["chosen"]) == [{"role": "assistant", "content": "Blue."}]
    user = [{"role": "user", "content": "What is 2+2?"}]
    assert json.loads(out[2]["prompt"]) == user
    assert json.loads(out[2]["chosen"]) == [{"role": "assistant", "content": "4"}]
    assert json.loads(out[2]["rejected"]) == [{"role": "assistant", "content": "5"}]
    assert json.loads(out[2]["meta"])["score_chosen"] == 8.0
    assert json.loads(out[3]["prompt"]) == [{"role": "user", "content": "Hi"}]
    assert out[4]["prompt_ids"] == [1, 2, 3] and out[4]["chosen_ids"] == [7] and out[4]["rejected_ids"] == [9]
    assert json.loads(out[4]["meta"]) == {"p_before": 0.5} and out[4]["id"] == "t"


@pytest.mark.parametrize(
    "row,reason",
    [
        ({"prompt": "q", "chosen": "same", "rejected": "same"}, "the same text"),
        ({"prompt": "q", "chosen": "a"}, "no 'rejected' field"),
        ({"prompt": "q", "chosen": "", "rejected": "b"}, "'chosen' is empty"),
        ({"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [2]}, "the same tokens"),
        ({"prompt_ids": [1], "chosen_ids": ["x"], "rejected_ids": [2]}, "not a list of token ids"),
    ],
)
def test_bad_pairs(row, reason):
    with pytest.raises(BadRow, match=re.escape(reason)):
        pairs_row(row, "p:0")


def test_problems_from_real_benchmarks(phi4, tmp_path):
    phi4("ingest", BENCHMARKS / "gsm8k-test.jsonl", "--schema", "problems", "-o", "gsm")
    gsm = rows_of(tmp_path / "gsm")
    assert len(gsm) == 1319 and gsm[0]["answer"] == "18" and gsm[0]["task"] == "gsm8k" and gsm[0]["tests"] == ""
    phi4("ingest", BENCHMARKS / "humaneval.jsonl.gz", "--schema", "problems", "-o", "he")
    he = read_table([str(tmp_path / "he")])
    assert he.schema.equals(PROBLEMS_SCHEMA) and he.num_rows == 164
    first = he.to_pylist()[0]
    assert first["id"] == "HumanEval/0" and first["task"] == "humaneval"
    # the documented program, prompt + solution + tests, passes for the canonical solution
    program = first["prompt"] + first["answer"] + first["tests"]
    assert subprocess.run([sys.executable, "-c", program], check=False, capture_output=True, timeout=60).returncode == 0
    broken = first["prompt"] + "    return not " + first["answer"].strip().splitlines()[-1].split("return ")[-1] + "\n"
    assert (
        subprocess.run(
            [sys.executable, "-c", broken + first["tests"]], check=False, capture_output=True, timeout=60
        ).returncode
        != 0
    )


def test_problems_math_mmlu_and_fields(phi4, tmp_path):
    write_jsonl(
        tmp_path / "math.jsonl",
        [
            {
                "problem": "What is $\\frac{1}{2}+\\frac{1}{2}$?",
                "solution": "We add: $\\boxed{\\frac{2}{2}}$, i.e. $\\boxed{1}$.",
                "level": "Level 1",
            }
        ],
    )
    pq.write_table(
        pa.Table.from_pylist([{"question": "Sky colour?", "choices": ["red", "blue", "green"], "answer": 1}]),
        tmp_path / "mmlu.parquet",
    )
    write_jsonl(tmp_path / "qa.jsonl", [{"q": "Capital of France?", "a": "Paris"}])
    phi4("ingest", "math.jsonl", "--schema", "problems", "-o", "math")
    phi4("ingest", "mmlu.parquet", "--schema", "problems", "-o", "mmlu")
    phi4(
        "ingest",
        "qa.jsonl",
        "--schema",
        "problems",
        "--prompt-field",
        "q",
        "--answer-field",
        "a",
        "--task",
        "trivia",
        "-o",
        "qa",
    )
    math = rows_of(tmp_path / "math")[0]
    assert math["answer"] == "1" and math["task"] == "math" and json.loads(math["meta"])["level"] == "Level 1"
    mmlu = rows_of(tmp_path / "mmlu")[0]
    assert (
        mmlu["prompt"] == "Sky colour?\nA. red\nB. blue\nC. green\nAnswer:"
        and mmlu["answer"] == "B"
        and mmlu["task"] == "mmlu"
    )
    assert rows_of(tmp_path / "qa")[0] == {
        "id": "qa:0",
        "prompt": "Capital of France?",
        "answer": "Paris",
        "task": "trivia",
        "tests": "",
        "meta": "{}",
    }
    write_jsonl(tmp_path / "nota.jsonl", [{"q": "x"}])
    result = phi4("ingest", "nota.jsonl", "--schema", "problems", "-o", "bad", check=False)
    assert result.returncode != 0 and "nota.jsonl:1: not a known problems layout" in result.stderr.decode()


def test_require_schema_names_what_it_got(tmp_path):
    with pytest.raises(Phi4Error, match="these are chat rows, not pairs"):
        require_schema(CHAT_SCHEMA, "pairs", "data/chat", "dpo")
    with pytest.raises(Phi4Error, match="missing column 'messages'"):
        require_schema(pa.schema([("id", pa.string())]), "chat", "x")
    require_schema(PAIRS_SCHEMA, "pairs", "x")


def test_openai_developer_role_is_the_system_message(phi4, tmp_path):
    row = {
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
        ]
    }
    write_jsonl(tmp_path / "c.jsonl", [row])
    phi4("ingest", "c.jsonl", "--schema", "chat", "-o", "c")
    assert rows_of(tmp_path / "c")[0]["messages"][0] == {"role": "system", "content": "Be brief."}
