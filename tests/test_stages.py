"""Each stage of the build on its own: read, decode, embed, write, the model choice and the plan."""

import hashlib
import io
import os
import pickle
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from indexer import BuildConfig, BuildError
from indexer.checkpoint import Checkpoint
from indexer.stages.decode import Decoder
from indexer.stages.embed import Embedder, device_preprocess
from indexer.stages.model import ModelChoice, check_requested_model, choose_model
from indexer.stages.plan import assemble, plan_changes
from indexer.stages.read import FileData, read_file, read_files
from indexer.stages.walk import PhotoFile
from indexer.stages.write import write_bundle
from search.encoding.device_images import DevicePreprocess
from search.encoding.fingerprint import DEFAULT_MODEL, DEFAULT_PRETRAINED, ModelFingerprint
from search.encoding.images import ImageInfo, load_image
from search.errors import ModelMismatchError
from search.store.bundle import Bundle
from search.store.metadata import ImageRecord
from tests.photos import add_broken_files, make_image, save_image


def photo(path, root):
    st = os.stat(path)
    return PhotoFile(str(path), os.path.relpath(path, root), st.st_size, st.st_mtime_ns)


def as_read(name, data):
    return FileData(PhotoFile(f"/photos/{name}", name, len(data), 0), hashlib.sha256(data).hexdigest(), data)


def jpeg_bytes(seed, mode="RGB", **options):
    buf = io.BytesIO()
    make_image(seed, (120, 80)).convert(mode).save(buf, "JPEG", **options)
    return buf.getvalue()


def test_read_hashes_the_bytes_and_names_what_went_wrong(tmp_path):
    good = save_image(tmp_path / "a.png", 1)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "folder.jpg").mkdir()
    files = [photo(good, tmp_path), photo(tmp_path / "empty.jpg", tmp_path), photo(tmp_path / "folder.jpg", tmp_path)]
    files.append(PhotoFile(str(tmp_path / "gone.jpg"), "gone.jpg", 1, 1))
    read = read_files(files)
    assert [(f.photo.rel, f.sha256, f.data) for f in read.items] == [
        ("a.png", hashlib.sha256(good.read_bytes()).hexdigest(), good.read_bytes())]
    assert [(s.rel, s.reason.split(":")[0]) for s in read.skipped] == [
        ("empty.jpg", "empty"), ("folder.jpg", "unreadable"), ("gone.jpg", "vanished")]
    assert read_file(files[0]) == read.items[0]


def test_decoder_is_a_picklable_batch_stage_that_reports_bad_files(tmp_path, encoder):
    expected_bad = add_broken_files(tmp_path)
    del expected_bad["broken/empty.jpg"]  # a reading matter (test above)
    files = [as_read(name, (tmp_path / name).read_bytes()) for name in sorted(expected_bad)]
    files.insert(1, as_read("good.png", (save_image(tmp_path / "good.png", 3)).read_bytes()))
    files.append(as_read("good.jpg", jpeg_bytes(4)))
    decoder = Decoder(encoder.preprocess, 100_000_000, encoder.image_size)
    for stage in (decoder, pickle.loads(pickle.dumps(decoder))):  # as a worker process or an actor gets it
        out = stage(files)
        assert [d.photo.rel for d in out.items] == ["good.png", "good.jpg"]
        for d, f in zip(out.items, [files[1], files[-1]]):
            image, info = load_image(f.data, min_size=encoder.image_size)
            np.testing.assert_allclose(d.pixels, encoder.preprocess(image).numpy(), atol=1e-6)
            assert (d.sha256, d.info, d.jpeg) == (f.sha256, info, None)
        assert {s.rel: s.reason.split(":")[0] for s in out.skipped} == expected_bad
        assert {s.sha256 for s in out.skipped} == {f.sha256 for f in files if f.photo.rel.startswith("broken/")}


def test_decoder_leaves_the_jpegs_every_decoder_reads_alike_for_the_device(encoder):
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated, grey, cmyk = jpeg_bytes(1, exif=exif), jpeg_bytes(2, "L"), jpeg_bytes(3, "CMYK")
    out = Decoder(encoder.preprocess, 100_000_000, encoder.image_size, leave_jpegs=True)(
        [as_read("rotated.jpg", rotated), as_read("grey.jpg", grey), as_read("cmyk.jpg", cmyk)])
    assert [(d.pixels is None, d.jpeg, d.orientation) for d in out.items] == [
        (True, rotated, 6), (True, grey, 1), (False, None, 1)]
    assert (out.items[0].info.width, out.items[0].info.height) == (80, 120)  # as oriented
    assert out.items[2].pixels.shape == (3, encoder.image_size, encoder.image_size) and not out.skipped


def decoded(encoder, named_data, leave_jpegs=False):
    return Decoder(encoder.preprocess, 100_000_000, encoder.image_size, leave_jpegs)(
        [as_read(name, data) for name, data in named_data]).items


def test_embedder_gives_the_encoders_vectors_by_hash(encoder):
    batch = decoded(encoder, [(f"{i}.jpg", jpeg_bytes(i)) for i in range(5)])
    out = Embedder(encoder)(batch)
    assert out.sha256 == [d.sha256 for d in batch] and out.vectors.dtype == np.float32
    np.testing.assert_allclose(out.vectors, encoder.encode_images(np.stack([d.pixels for d in batch])), atol=1e-6)
    assert (out.skipped, out.decoded_on_device) == ([], 0)
    assert Embedder(encoder)([]).vectors.shape == (0, encoder.dim)


class RejectsFirstJpeg(DevicePreprocess):
    """A device decoder that cannot read the first JPEG of each batch (as nvJPEG some variants)."""

    def decode(self, jpegs):
        return [None] + super().decode(jpegs[1:])


def test_embedder_decodes_jpegs_on_the_device_and_gives_what_it_rejects_to_pillow(encoder):
    """The CPU device stands in for CUDA: the same torchvision code, with libjpeg-turbo."""
    good = [(f"{i}.jpg", jpeg_bytes(i)) for i in range(4)]
    whole = jpeg_bytes(9)
    truncated = ("truncated.jpg", whole[:len(whole) // 2])
    batch = decoded(encoder, good + [truncated, ("p.png", save_png(5))], leave_jpegs=True)
    assert [d.pixels is None for d in batch] == [True] * 5 + [False]
    device = device_preprocess(encoder, "device")
    assert device is not None and device_preprocess(encoder, "auto") is None  # auto: only on CUDA
    fallback = Decoder(encoder.preprocess, 100_000_000, encoder.image_size)
    rejecting = RejectsFirstJpeg(device.steps, device.device)
    out = Embedder(encoder, rejecting, fallback)(batch)
    assert out.decoded_on_device == 3  # 1.jpg, 2.jpg, 3.jpg; 0.jpg went to Pillow, truncated.jpg failed both
    assert [(s.rel, s.reason.split(":")[0], s.sha256) for s in out.skipped] == [
        ("truncated.jpg", "corrupt", batch[4].sha256)]
    pillow = Embedder(encoder)(decoded(encoder, good + [("p.png", save_png(5))]))
    assert out.sha256 == pillow.sha256
    assert np.min(np.sum(out.vectors * pillow.vectors, axis=1)) >= 0.99
    np.testing.assert_allclose(out.vectors[0], pillow.vectors[0], atol=1e-5)  # Pillow's own decode
    with pytest.raises(ValueError, match="needs a fallback"):
        Embedder(encoder, device)


def save_png(seed):
    buf = io.BytesIO()
    make_image(seed).save(buf, "PNG")
    return buf.getvalue()


def test_model_choice_is_the_flags_else_the_bundles_else_the_default(tmp_path):
    config = BuildConfig(photos=str(tmp_path))
    bundle = ModelFingerprint("tiny", "/w.pt", 4, "abc", {"embed_dim": 4})
    assert choose_model(config, None) == ModelChoice(DEFAULT_MODEL, DEFAULT_PRETRAINED, None, "auto")
    # auto keeps the bundle's precision (fp32: written before precision was recorded)
    assert choose_model(config, bundle) == ModelChoice("tiny", "/w.pt", {"embed_dim": 4}, "auto", "fp32")
    (tmp_path / "arch.json").write_text('{"embed_dim": 8}')
    flags = BuildConfig(photos=str(tmp_path), model="other", pretrained="tag", model_config=str(tmp_path / "arch.json"),
                        device="cpu")
    assert choose_model(flags, bundle) == ModelChoice("other", "tag", {"embed_dim": 8}, "cpu", "fp32")
    assert pickle.loads(pickle.dumps(choose_model(flags, bundle))) == choose_model(flags, bundle)
    with pytest.raises(ModelMismatchError, match="built with tiny / /w.pt .*not other; .*--index"):
        check_requested_model(flags, bundle)
    check_requested_model(flags, None)
    check_requested_model(BuildConfig(photos=str(tmp_path), model="tiny"), bundle)
    with pytest.raises(BuildError, match="cannot read model config .*missing.json"):
        choose_model(BuildConfig(photos=str(tmp_path), model_config=str(tmp_path / "missing.json")), None)


def record(image_id, path, sha, size=1):
    return ImageRecord(image_id, path, size, 1, sha, 2, 2)


def test_plan_reads_only_what_changed_and_assemble_keeps_ids():
    old = [record(0, "same.jpg", "s"), record(1, "edited.jpg", "e"), record(2, "old-name.jpg", "r"),
           record(3, "gone.jpg", "g")]
    files = [PhotoFile("/p/same.jpg", "same.jpg", 1, 1), PhotoFile("/p/edited.jpg", "edited.jpg", 2, 1),
             PhotoFile("/p/new-name.jpg", "new-name.jpg", 1, 1), PhotoFile("/p/new.jpg", "new.jpg", 1, 1)]
    plan = plan_changes(files, old)
    assert ([r.path for r in plan.unchanged], [f.rel for f in plan.to_read], [r.path for r in plan.gone]) == (
        ["same.jpg"], ["edited.jpg", "new-name.jpg", "new.jpg"], ["old-name.jpg", "gone.jpg"])
    info = ImageInfo(2, 2)
    outcome = assemble(plan, [(files[1], "e2", info), (files[2], "r", info), (files[3], "n", info)], old, 10)
    assert [(r.id, r.path, r.sha256) for r in outcome.records] == [
        (0, "same.jpg", "s"), (1, "edited.jpg", "e2"), (2, "new-name.jpg", "r"), (10, "new.jpg", "n")]
    assert outcome.counts == dict(added=1, updated=1, removed=1, renamed=1, unchanged=1)


def test_write_takes_new_vectors_by_hash_and_the_rest_from_the_previous_bundle(tmp_path):
    index, fingerprint = str(tmp_path / "index"), ModelFingerprint("m", None, 4)
    unit = np.eye(4, dtype=np.float32)
    write_bundle(index, str(tmp_path), [record(0, "a.jpg", "a"), record(1, "b.jpg", "b")],
                 {"a": unit[0], "b": unit[1]}, fingerprint)
    first = Bundle.open(index, use_gpu=False)
    assert first.manifest.root == str(tmp_path)
    checkpoint = Checkpoint(index)
    checkpoint.add("c", unit[2])
    checkpoint.flush(fingerprint)
    records = [record(0, "a.jpg", "a"), record(1, "b.jpg", "c"), record(2, "copy-of-a.jpg", "a")]
    write_bundle(index, str(tmp_path), records, {"c": unit[2]}, fingerprint, previous=first,
                 previous_records=first.metadata.all(), checkpoint=checkpoint)
    second = Bundle.open(index, use_gpu=False)
    np.testing.assert_array_equal(second.vectors, unit[[0, 2, 0]])
    assert second.manifest.generation == first.manifest.generation + 1
    assert not os.path.exists(checkpoint.dir)  # cleared once committed


def test_plan_keeps_file_identity_and_reads_a_file_swapped_in_place():
    """Another inode with the same path, size and mtime is read again (its hash decides what it is);
    records from before file identity was recorded keep their place and get one."""
    known = replace(record(0, "same.jpg", "s"), dev=1, ino=10, ctime_ns=5)
    legacy = record(1, "legacy.jpg", "l")
    swapped = replace(record(2, "swapped.jpg", "w"), dev=1, ino=12, ctime_ns=5)
    files = [PhotoFile("/p/same.jpg", "same.jpg", 1, 1, 1, 10, 5), PhotoFile("/p/legacy.jpg", "legacy.jpg", 1, 1, 1, 11, 6),
             PhotoFile("/p/swapped.jpg", "swapped.jpg", 1, 1, 1, 99, 7)]
    plan = plan_changes(files, [known, legacy, swapped])
    assert [f.rel for f in plan.to_read] == ["swapped.jpg"]
    assert plan.unchanged == [known, replace(legacy, dev=1, ino=11, ctime_ns=6)]
    assert plan.refreshed == 1 and not plan.changes_nothing
    assert plan_changes(files[:1], [known]).changes_nothing
    outcome = assemble(plan, [(files[2], "w", ImageInfo(2, 2))], [known, legacy, swapped], 3)
    assert [(r.id, r.ino, r.ctime_ns) for r in outcome.records] == [(0, 10, 5), (1, 11, 6), (2, 99, 7)]
