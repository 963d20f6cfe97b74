"""CLIP encoders: a real open_clip architecture at toy size with random weights; nothing is downloaded."""

from __future__ import annotations

import pathlib

import pytest
import safetensors.torch
import torch

from backend.core.errors import InputError
from backend.language import clip as clip_mod
from backend.language.clip import encode_text_trimmed, is_online, load_clip, split_model_name
from tests.helpers.language_support import TINY_NAME, register_tiny, tiny_clip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture
def offline(monkeypatch):
    """No network and no Hugging Face cache, whatever the machine running the tests has."""
    monkeypatch.setattr(clip_mod, "is_online", lambda *a, **k: False)
    monkeypatch.setattr(clip_mod, "cached_weights", lambda *a, **k: None)


def test_tokenizer_vocabulary_ships_with_open_clip(tiny) -> None:
    tokens = tiny.tokenizer(["a red mug"])
    assert tokens.shape == (1, 77) and int((tokens > 0).sum()) == 5  # start, a, red, mug, end


def test_trimmed_text_encoding_equals_open_clips(tiny) -> None:
    tokens = tiny.tokenizer(["a red mug", "the handle of the white mug on the table", "x"])
    with torch.inference_mode():
        reference = tiny.model.encode_text(tokens)
        fast = encode_text_trimmed(tiny.model, tokens)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)


def test_text_embeddings_are_unit_cached_and_batched(tiny) -> None:
    texts = ["object", "things", "stuff", "texture", "a red mug", "object"]
    tiny.batch_size = 2  # several batches
    out = tiny.encode_text(texts)
    assert out.shape == (6, tiny.embed_dim) and out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=1), torch.ones(6))
    torch.testing.assert_close(out[0], out[5])
    assert not torch.allclose(out[0], out[4])
    with torch.inference_mode():
        direct = torch.nn.functional.normalize(tiny.model.encode_text(tiny.tokenizer(["a red mug"])), dim=-1)
    torch.testing.assert_close(out[4], direct[0], rtol=1e-5, atol=1e-5)


def test_image_embeddings_batch_independently(tiny) -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(5, tiny.image_size, tiny.image_size, 3, generator=g)
    tiny.batch_size = 2
    together = tiny.encode_images(images)
    alone = torch.cat([tiny.encode_images(images[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(together.norm(dim=1), torch.ones(5))
    bigger = torch.nn.functional.interpolate(images.permute(0, 3, 1, 2), scale_factor=2).permute(0, 2, 3, 1)
    assert tiny.encode_images(bigger).shape == (5, tiny.embed_dim)  # other sizes are resampled


def test_offline_without_checkpoint_names_the_flag(offline) -> None:
    with pytest.raises(InputError, match="--clip-checkpoint"):
        load_clip("ViT-B-16")


def test_unknown_model_and_tag_are_one_line_errors(offline) -> None:
    with pytest.raises(InputError, match="unknown --clip-model"):
        load_clip("ViT-Nope-99")
    with pytest.raises(InputError, match="no weights 'nope'"):
        load_clip("ViT-B-16:nope")
    assert split_model_name("ViT-B-16:laion2b_s34b_b88k") == ("ViT-B-16", "laion2b_s34b_b88k")


def test_offline_environment_is_respected_without_network(monkeypatch) -> None:
    monkeypatch.setenv("SPLATSEG_OFFLINE", "1")
    assert is_online() is False


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_checkpoint_round_trip_keeps_the_weights_identity(tiny, tmp_path, offline, suffix) -> None:
    register_tiny(tmp_path)
    state = {k: v.float().contiguous() for k, v in tiny.model.state_dict().items()}
    path = tmp_path / f"tiny{suffix}"
    if suffix == ".safetensors":
        safetensors.torch.save_file(state, str(path))
    else:
        torch.save(state, path)
    loaded = load_clip(TINY_NAME, checkpoint=path, device="cpu")
    assert loaded.fingerprint == tiny.fingerprint and loaded.name == TINY_NAME
    assert loaded.source == str(path.resolve())
    texts = ["a red mug", "stuff"]
    torch.testing.assert_close(loaded.encode_text(texts), tiny.encode_text(texts))


class _Touch:
    """A pickle payload with a side effect: unpickling it creates `path`."""

    def __init__(self, path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


def test_checkpoints_are_loaded_without_unpickling_code(tmp_path, offline) -> None:
    register_tiny(tmp_path)
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"logit_scale": _Touch(marker)}, evil)
    with pytest.raises(InputError, match="could not load CLIP"):
        load_clip(TINY_NAME, checkpoint=evil)
    assert not marker.exists()  # weights_only refused the pickle before running anything in it
    with pytest.raises(InputError, match="does not exist"):
        load_clip(TINY_NAME, checkpoint=tmp_path / "missing.pt")


def test_checkpoint_of_another_architecture_is_refused(tmp_path, offline) -> None:
    register_tiny(tmp_path)
    wrong = tmp_path / "wrong.safetensors"
    safetensors.torch.save_file({"logit_scale": torch.ones(())}, str(wrong))
    with pytest.raises(InputError, match=f"could not load CLIP {TINY_NAME}"):
        load_clip(TINY_NAME, checkpoint=wrong)


def test_fingerprint_tells_weights_apart(tmp_path) -> None:
    a, b = tiny_clip(tmp_path, seed=0), tiny_clip(tmp_path, seed=1)
    assert a.fingerprint != b.fingerprint
    assert tiny_clip(tmp_path, seed=0).fingerprint == a.fingerprint
    assert a.identity == {"clip_model": TINY_NAME, "clip_weights": a.fingerprint, "clip_source": "random"}
