"""The engine's ``/v1/embeddings``: mean-pooled hidden states, floats or base64, via the SDK."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterator

import httpx
import openai
import pytest

from appliance.engine.server import EXTENSION
from tests import timing
from tests.conftest import LiveServer

pytestmark = pytest.mark.engine

MODEL = "tiny-served"


@pytest.fixture(scope="module")
def client(engine_server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{engine_server.url}/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def size(engine_server: LiveServer) -> int:
    return int(engine_server.server.app.extensions[EXTENSION].engine.embedding_size)


def post(engine_server: LiveServer, body: dict) -> httpx.Response:
    return httpx.post(f"{engine_server.url}/v1/embeddings", json=body, timeout=timing.scaled(30))


def test_float_embedding_is_a_unit_vector_with_usage(client: openai.OpenAI, size: int) -> None:
    result = client.embeddings.create(model=MODEL, input="你好, world", encoding_format="float")
    assert result.object == "list" and result.model == MODEL
    (item,) = result.data
    assert (item.index, item.object) == (0, "embedding")
    assert len(item.embedding) == size
    assert math.isclose(math.sqrt(sum(x * x for x in item.embedding)), 1.0, rel_tol=1e-5)
    assert result.usage.prompt_tokens > 0
    assert result.usage.total_tokens == result.usage.prompt_tokens


def test_base64_is_little_endian_float32_of_the_same_vector(
    engine_server: LiveServer, client: openai.OpenAI, size: int
) -> None:
    floats = post(engine_server, {"model": MODEL, "input": "abc"}).json()["data"][0]["embedding"]
    raw = post(engine_server, {"model": MODEL, "input": "abc", "encoding_format": "base64"})
    encoded = raw.json()["data"][0]["embedding"]
    decoded = struct.unpack(f"<{size}f", base64.b64decode(encoded))
    assert decoded == pytest.approx(floats, abs=1e-6)
    # The SDK asks for base64 by default and decodes it.
    sdk = client.embeddings.create(model=MODEL, input="abc").data[0].embedding
    assert list(sdk) == pytest.approx(floats, abs=1e-6)


def test_batches_of_texts_and_of_token_ids(client: openai.OpenAI, size: int) -> None:
    texts = client.embeddings.create(model=MODEL, input=["one", "two", "three"])
    assert [d.index for d in texts.data] == [0, 1, 2]
    assert all(len(d.embedding) == size for d in texts.data)
    assert texts.data[0].embedding != texts.data[1].embedding
    one = client.embeddings.create(model=MODEL, input=[5, 6, 7])
    assert one.usage.prompt_tokens == 3
    many = client.embeddings.create(model=MODEL, input=[[5, 6, 7], [8]])
    assert many.usage.prompt_tokens == 4
    assert list(many.data[0].embedding) == pytest.approx(list(one.data[0].embedding), abs=1e-6)


def test_dimensions_other_than_the_models_are_refused(client: openai.OpenAI, size: int) -> None:
    same = client.embeddings.create(model=MODEL, input="x", dimensions=size)
    assert len(same.data[0].embedding) == size
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model=MODEL, input="x", dimensions=size // 2)
    assert raised.value.param == "dimensions"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": MODEL, "input": []}, 400, "input"),
        ({"model": MODEL, "input": [[1], []]}, 400, "input"),
        ({"model": MODEL, "input": [10**9]}, 400, "input"),
        ({"model": MODEL, "input": [1] * 100_000}, 400, "input"),
        ({"model": MODEL, "input": "x", "encoding_format": "hex"}, 400, "encoding_format"),
        ({"model": MODEL, "input": "x", "dimensions": 0}, 400, "dimensions"),
        ({"model": "other", "input": "x"}, 404, "model"),
    ],
)
def test_invalid_requests(engine_server: LiveServer, body: dict, status: int, param: str) -> None:
    response = post(engine_server, body)
    assert response.status_code == status
    assert response.json()["error"]["param"] == param
