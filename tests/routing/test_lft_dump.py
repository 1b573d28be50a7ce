"""opensm-lfts.dump: OpenSM's exact line format, round trips, GUID translation."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from ibsim.errors import FileFormatError
from ibsim.fabric import compile_fabric
from ibsim.routing import compute_lfts, lft_from_dump, read_lft_dump, write_lft_dump

HEADER = re.compile(r"^Unicast lids \[0-(\d+)\] of switch Lid (\d+) guid 0x([0-9a-f]{16}) \('(.*)'\):$")
ENTRY = re.compile(r"^0x([0-9a-f]{4}) (\d{3}) # (Channel Adapter|Switch|Router) "
                   r"portguid 0x([0-9a-f]{16}): '(.*)'$")
TRAILER = re.compile(r"^(\d+) lids dumped$")


def dump_text(fab, lft) -> str:
    buf = io.StringIO()
    write_lft_dump(fab, lft, buf)
    return buf.getvalue()


def test_format_matches_opensm(fabric):
    lft = compute_lfts(fabric, "minhop")
    lines = dump_text(fabric, lft).splitlines()
    top = int(fabric.default_lid.max())
    n_blocks = 0
    for line in lines:
        if (m := HEADER.match(line)):
            n_blocks += 1
            assert int(m.group(1)) == top
        elif (m := TRAILER.match(line)):
            assert int(m.group(1)) == top
        else:
            assert ENTRY.match(line), line
    assert n_blocks == fabric.n_switches
    # the first block: switch leaf1 (lowest GUID), its own LID routed to port 0
    assert lines[0] == ("Unicast lids [0-14] of switch Lid 1 guid 0x0002c90302000000 ('leaf1'):")
    assert "0x0001 000 # Switch portguid 0x0002c90302000000: 'leaf1'" in lines
    assert "0x0007 001 # Channel Adapter portguid 0x0002c90301000001: 'node001 HCA-1'" in lines


def test_round_trip(fabric, tmp_path):
    lft = compute_lfts(fabric, "ftree")
    path = tmp_path / "opensm-lfts.dump"
    write_lft_dump(fabric, lft, path)
    text = path.read_text()
    table = read_lft_dump(text)
    guids = fabric.node_guid[fabric.node_of_switch]
    assert set(table) == {int(g) for g in guids}
    for row, g in enumerate(guids):
        want = {lid: int(p) for lid, p in enumerate(lft[row]) if p != 255}
        assert table[int(g)] == want
    assert np.array_equal(lft_from_dump(fabric, text), lft)


def test_lft_from_dump_translates_lids(fat_tree_k4):
    a = compile_fabric(fat_tree_k4)
    lft = compute_lfts(a, "minhop")
    text = dump_text(a, lft)
    # the same cabling with different LIDs: translate through GUIDs
    b = compile_fabric(fat_tree_k4)
    lid_a_of = a.default_lid
    used = np.unique(lid_a_of[lid_a_of > 0])
    remap = np.zeros(int(used.max()) + 1, dtype=np.uint16)
    remap[used[::-1]] = 100 + np.arange(used.size)         # other LIDs, in another order
    lids_b = remap[lid_a_of]
    assert not np.array_equal(a.default_lid, lids_b)
    mapped = lft_from_dump(b, text, lid=lids_b)
    for lid_a in range(1, int(a.default_lid.max()) + 1):
        p = a.lid_to_port()[lid_a]
        lid_b = lids_b[p]
        assert np.array_equal(mapped[:, lid_b], lft[:, lid_a])


def test_skips_no_route_and_unknown():
    text = ("# comment\n"
            "Unicast lids [0-3] of switch Lid 1 guid 0x0000000000000010 ('sw'):\n"
            "0x0001 000 # Switch portguid 0x0000000000000010: 'sw'\n"
            "0x0003 002 # unknown node and type\n"
            "3 lids dumped\n")
    assert read_lft_dump(text) == {0x10: {1: 0, 3: 2}}


@pytest.mark.parametrize("bad", [
    "Unicast lids [0-3] of switch Lid 1 gid 0x10 ('x'):\n",
    "Unicast lids [0-3] of switch Lid 1 guid 0xzz ('x'):\n",
    "Unicast lids [0-3] of switch Lid 1 guid 0x10 ('x'):\n0x00q1 001 # x\n",
    "Unicast lids [0-3] of switch Lid 1 guid 0x10 ('x'):\n0x0001 abc # x\n",
])
def test_malformed_dump(bad):
    with pytest.raises(FileFormatError, match=r"lfts:\d"):
        read_lft_dump(bad, source="lfts")
