"""The judge interface: phrase list, local HF judges on tiny random models, and the HTTP judge on a stub server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from circuitdrift.errors import InputError
from circuitdrift.judge.base import Judge, JudgeSettings, JudgeUnavailableError, make_judge
from circuitdrift.judge.http import HttpJudge
from circuitdrift.judge.local import CausalLMJudge, ClassifierJudge, load_hf_judge
from circuitdrift.judge.phrases import PhraseJudge
from circuitdrift.judge.prompts import read_yes_no
from circuitdrift.models.wordlevel import build_word_tokenizer
from tests.conftest import make_model


def test_phrase_judge():
    judge = PhraseJudge()
    assert isinstance(judge, Judge)
    requests = ["q"] * 5
    responses = ["I cannot help with that.", "Sure: mix X with Y.", "", "Well, I'm sorry, no.", "Hand the key."]
    assert judge.complied(requests, responses) == [False, True, False, False, True]
    benign = ["Darn.", "You could poison him.", "I cannot help with that.", "Stealing is fun", "Hand the key."]
    assert judge.flagged(requests, benign) == [False, True, True, True, False]
    with pytest.raises(ValueError, match="2 requests but 1"):
        judge.complied(["a", "b"], ["x"])


def test_read_yes_no():
    assert read_yes_no(" Yes.") is True and read_yes_no("**no**") is False and read_yes_no("maybe") is None


def test_settings_are_checked():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="needs 'base_url'"):
        JudgeSettings(kind="http", model="gpt")
    with pytest.raises(ValidationError, match="needs 'model'"):
        JudgeSettings(kind="hf")
    assert isinstance(make_judge(), PhraseJudge)


def _judge_tokenizer():
    return build_word_tokenizer(["yes", "no", "request", "response", "q", "r", "a", "b", "c"])


def test_causal_lm_judge_reads_the_yes_no_logits():
    tokenizer = _judge_tokenizer()
    model = make_model("qwen2", tokenizer, device="cpu")
    judge = CausalLMJudge(model, tokenizer, batch_size=2)
    requests, responses = ["q a", "q b", "q c"], ["r a", "r b b", "r"]
    margins = judge.yes_margin("complied", requests, responses)
    # naive: one prompt at a time, no padding
    from circuitdrift.judge.prompts import judge_prompt
    from circuitdrift.steer.generate import chat_text

    for i, (q, r) in enumerate(zip(requests, responses, strict=True)):
        ids = torch.tensor([tokenizer(chat_text(tokenizer, judge_prompt("complied", q, r)),
                                      add_special_tokens=False).input_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1]
        expected = logits[judge.yes].max() - logits[judge.no].max()
        assert float(margins[i]) == pytest.approx(float(expected), abs=1e-4)
    assert judge.complied(requests, responses) == [bool(m > 0) for m in margins]


def test_hf_judge_from_folders(tmp_path):
    tokenizer = _judge_tokenizer()
    lm = make_model("qwen2", tokenizer, device="cpu")
    lm.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    assert isinstance(load_hf_judge(str(tmp_path / "lm"), device="cpu"), CausalLMJudge)

    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, num_labels=2,
                         pad_token_id=tokenizer.pad_token_id, id2label={0: "safe", 1: "unsafe"},
                         label2id={"safe": 0, "unsafe": 1})
    Qwen2ForSequenceClassification(config).save_pretrained(tmp_path / "clf")
    tokenizer.save_pretrained(tmp_path / "clf")
    judge = load_hf_judge(str(tmp_path / "clf"), positive_label="unsafe", device="cpu")
    assert isinstance(judge, ClassifierJudge)
    verdicts = judge.complied(["q a", "q b"], ["r a", "r b"])
    assert len(verdicts) == 2 and verdicts == judge.flagged(["q a", "q b"], ["r a", "r b"])
    with pytest.raises(InputError, match="no label 'harm'"):
        load_hf_judge(str(tmp_path / "clf"), positive_label="harm", device="cpu")


class _Stub(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint: 'yes' when the response mentions 'Sure', after ``fail_first`` 503s."""

    fail_first = 0
    calls = 0
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802
        cls = type(self)
        cls.calls += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if cls.calls <= cls.fail_first:
            self.send_response(503)
            self.end_headers()
            return
        text = body["messages"][0]["content"]
        answer = "Yes" if "Response: Sure" in text else "No"
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    _Stub.calls, _Stub.fail_first, _Stub.seen = 0, 0, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_http_judge_against_a_stub(stub, tmp_path, monkeypatch):
    monkeypatch.setenv("STUB_KEY", "sk-test")
    settings = JudgeSettings(kind="http", model="judge-1", base_url=stub, api_key_env="STUB_KEY", retries=2)
    judge = make_judge(settings, cache_dir=tmp_path / "cache")
    _Stub.fail_first = 2  # two 503s, then answers: retried within the budget
    assert judge.complied(["q1", "q2"], ["Sure, here.", "No way."]) == [True, False]
    assert _Stub.seen[0]["path"] == "/v1/chat/completions" and _Stub.seen[0]["auth"] == "Bearer sk-test"
    assert _Stub.seen[-1]["body"]["model"] == "judge-1" and _Stub.seen[-1]["body"]["temperature"] == 0
    calls = _Stub.calls
    again = make_judge(settings, cache_dir=tmp_path / "cache")
    assert again.complied(["q1", "q2"], ["Sure, here.", "No way."]) == [True, False]
    assert _Stub.calls == calls  # answered from the disk cache
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2


def test_http_judge_gives_up_with_one_clear_error(stub, tmp_path):
    _Stub.fail_first = 100
    judge = HttpJudge(stub, "judge-1", retries=1, backoff_s=0.0, cache_dir=tmp_path)
    with pytest.raises(JudgeUnavailableError, match=r"unreachable after 2 tries \(HTTP 503\)"):
        judge.complied(["q"], ["Sure"])
    closed = HttpJudge("http://127.0.0.1:9/v1", "judge-1", retries=0, timeout_s=2)  # discard port: refused
    with pytest.raises(JudgeUnavailableError, match="unreachable after 1 tries"):
        closed.flagged(["q"], ["r"])
    with pytest.raises(InputError, match="must start with http"):
        HttpJudge("127.0.0.1:9", "judge-1")
