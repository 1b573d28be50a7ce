"""The C fast path's offsets and constants come from Python, through one generated header.

Changing an offset on one side only fails here: in Python (codec, view,
fabric.state) without regenerating, the committed ``_fastpath_layout.h`` is
stale; in the header (or a build from an old one), the extension's
``_fastpath.LAYOUT`` differs from what :mod:`ibsim.mad.cheader` renders.
"""

from __future__ import annotations

import os

import pytest

from ibsim.mad import cheader
from ibsim.mad import codec as C
from ibsim.mad.server import fast_path_available


def test_committed_header_is_what_the_generator_renders():
    assert cheader.HEADER_PATH.read_text() == cheader.render(), \
        "ibsim/mad/_fastpath_layout.h is stale: run python -m ibsim.mad.cheader"
    assert cheader.main(["--check"]) == 0


def test_a_moved_field_or_constant_changes_the_rendered_header(monkeypatch):
    before = cheader.render()
    off, width = C.PORT_INFO.fields["PortState"]
    monkeypatch.setitem(C.PORT_INFO.fields, "PortState", (off + 4, width))
    assert cheader.fields()["PORT_INFO_PortState"] != (32, 1, 0, 0x0F)
    assert cheader.render() != before
    monkeypatch.undo()
    monkeypatch.setattr(C, "OFF_TID", C.OFF_TID + 1)
    assert cheader.render() != before
    assert cheader.main(["--check"]) == 1


def test_fields_are_read_as_the_codec_reads_them():
    for name, (byte, nbytes, shift, mask) in cheader.fields().items():
        prefix, field = next((p, name[len(p) + 1:]) for p in cheader.LAYOUTS if name.startswith(p + "_"))
        lay = cheader.LAYOUTS[prefix]
        buf = bytearray(lay.size)
        lay.put(buf, field, -1)                      # all ones
        got = (int.from_bytes(buf[byte:byte + nbytes], "big") >> shift) & mask
        assert got == mask == (1 << lay.fields[field][1]) - 1, name
        assert int.from_bytes(buf, "big") == mask << ((lay.size - byte - nbytes) * 8 + shift), name


def test_the_fields_the_c_answers_fill_in():
    f = cheader.fields()
    assert f["PORT_INFO_LID"] == (16, 2, 0, 0xFFFF)
    assert f["PORT_INFO_LocalPortNum"] == (28, 1, 0, 0xFF)
    assert f["PORT_INFO_PortState"] == (32, 1, 0, 0x0F)
    assert f["PORT_INFO_PortPhysicalState"] == (33, 1, 4, 0x0F)
    assert f["SWITCH_INFO_LinearFDBTop"] == (6, 2, 0, 0xFFFF)
    assert [f[f"MLNX_EXT_PORT_INFO_LinkSpeed{x}"][0] for x in ("Supported", "Enabled", "Active")] == [7, 11, 15]


@pytest.mark.skipif(not fast_path_available() and os.environ.get("IBSIM_REQUIRE_FASTPATH") != "1",
                    reason="ibsim.mad._fastpath is not built")
def test_the_built_extension_was_compiled_with_these_values():
    from ibsim.mad import _fastpath
    assert _fastpath.LAYOUT == cheader.values(), "rebuild the extension (setup.py build_ext)"
    assert _fastpath.FRAME == C.FRAME_SIZE
