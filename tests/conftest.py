"""Shared fixtures: a tiny random-weight open_clip model, its encoder, photos.

The tiny architecture is registered with open_clip from a JSON config and its
seeded random weights are saved to a checkpoint file, so every test goes
through the real checkpoint-file loading path, offline, in well under a second.
"""

import json

import open_clip
import pytest
import torch

from indexer import BuildConfig, Stages, build
from indexer.stages.embed import Embedder
from search.encoding.encoder import load_encoder

TINY_MODEL = "tiny-test"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="session")
def tiny_config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / f"{TINY_MODEL}.json"
    path.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_config_file):
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_MODEL)
    path = tiny_config_file.parent / "tiny.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def encoder(tiny_checkpoint):
    """The tiny model in float32, open_clip's own numbers (tests/test_precision.py loads the others)."""
    return load_encoder(TINY_MODEL, str(tiny_checkpoint), device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def model_args(tiny_config_file, tiny_checkpoint):
    """CLI arguments that select the tiny model (also in a subprocess)."""
    return ["--model", TINY_MODEL, "--model-config", str(tiny_config_file), "--pretrained", str(tiny_checkpoint)]


@pytest.fixture(scope="session")
def vit_b_32(tmp_path_factory):
    """A seeded random-init ViT-B-32 encoder in float32, loaded through the checkpoint-file path (real shapes
    and speed; ``search.encoding.precision.reduce`` makes its int8 twin)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vit-b-32") / "vit-b-32.pt"
    torch.save(open_clip.create_model("ViT-B-32").state_dict(), path)
    return load_encoder("ViT-B-32", str(path), device="cpu", precision="fp32")


@pytest.fixture
def make_config(tiny_config_file, tiny_checkpoint, tmp_path):
    """``make_config(photos, **settings)()`` builds ``photos`` into ``tmp_path/index`` with the tiny model;
    ``stages=Stages(...)`` builds with parts replaced."""
    def make(photos, stages=Stages(), **overrides):
        settings = dict(photos=str(photos), index=str(tmp_path / "index"), model=TINY_MODEL,
                        model_config=str(tiny_config_file), pretrained=str(tiny_checkpoint), workers=0,
                        batch_size=8, progress=False)
        settings.update(overrides)
        progress = settings.pop("progress")
        return lambda: build(BuildConfig(**settings), progress=progress, stages=stages)
    return make


@pytest.fixture
def interrupt_build(make_config):
    """``interrupt_build(photos)``: a one-process build of ``photos`` stopped by Ctrl-C at its third batch
    of 8, after two checkpoints of 8 embeddings each."""
    class StoppedAtThirdBatch(Embedder):
        batches = 0

        def embed(self, inputs):
            self.batches += 1
            if self.batches == 3:
                raise KeyboardInterrupt  # as if the user pressed Ctrl-C
            return super().embed(inputs)

    def run(photos):
        with pytest.raises(KeyboardInterrupt):
            make_config(photos, checkpoint_every=8, stages=Stages(embedder=StoppedAtThirdBatch))()
    return run
