"""A minimal, fast OpenAI-compatible responder: the upstream of the gateway benchmark.

It is a stand-in on purpose: the benchmark measures the gateway's own cost, so the
upstream must answer in microseconds. It speaks HTTP/1.1 with keep-alive and serves
canned chat completions, SSE streams (``stream: true``; ``chunks`` and ``interval_s``
control their length and pace) and ``/health``. Run: ``python fast_upstream.py PORT``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 0,
    "model": "fast",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "ok"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


def chunk(content: str | None, finish: str | None = None, usage: bool = False) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fast",
        "choices": [],
    }
    if usage:
        body["usage"] = COMPLETION["usage"]
    else:
        delta = {"content": content} if content is not None else {}
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    data = b"data: " + json.dumps(body).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            body = json.loads(await reader.readexactly(length)) if length else {}
            if path.endswith("/health") or method == "GET":
                payload = b'{"status":"ok","data":[]}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
                )
            elif body.get("stream"):
                await stream(writer, body)
            else:
                payload = json.dumps({**COMPLETION, "created": int(time.time())}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
                )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def stream(writer: asyncio.StreamWriter, body: dict) -> None:
    chunks = int(body.get("chunks", 4))
    interval = float(body.get("interval_s", 0))
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    writer.write(chunk(""))
    await writer.drain()
    for i in range(chunks):
        if interval:
            await asyncio.sleep(interval)
        writer.write(chunk(f"t{i} "))
        await writer.drain()
    writer.write(chunk(None, "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        writer.write(chunk(None, usage=True))
    data = b"data: [DONE]\n\n"
    writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
    await writer.drain()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=2048)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
