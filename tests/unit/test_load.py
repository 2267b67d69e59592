"""Loading from local folders shaped like hub checkpoints, and the refusals."""

from __future__ import annotations

import pytest
import torch

from circuitdrift.errors import InputError
from circuitdrift.models.load import load_model, resolve_device
from tests.conftest import make_model


@pytest.fixture
def saved(tmp_path, word_tokenizer):
    model = make_model("qwen2", word_tokenizer)
    model.save_pretrained(tmp_path / "m")
    word_tokenizer.save_pretrained(tmp_path / "m")
    return tmp_path / "m", model


def test_loads_a_local_folder_like_a_hub_checkpoint(saved, device):
    path, original = saved
    model, tokenizer = load_model(str(path), device=device)
    assert not model.training and tokenizer.pad_token is not None
    ids = torch.randint(0, 100, (1, 5)).to(model.device)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, original(ids).logits)
    assert tokenizer.chat_template is not None


def test_refusals(tmp_path, saved):
    path, _ = saved
    with pytest.raises(InputError, match="no such folder"):
        load_model(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a model folder"):
        load_model(str(tmp_path / "empty"))
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((path / "config.json").read_text())
    torch.save({}, pickled / "pytorch_model.bin")
    with pytest.raises(InputError, match="pickled"):
        load_model(str(pickled))


def test_unknown_hub_id_offline_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="could not load") as info:
        load_model("no-such-org/no-such-model", device="cpu")
    assert "\n" not in str(info.value)


def test_cuda_without_gpu_is_an_input_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(InputError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
