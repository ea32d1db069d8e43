"""Spice's smart_router example through model-workers, with the official OpenAI Python client.

Usage: openai_providers.py BASE_URL MODE      (MODE: json | stream | tools)

  json    a chat completion with a system prompt
  stream  the same, streamed; records when each chunk reaches the caller
  tools   a chat completion with one function tool, asking about the weather

Prints one JSON object on stdout: {"headers": {x-* response headers}, "result": ...}.
Run by tests/e2e_providers.rs (`.venv/bin/python`, `openai` installed by the Makefile).
"""

import json
import sys
import time

from openai import OpenAI

SYSTEM = "You are a terse assistant. Answer in one line."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    base_url, mode = sys.argv[1], sys.argv[2]
    client = OpenAI(base_url=base_url, api_key="sk-client-not-used", max_retries=0, timeout=30.0)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Say hello"}]
    if mode == "json":
        raw = client.chat.completions.with_raw_response.create(model="smart_router", messages=messages)
        c = raw.parse()
        result = {"content": c.choices[0].message.content, "finish_reason": c.choices[0].finish_reason,
                  "object": c.object, "usage": c.usage.model_dump() if c.usage else None}
    elif mode == "stream":
        t0 = time.monotonic()
        raw = client.chat.completions.with_raw_response.create(
            model="smart_router", messages=messages, stream=True, stream_options={"include_usage": True})
        events = []
        for chunk in raw.parse():
            delta = chunk.choices[0].delta.content if chunk.choices else None
            events.append({"t": time.monotonic() - t0, "content": delta,
                           "finish_reason": chunk.choices[0].finish_reason if chunk.choices else None,
                           "usage": chunk.usage.model_dump() if chunk.usage else None})
        result = {"events": events}
    elif mode == "tools":
        raw = client.chat.completions.with_raw_response.create(
            model="smart_router",
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=TOOLS,
        )
        c = raw.parse()
        calls = c.choices[0].message.tool_calls or []
        result = {"finish_reason": c.choices[0].finish_reason,
                  "tool_calls": [{"id": t.id, "name": t.function.name, "arguments": t.function.arguments} for t in calls]}
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    headers = {k.lower(): v for k, v in raw.headers.items() if k.lower().startswith("x-")}
    print(json.dumps({"headers": headers, "result": result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
