"""Every kind of mistake in a show or mapping file gets an error naming the file, the
line, the key and what was expected."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runtime.check import check_show
from runtime.errors import ConfigError
from runtime.show import load_show

GOOD_MAPPING = '[[map]]\nsource = "lfo:slow"\ntarget = "gen.zoom"\n'


def write_show(tmp_path: Path, text: str, mapping: str = GOOD_MAPPING) -> Path:
    (tmp_path / "m.toml").write_text(mapping)
    path = tmp_path / "show.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str, mapping: str = GOOD_MAPPING) -> str:
    path = write_show(tmp_path, text, mapping)
    with pytest.raises(ConfigError) as info:
        check_show(path)
    return str(info.value)


BASE = 'mappings = ["m.toml"]\n[generator]\nkind = "cppn"\nsize = 32\n'


def test_a_good_show_checks(tmp_path):
    lines = check_show(write_show(tmp_path, BASE + '[[effects]]\nshader = "grade"\n'))
    assert lines[-1] == "ok"
    assert any("1 compiled" in line for line in lines)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        # Not TOML at all: the parser's line and column.
        ('[generator\nkind = "cppn"\n', r"show\.toml: not valid TOML: .*line 1"),
        # An unknown key, with a suggestion.
        (
            '[generator]\nkind = "cppn"\nseeed = 3\n',
            r"show\.toml:3: \[generator\] 'seeed': unknown key \(did you mean 'seed'\?\)",
        ),
        # A value of the wrong type.
        (
            '[generator]\nseed = "seven"\n',
            r"show\.toml:2: \[generator\] 'seed': expected an integer, got 'seven'",
        ),
        # A number out of range.
        ("[output]\nfps = 1000\n", r"show\.toml:2: \[output\] 'fps': expected 1.0\.\.240.0"),
        # A malformed size.
        (
            "[output]\nsize = [1280]\n",
            r"show\.toml:2: \[output\] 'size': expected a size in px: N or \[width, height\]",
        ),
        # An unknown generator kind, with a suggestion.
        (
            '[generator]\nkind = "stylegan3"\n',
            r"'kind': expected one of cppn, stylegan, biggan; got 'stylegan3' "
            r"\(did you mean 'stylegan'\?\)",
        ),
        # A real model with no weights.
        ('[generator]\nkind = "biggan"\n', r"\[generator\]: kind 'biggan' needs 'weights'"),
        # A generator option of the wrong range.
        (
            '[generator]\nkind = "cppn"\nkeyframes = 1\n',
            r"show\.toml:3: \[generator\] 'keyframes': expected 2\.\.64 keyframes",
        ),
        # A mapping file that is not there.
        ('mappings = ["nope.toml"]\n', r"show\.toml:1: top level 'mappings': file not found"),
        # A shader that does not exist, with a suggestion and the list.
        (
            '[[effects]]\nshader = "kaleidoscope"\n',
            r"show\.toml:2: \[effects #1\] 'shader': no shader file .*kaleidoscope\.glsl "
            r"\(did you mean 'kaleido'\?\)",
        ),
        # Two effects with one name.
        (
            '[[effects]]\nshader = "grade"\n[[effects]]\nshader = "grade"\n',
            r"\[effects #2\] 'name': two effects are named 'grade'",
        ),
        # An unknown input.
        ("[inputs.osck]\nport = 1\n", r"\[inputs\] 'osck': unknown input \(did you mean 'osc'\?\)"),
        # A bad key inside an input table.
        (
            "[inputs.osc]\nprot = 9000\n",
            r"show\.toml:2: \[inputs\.osc\] 'prot': unknown key \(did you mean 'port'\?\)",
        ),
        ("[inputs.osc]\nport = 70000\n", r"'port': expected a UDP port 0\.\.65535"),
        # An unknown top-level table.
        ("[outptu]\nfps = 30\n", r"top level 'outptu': unknown key \(did you mean 'output'\?\)"),
    ],
)
def test_show_mistakes(tmp_path, text, pattern):
    message = error_of(tmp_path, text)
    assert re.search(pattern, message), message


@pytest.mark.parametrize(
    ("mapping", "pattern"),
    [
        (
            '[[map]]\nsource = "lfo:slow"\ntarget = "gen.zooom"\n',
            r"m\.toml:3: \[map #1\] 'target': unknown target 'gen\.zooom' "
            r"\(did you mean 'gen\.zoom'\?\)",
        ),
        (
            '[[map]]\nsource = "mdi:cc/1"\ntarget = "gen.zoom"\n',
            r"m\.toml:2: \[map #1\] 'source': unknown source kind 'mdi' in 'mdi:cc/1' "
            r"\(did you mean 'midi'\?\)",
        ),
        (
            '[[map]]\nsource = "lfo:wobble"\ntarget = "gen.zoom"\n',
            r"'source': no LFO named 'wobble'; define it with \[lfo\.wobble\]",
        ),
        (
            '[[map]]\nsource = "osc:fader"\ntarget = "gen.zoom"\n',
            r"an OSC address starts with '/': expected 'osc:/fader'",
        ),
        (
            '[[map]]\nsource = "lfo:slow"\ntarget = "gen.zoom"\ncurve = "bendy"\n',
            r"m\.toml:4: \[map #1\] 'curve': expected a number \(exponent\) or one of linear",
        ),
        (
            '[[map]]\nsource = "lfo:slow"\ntarget = "gen.zoom"\nin = [1, 1]\n',
            r"'in': the input range is empty",
        ),
        (
            '[[map]]\nsource = "lfo:slow"\ntarget = "gen.zoom"\nout = [0, "x"]\n',
            r"'out': expected two numbers \[lo, hi\]",
        ),
        (
            '[[map]]\nsource = "lfo:slow"\ntarget = "gen.zoom"\nenvelope = { atack_s = 1 }\n',
            r"'envelope': unknown key 'atack_s' \(did you mean 'attack_s'\?\)",
        ),
        (
            '[[map]]\nsource = "lfo:slow"\ntarget = "gen.zoom"\none_euro = { min_cutoff_hz = 0 }\n',
            r"'one_euro': 'min_cutoff_hz': expected a number above 0, got 0",
        ),
        (
            '[[map]]\nsource = "lfo:slow"\ntarget = "gen.zoom"\nsmoothing = 1\n',
            r"m\.toml:4: \[map #1\] 'smoothing': unknown key",
        ),
        (
            '[set]\n"gen.zoom" = 100\n',
            r"m\.toml:2: \[set\] 'gen\.zoom': 100\.0 is outside gen\.zoom's range 0\.1\.\.8\.0",
        ),
        (
            '[lfo.x]\nshape = "wobble"\n',
            r"m\.toml:2: \[lfo\.x\] 'shape': expected one of sine, triangle, saw, square, random",
        ),
        ('[[map]]\ntarget = "gen.zoom"\n', r"\[map #1\]: missing required key 'source'"),
    ],
)
def test_mapping_mistakes(tmp_path, mapping, pattern):
    message = error_of(tmp_path, BASE, mapping)
    assert re.search(pattern, message), message


def test_broken_shader_is_named_with_its_line(tmp_path):
    (tmp_path / "broken.glsl").write_text(
        "uniform sampler2D u_input;\nvoid main() {\n    f_color = vec4(nothing, 1.0);\n}\n"
    )
    path = write_show(tmp_path, BASE + '[[effects]]\nshader = "broken.glsl"\n')
    with pytest.raises(Exception, match=r"broken\.glsl:3: .*nothing"):
        check_show(path)


def test_paths_resolve_against_the_show_folder(tmp_path):
    show = load_show(write_show(tmp_path, BASE))
    assert show.mapping_paths == (tmp_path / "m.toml",)
