"""Caption files: the four layouts, several captions per photo, and everything left out reported."""

import json

import pytest

from indexer.cli import main
from search.errors import InvalidArgumentError
from search.quality.captions import read_captions


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_jsonl_keeps_several_captions_per_photo_and_reports_empty_and_repeated(tmp_path):
    lines = [{"path": "a.jpg", "caption": "a red circle"}, {"path": "a.jpg", "caption": "a circle, red"},
             {"path": "./b.jpg", "caption": "a dog"}, {"path": "b.jpg", "caption": "  "},
             {"path": "a.jpg", "caption": "A red circle "}, {"path": "c.jpg", "caption": None}]
    captions = read_captions(write(tmp_path, "c.jsonl", "\n".join(map(json.dumps, lines)) + "\n\n"))
    assert [(c.path, c.text) for c in captions.captions] == [
        ("a.jpg", "a red circle"), ("a.jpg", "a circle, red"), ("b.jpg", "a dog")]
    assert captions.photos == ["a.jpg", "b.jpg"]
    assert [(p["where"], p["reason"]) for p in captions.problems] == [
        ("line 4", "empty"), ("line 5", "duplicate"), ("line 6", "empty")]
    assert captions.counts() == {"empty": 2, "duplicate": 1}


def test_csv_with_a_header_row(tmp_path):
    captions = read_captions(write(tmp_path, "c.csv", 'path,caption\na.jpg,"a red circle, small"\nb.jpg,a dog\n'))
    assert [(c.path, c.text) for c in captions.captions] == [("a.jpg", "a red circle, small"), ("b.jpg", "a dog")]


def test_coco_captions_json(tmp_path):
    doc = {"images": [{"id": 1, "file_name": "x.jpg"}, {"id": 2, "file_name": "y.jpg"}],
           "annotations": [{"id": 10, "image_id": 1, "caption": "one"}, {"id": 11, "image_id": 2, "caption": "two"},
                           {"id": 12, "image_id": 1, "caption": "uno"}]}
    captions = read_captions(write(tmp_path, "captions_val2014.json", json.dumps(doc)))
    assert [(c.path, c.text) for c in captions.captions] == [("x.jpg", "one"), ("y.jpg", "two"), ("x.jpg", "uno")]


def test_karpathy_json_keeps_one_split_and_joins_the_folder(tmp_path):
    doc = {"dataset": "coco", "images": [
        {"filepath": "val2014", "filename": "v.jpg", "split": "test", "sentences": [{"raw": "A cat."}, {"raw": "Cat"}]},
        {"filepath": "train2014", "filename": "t.jpg", "split": "restval", "sentences": [{"raw": "A dog."}]}]}
    path = write(tmp_path, "dataset_coco.json", json.dumps(doc))
    assert [(c.path, c.text) for c in read_captions(path, split="test").captions] == [
        ("val2014/v.jpg", "A cat."), ("val2014/v.jpg", "Cat")]
    assert [c.path for c in read_captions(path, split="train").captions] == ["train2014/t.jpg"]
    assert len(read_captions(path).captions) == 3


@pytest.mark.parametrize("name, text, message", [
    ("c.csv", "file,text\na.jpg,x\n", "header path,caption"),
    ("c.jsonl", '{"path": "a.jpg", "caption": "x"}\nnot json\n', "line 2 is not JSON"),
    ("c.jsonl", '{"file": "a.jpg"}\n', 'line 1 is not an object with "path" and "caption"'),
    ("c.json", '{"images": [{"id": 1}], "annotations": [{"image_id": 1, "caption": "x"}]}', "lacks the field"),
    ("c.json", '{"annotations": []}', 'needs an "images" list'),
])
def test_bad_formats_are_one_error(tmp_path, name, text, message):
    with pytest.raises(InvalidArgumentError, match=message):
        read_captions(write(tmp_path, name, text))


def test_cli_prints_one_error_line_for_a_bad_captions_file(tmp_path, capsys):
    bad = write(tmp_path, "c.csv", "nothing useful\n")
    assert main(["eval", "--index", str(tmp_path), "--captions", bad]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "path,caption" in err[0]
    assert main(["eval", "--index", str(tmp_path), "--captions", str(tmp_path / "none.jsonl")]) == 1
    assert capsys.readouterr().err.startswith("error: cannot read the captions file")
