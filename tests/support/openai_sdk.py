"""Talks to a running `anjeon serve` with the official OpenAI Python SDK and checks the
shapes it gets back. Usage: openai_sdk.py BASE_URL. Exits non-zero on the first failure."""

import json
import sys
import urllib.error
import urllib.request

import openai

base = sys.argv[1].rstrip("/")
client = openai.OpenAI(base_url=base + "/v1", api_key="not-needed", max_retries=0)

models = [m.id for m in client.models.list().data]
assert len(models) == 2, models
llm, embedder = models

chat = client.chat.completions.create(
    model=llm,
    messages=[{"role": "user", "content": "식품의약품안전처는 어떤 일을 하나요?"}],
    max_tokens=16,
    temperature=0,
)
assert chat.object == "chat.completion"
assert chat.choices[0].message.role == "assistant"
assert chat.choices[0].finish_reason in ("stop", "length")
assert chat.usage.completion_tokens <= 16 and chat.usage.prompt_tokens > 0

pieces = []
finish = None
for chunk in client.chat.completions.create(
    model=llm,
    messages=[{"role": "user", "content": "식품의약품안전처는 어떤 일을 하나요?"}],
    max_tokens=16,
    temperature=0,
    stream=True,
):
    assert chunk.object == "chat.completion.chunk"
    delta = chunk.choices[0].delta
    if delta.content:
        pieces.append(delta.content)
    finish = chunk.choices[0].finish_reason or finish
assert "".join(pieces) == chat.choices[0].message.content, (pieces, chat.choices[0].message.content)
assert finish in ("stop", "length")

done = client.completions.create(model=llm, prompt="식품의약품안전처는", max_tokens=8, temperature=0)
assert done.object == "text_completion" and done.choices[0].text

stream_text = "".join(
    c.choices[0].text
    for c in client.completions.create(
        model=llm, prompt="식품의약품안전처는", max_tokens=8, temperature=0, stream=True
    )
)
assert stream_text == done.choices[0].text, (stream_text, done.choices[0].text)

scored = client.completions.create(
    model=llm, prompt="대한민국의 수도는 서울이다.", max_tokens=0, echo=True, logprobs=1
)
lp = scored.choices[0].logprobs
# with a BOS token in front, even the first token of the text has a log-probability
assert all(v is not None and v < 0 for v in lp.token_logprobs), lp
assert "".join(lp.tokens) == "대한민국의 수도는 서울이다." and lp.text_offset[0] == 0, lp

emb = client.embeddings.create(model=embedder, input=["건강기능식품", "query: 허위 광고"])
assert len(emb.data) == 2 and len(emb.data[0].embedding) == 384

errors = {}
try:
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
except openai.NotFoundError as e:
    errors["unknown_model"] = e.status_code
try:
    client.chat.completions.create(
        model=llm, messages=[{"role": "user", "content": "hi"}], max_tokens=10**9
    )
except openai.BadRequestError as e:
    errors["max_tokens"] = e.status_code
try:
    client.chat.completions.create(
        model=llm, messages=[{"role": "user", "content": "식품 " * 35000}], max_tokens=4
    )
except openai.BadRequestError as e:
    errors["too_long"] = e.body.get("code") if isinstance(e.body, dict) else str(e.body)

request = urllib.request.Request(
    base + "/v1/chat/completions",
    data=b'{"model": "x", "messages": [',
    headers={"Content-Type": "application/json"},
)
try:
    urllib.request.urlopen(request)
except urllib.error.HTTPError as e:
    body = json.loads(e.read())
    errors["malformed"] = (e.code, body["error"]["type"])

assert errors == {
    "unknown_model": 404,
    "max_tokens": 400,
    "too_long": "context_length_exceeded",
    "malformed": (400, "invalid_request_error"),
}, errors
print(json.dumps({"ok": True, "chat": chat.choices[0].message.content, "errors": errors}, ensure_ascii=False))
