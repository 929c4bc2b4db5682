"""Helpers shared by the dataset adapters: ids, lists, boxes, presets, the arrays-only unpickler."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from dataset_fixtures import Hostile
from ier.adapters import list_datasets
from ier.adapters.common import (
    clean_box,
    music_ytid,
    read_rows,
    split_vggsound_clip,
    xywh_to_xyxy,
)
from ier.adapters.safe_pickle import UnsafePickleError, load_array, loads_array
from ier.protocol import DEFAULT_ALPHA_BY_KIND, published_protocol


def test_vggsound_clip_names_split_on_the_last_underscore() -> None:
    assert split_vggsound_clip("FAKE-vg_002_000000") == ("FAKE-vg_002", 0)
    assert split_vggsound_clip("-FAKEvgg003_000125") == ("-FAKEvgg003", 125)
    assert split_vggsound_clip("no-start") is None
    assert music_ytid("FAKE-solo_2_0_1000") == "FAKE-solo_2"


def test_read_rows_tolerates_crlf_quotes_and_missing_newline(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(b'\xef\xbb\xbfa,1\r\n\r\nb,"x, y"\r\nc,3')
    assert [cells for _, cells in read_rows(path)] == [["a", "1"], ["b", "x, y"], ["c", "3"]]


def test_boxes_convert_and_clip() -> None:
    assert xywh_to_xyxy([0.25, 0.5, 0.25, 0.25]) == (0.25, 0.5, 0.5, 0.75)
    assert clean_box([0, 0.3125, 0.5, 1]) == ((0.0, 0.3125, 0.5, 1.0), None)
    box, note = clean_box([-0.1, 0.2, 0.5, 1.2])
    assert box == (0.0, 0.2, 0.5, 1.0) and "clipped" in note
    box, note = clean_box([0.1, 0.2, 0.3, -2.8823037615171176e16])  # VGG-SS sentinel
    assert box is None and "degenerate" in note
    assert clean_box([0.1, float("nan"), 0.2, 0.3])[0] is None


def test_presets_follow_the_published_protocols() -> None:
    assert published_protocol("solo").alpha == 0.1
    assert published_protocol("duet").alpha == 0.2
    assert published_protocol("synthetic").alpha == 0.5
    for kind in ("solo", "duet", "synthetic"):  # DSOL's alphas, stated once for both tables
        assert published_protocol(kind).alpha == DEFAULT_ALPHA_BY_KIND[kind]
    assert published_protocol("flickr").gt_rule == "consensus"
    assert published_protocol("nonsense") is None
    assert {"music", "music-synthetic", "vggss", "flickr", "extended-vggss"} <= set(list_datasets())


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_safe_pickle_loads_plain_arrays(protocol: int) -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(loads_array(pickle.dumps(array, protocol=protocol)), array)


def test_safe_pickle_refuses_code_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Hostile(marker)))
    with pytest.raises(UnsafePickleError, match="refused global"):
        load_array(path)
    assert not marker.exists()
    # the same payload through plain pickle would run: proves the fixture is really hostile
    pickle.loads(path.read_bytes())
    assert marker.exists()
    os.remove(marker)


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps({"a": 1}),
        pickle.dumps(np.array([object()], dtype=object)),
        pickle.dumps(np.zeros(3))[:-5],
    ],
    ids=["dict", "object-array", "truncated"],
)
def test_safe_pickle_refuses_non_arrays(payload: bytes) -> None:
    with pytest.raises(UnsafePickleError):
        loads_array(payload)
