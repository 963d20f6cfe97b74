"""CLIP encoders (open_clip): text and image embeddings in one space, for text queries over clusters.

The default is ViT-B-16 / laion2b_s34b_b88k, the model SAGA, LangSplat and GAGS use. Weights come from
`--clip-checkpoint PATH` (loaded with `weights_only=True`, or as safetensors), from the Hugging Face cache when a
previous run downloaded them, or from open_clip's usual download when the machine is online. Offline with none of
these is a one-line error naming `--clip-checkpoint`, never a hang on a download.

Embeddings made by one model are meaningless to another, so every encoder carries an identity: the architecture
name and a fingerprint of its weights (`ClipEncoder.fingerprint`), which is the same whether the weights were
downloaded or read from a local copy of the same file.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from backend.core.errors import InputError

DEFAULT_CLIP_MODEL = "ViT-B-16"
DEFAULT_CLIP_PRETRAINED = "laion2b_s34b_b88k"
HF_HOST = "huggingface.co"
_ONLINE_TIMEOUT_S = 2.0
_TEXT_CACHE_SIZE = 256  # the canonical negatives and recent queries; a text embedding is 2 kB


def is_online(host: str = HF_HOST, *, timeout: float = _ONLINE_TIMEOUT_S) -> bool:
    """Whether `host`:443 answers within `timeout` seconds.

    The check runs in a thread because name resolution has no timeout of its own and can hang for a minute in a
    sandbox without DNS. `HF_HUB_OFFLINE=1` or `SPLATSEG_OFFLINE=1` answers False without touching the network.
    """
    if _env_flag("HF_HUB_OFFLINE") or _env_flag("SPLATSEG_OFFLINE"):
        return False
    answer: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answer and answer[0])


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def split_model_name(spec: str) -> tuple[str, str | None]:
    """`--clip-model` → (architecture, pretrained tag): "ViT-B-16" or "ViT-B-16:laion2b_s34b_b88k"."""
    name, _, tag = spec.partition(":")
    return name, (tag or None)


def default_tag(name: str) -> str | None:
    """The weights a bare architecture name means: laion2b_s34b_b88k for ViT-B-16, else open_clip's first tag."""
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(name)
    if name == DEFAULT_CLIP_MODEL and DEFAULT_CLIP_PRETRAINED in tags:
        return DEFAULT_CLIP_PRETRAINED
    return tags[0] if tags else None


def cached_weights(name: str, tag: str) -> Path | None:
    """The weights file of (name, tag) in the Hugging Face cache, if an earlier online run downloaded it."""

    repo_id, filename = _hub_parts(name, tag)
    if not repo_id:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    # open_clip prefers the safetensors twin of the default pickle file; so do we.
    candidates = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    for candidate in candidates:
        with contextlib.suppress(Exception):
            found = try_to_load_from_cache(repo_id, candidate)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    return None


def weights_fingerprint(model: torch.nn.Module) -> str:
    """16 hex digits identifying the weights (not how they were loaded): a hash of the text projection, the
    token embedding's first rows and the logit scale, read in float32 before any fp16 cast."""
    digest = hashlib.sha256()
    state = model.state_dict()
    for key in ("text_projection", "logit_scale", "token_embedding.weight", "visual.proj"):
        value = state.get(key)
        if value is None:
            continue
        value = value[:64] if key == "token_embedding.weight" else value
        digest.update(key.encode())
        digest.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class ClipEncoder:
    """An open_clip model ready to embed texts and rendered crops: eval mode, no grad, batched, fp16 on CUDA.

    Outputs are unit-length float32 CPU tensors whatever the device, so callers never care where CLIP ran.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        name: str,
        source: str,
        device: torch.device | str | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        batch_size: int = 32,
    ) -> None:
        import open_clip

        self.device = torch.device(device) if device is not None else _default_device()
        """Where the model runs."""
        self.name = name
        """Architecture name (`--clip-model`), e.g. "ViT-B-16"."""
        self.source = source
        """Where the weights came from: a pretrained tag, a checkpoint path, or "random"."""
        self.fingerprint = weights_fingerprint(model)
        """Identity of the weights; embeddings made with another fingerprint are not comparable."""
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.model = model.to(self.device, self.dtype).eval()
        self.tokenizer = tokenizer
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", 224)
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        """Side of the square images the vision tower takes; crops are rendered at exactly this size."""
        mean = mean if mean is not None else cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)
        std = std if std is not None else cfg.get("std", open_clip.OPENAI_DATASET_STD)
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.batch_size = batch_size
        self._text_cache: collections.OrderedDict[str, Tensor] = collections.OrderedDict()
        self._lock = threading.Lock()  # the viewer may query from several threads
        with torch.inference_mode():
            probe = self._encode_tokens(self.tokenizer(["a"]).to(self.device))
        self.embed_dim = int(probe.shape[-1])
        """D: the length of every embedding."""

    @property
    def identity(self) -> dict[str, str]:
        """What the workspace records with embeddings, and what a query is checked against."""
        return {"clip_model": self.name, "clip_weights": self.fingerprint, "clip_source": self.source}

    # ---- text ------------------------------------------------------------------------------------------------
    def encode_text(self, texts: Sequence[str]) -> Tensor:  # → [T, D] float32, unit rows, CPU
        """Embed texts; repeated texts (the canonical negatives, a re-run query) come from a small cache."""
        texts = list(texts)
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._text_cache))
            for start in range(0, len(missing), self.batch_size):
                chunk = missing[start : start + self.batch_size]
                with torch.inference_mode(), few_threads(self.device, len(chunk)):
                    tokens = self.tokenizer(chunk).to(self.device)
                    out = F.normalize(self._encode_tokens(tokens).float(), dim=-1).cpu()
                for text, row in zip(chunk, out, strict=True):
                    self._text_cache[text] = row
            rows = []
            for t in texts:
                self._text_cache.move_to_end(t)
                rows.append(self._text_cache[t])
            while len(self._text_cache) > _TEXT_CACHE_SIZE:
                self._text_cache.popitem(last=False)
        return torch.stack(rows) if rows else torch.zeros(0, self.embed_dim)

    def _encode_tokens(self, tokens: Tensor) -> Tensor:  # tokens [T, L] int64 → [T, D]
        if _can_trim(self.model):
            return encode_text_trimmed(self.model, tokens)
        return self.model.encode_text(tokens)

    # ---- images ----------------------------------------------------------------------------------------------
    def encode_images(self, images: Tensor) -> Tensor:  # images [B, S, S, 3] float in [0, 1] → [B, D] float32
        """Embed square RGB images; other sizes than `image_size` (CPU crops come at half) are resized bicubically."""
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be [B, S, S, 3], got {tuple(images.shape)}")
        outs = []
        for start in range(0, images.shape[0], self.batch_size):
            x = images[start : start + self.batch_size].to(self.device, torch.float32).permute(0, 3, 1, 2)
            if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
                x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False)
            x = ((x.clamp(0, 1) - self._mean) / self._std).to(self.dtype)
            with torch.inference_mode():
                outs.append(F.normalize(self.model.encode_image(x).float(), dim=-1).cpu())
        return torch.cat(outs) if outs else torch.zeros(0, self.embed_dim)


_THREADS_LOCK = threading.Lock()


@contextlib.contextmanager
def few_threads(device: torch.device, batch: int) -> Iterator[None]:
    """One intra-op thread for a few short texts on CPU.

    A query is ~5 tokens: its matrix products are too small to split, and when the cores are busy (training in the
    viewer, other processes) every op waits a scheduler slice for the second OpenMP worker: measured 240 ms with 2
    threads against 34 ms with 1 on a loaded 2-core machine. Large batches keep every thread.
    """
    if device.type != "cpu" or batch > 4 or torch.get_num_threads() == 1:
        yield
        return
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def _default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _can_trim(model: torch.nn.Module) -> bool:
    """The built-in CLIP text tower: causal mask and end-of-text (argmax) pooling, where trimming is exact."""
    import open_clip

    return (
        type(model) is open_clip.CLIP
        and getattr(model, "attn_mask", None) is not None
        and getattr(model, "text_pool_type", None) == "argmax"
    )


def encode_text_trimmed(model: torch.nn.Module, tokens: Tensor) -> Tensor:  # tokens [T, 77] → [T, D]
    """CLIP's text tower on the tokens up to the last end-of-text token instead of all 77 positions.

    The causal mask means no position attends to a later one, and the embedding is read at the end-of-text token,
    so the padding after it cannot change the result: dropping it is exact (tested against `encode_text`) and makes
    a short query ~10× cheaper on CPU. The reference is `model.encode_text`.
    """
    eot = tokens.argmax(dim=-1)  # [T] the end-of-text token has the largest id
    length = int(eot.max()) + 1
    tokens = tokens[:, :length]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:length].to(cast)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), eot]
    projection = model.text_projection
    if projection is None:
        return x
    return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection


def load_clip(
    model: str = DEFAULT_CLIP_MODEL,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    device: torch.device | str | None = None,
    online: bool | None = None,
) -> ClipEncoder:
    """The encoder for `--clip-model` (NAME or NAME:TAG) and `--clip-checkpoint`.

    Order: the checkpoint file when given; the Hugging Face cache; the download when online (`online=None` checks
    with a quick socket probe). Anything else is an `InputError` that names the flag to use.
    """
    import open_clip

    name, tag = split_model_name(model)
    if name not in open_clip.list_models():
        known = ", ".join(m for m in open_clip.list_models() if m.startswith("ViT-B") or m.startswith("ViT-L"))
        raise InputError(f"unknown --clip-model {name!r}; open_clip models include {known}")
    tokenizer = open_clip.get_tokenizer(name)

    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise InputError(f"--clip-checkpoint {path} does not exist")
        clip = _create(name, str(path), what=f"--clip-checkpoint {path}")
        return ClipEncoder(clip, tokenizer, name=name, source=str(path.resolve()), device=device)

    tag = tag or default_tag(name)
    if tag is None:
        raise InputError(f"open_clip knows no pretrained weights for {name}; give them with --clip-checkpoint PATH")
    if tag not in open_clip.list_pretrained_tags_by_model(name):
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(name))
        raise InputError(f"open_clip has no weights {tag!r} for {name}; known: {tags}")
    cached = cached_weights(name, tag)
    if cached is not None:
        clip = _create(name, str(cached), what=f"the cached {name}:{tag} weights {cached}")
        return ClipEncoder(clip, tokenizer, name=name, source=tag, device=device)
    if not (is_online() if online is None else online):
        raise InputError(
            f"CLIP weights {name}:{tag} are not on this machine and it is offline; download them elsewhere "
            f"(e.g. open_clip_model.safetensors from huggingface.co/{_hub_parts(name, tag)[0]}) and pass "
            f"--clip-checkpoint PATH"
        )
    clip = _create(name, tag, what=f"the {name}:{tag} download")
    return ClipEncoder(clip, tokenizer, name=name, source=tag, device=device)


def random_clip(
    name: str = DEFAULT_CLIP_MODEL, *, seed: int = 0, device: torch.device | str | None = None
) -> ClipEncoder:
    """Architecture `name` with seeded random weights: what tests and benchmarks use (the code paths and the cost
    are the real model's; the embeddings mean nothing). Never downloads."""
    import open_clip

    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # "no pretrained weights loaded" is the point here
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            clip = open_clip.create_model(name, pretrained=None)
    finally:
        logging.getLogger().setLevel(level)
    return ClipEncoder(clip, open_clip.get_tokenizer(name), name=name, source="random", device=device)


def _hub_parts(name: str, tag: str) -> tuple[str, str]:
    """open_clip's `hf_hub` entry "org/repo/" (default file) or "org/repo/file" → (repo id, file name or "")."""
    import open_clip

    hub = (open_clip.get_pretrained_cfg(name, tag) or {}).get("hf_hub", "")
    if not hub:
        return "", ""
    if hub.endswith("/"):
        return hub.rstrip("/"), ""
    repo_id, _, filename = hub.rpartition("/")
    return repo_id, filename


def _create(name: str, pretrained: str, *, what: str) -> torch.nn.Module:
    """open_clip.create_model with its log noise muted and its failures turned into one line naming `what`."""
    import open_clip

    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        return open_clip.create_model(name, pretrained=pretrained, weights_only=True)
    except Exception as e:  # strict state-dict load, pickle refused by weights_only, download failure
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"could not load CLIP {name} from {what}: {first[:300]}") from None
    finally:
        logging.getLogger().setLevel(level)
