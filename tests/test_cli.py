"""python -m ibsim topo / routes in a subprocess: outputs and exit codes."""

import json
import subprocess
import sys

import pytest


def ibsim(*args, check=True):
    p = subprocess.run([sys.executable, "-m", "ibsim", *args], capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}: {p.stderr}")
    return p


def test_generate_info_convert_round_trip(tmp_path):
    topo = tmp_path / "ft.topo"
    ibsim("topo", "generate", "fat-tree", "--radix", "8", "--levels", "2", "-o", str(topo))
    info = json.loads(ibsim("topo", "info", str(topo), "--json").stdout)
    assert (info["switches"], info["cas"], info["links"], info["connected_ports"]) == (12, 32, 64, 128)
    assert info["speeds"] == {"4xEDR": 64}
    yml = tmp_path / "ft.yml"
    ibsim("topo", "convert", str(topo), str(yml))
    info2 = json.loads(ibsim("topo", "info", str(yml), "--json").stdout)
    assert {k: info2[k] for k in ("switches", "cas", "links", "speeds")} == \
        {k: info[k] for k in ("switches", "cas", "links", "speeds")}
    text = ibsim("topo", "info", str(yml)).stdout
    assert "switches" in text and "4xEDR: 64" in text


@pytest.mark.parametrize("gen,args", [
    ("torus", ["--dims", "3,3", "--hosts-per-switch", "2"]),
    ("dragonfly", ["--a", "4", "--p", "2", "--h", "2"]),
    ("leaf-spine", ["--leaves", "4", "--spines", "2", "--oversubscription", "2:1"]),
    ("xgft", ["--m", "4,4", "--w", "1,2"]),
    ("single-switch", ["--ports", "8"]),
])
def test_every_generator_from_the_command_line(tmp_path, gen, args):
    out = tmp_path / "t.net"
    ibsim("topo", "generate", gen, *args, "--speed", "HDR", "-o", str(out))
    info = json.loads(ibsim("topo", "info", str(out), "--json").stdout)
    assert info["links"] > 0 and list(info["speeds"]) == ["4xHDR"]


def test_routes_json_and_lft_dump(tmp_path):
    topo = tmp_path / "ft.topo"
    ibsim("topo", "generate", "fat-tree", "--radix", "8", "-o", str(topo))
    dump = tmp_path / "lfts.dump"
    m = json.loads(ibsim("routes", str(topo), "--engine", "ftree", "--json", "--dump-lfts", str(dump)).stdout)
    assert m["unreachable"] == 0 and m["loops"] == 0
    assert m["max_hops"] == 4
    assert set(m["link_load"]) >= {"max", "mean"}
    assert "Unicast lids" in dump.read_text()


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    p = ibsim("routes", str(tmp_path / "missing.topo"), check=False)
    assert p.returncode == 2
    assert p.stderr.startswith("ibsim: error:") and "missing.topo" in p.stderr
    assert "Traceback" not in p.stderr
    p = ibsim("topo", "generate", "fat-tree", "--radix", "7", "-o", str(tmp_path / "x.topo"), check=False)
    assert p.returncode == 2 and "even" in p.stderr
    topo = tmp_path / "ft.topo"
    ibsim("topo", "generate", "fat-tree", "--radix", "4", "-o", str(topo))
    p = ibsim("routes", str(topo), "--engine", "upnd", check=False)
    assert p.returncode == 2 and "did you mean 'updn'" in p.stderr
    p = ibsim("topo", "generate", "fat-tree", "-o", str(tmp_path / "x.txt"), check=False)
    assert p.returncode == 2 and ".topo" in p.stderr
