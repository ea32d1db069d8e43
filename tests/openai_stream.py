"""A streamed chat completion through model-workers with the official OpenAI Python client.

Usage: openai_stream.py BASE_URL MODEL

Calls `client.chat.completions.create(model=MODEL, stream=True, ...)` against BASE_URL (e.g.
http://127.0.0.1:PORT/v1), records when each chunk reaches the caller (as the SDK yields it),
and prints one JSON object on stdout:

  {"openai": "<version>", "headers": {<the x-* response headers>},
   "sent_wall": <time.time() just before the call>,
   "events": [{"t": <s since the call>, "wall": <time.time()>, "model": ..., "content": ...}, ...]}

Run by tests/e2e_streaming.rs (`.venv/bin/python`, with `openai` installed by the Makefile).
"""

import json
import sys
import time

import openai
from openai import OpenAI


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    base_url, model = sys.argv[1], sys.argv[2]
    # No SDK retries: a failure must come from the proxy, not be hidden by the client.
    client = OpenAI(base_url=base_url, api_key="sk-test-not-used", max_retries=0, timeout=30.0)
    sent_wall = time.time()
    t0 = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
    )
    headers = {k.lower(): v for k, v in raw.headers.items() if k.lower().startswith("x-")}
    events = []
    for chunk in raw.parse():
        t = time.monotonic() - t0
        wall = time.time()
        content = chunk.choices[0].delta.content if chunk.choices else None
        events.append({"t": t, "wall": wall, "model": chunk.model, "content": content})
    print(json.dumps({"openai": openai.__version__, "headers": headers, "sent_wall": sent_wall, "events": events}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
