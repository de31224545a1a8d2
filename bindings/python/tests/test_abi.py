"""The ctypes structures have the C header's layout: a C program built
against include/wrd_capture.h prints sizeof and offsetof of every field."""

import ctypes
import subprocess

from conftest import ROOT

from wrd_capture import _ffi


def c_layout(tmp_path):
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include <wrd_capture.h>',
             'int main(void) {']
    for st in _ffi.STRUCTS:
        n = st.__name__
        lines.append(f'printf("{n} sizeof %zu\\n", sizeof(struct {n}));')
        for f, _ in st._fields_:
            lines.append(f'printf("{n} {f} %zu\\n", offsetof(struct {n}, {f}));')
    lines.append("return 0; }")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run(["cc", "-std=c99", "-I", str(ROOT / "include"), str(src), "-o", str(exe)],
                   check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return {tuple(l.split()[:2]): int(l.split()[2]) for l in out.splitlines()}


def test_every_struct_matches_the_header(tmp_path):
    c = c_layout(tmp_path)
    checked = 0
    for st in _ffi.STRUCTS:
        n = st.__name__
        assert ctypes.sizeof(st) == c[(n, "sizeof")], n
        for f, _ in st._fields_:
            assert getattr(st, f).offset == c[(n, f)], f"{n}.{f}"
            checked += 1
    assert checked > 80


def test_status_names_match_the_library():
    import wrd_capture

    assert wrd_capture.status_message(0) == "success"
    assert wrd_capture.status_message(_ffi.WRD_ERR_NODE_NOT_FOUND) == (
        "the target node does not exist or went away"
    )
    assert _ffi.STATUS_NAMES[19] == "WRD_ERR_TIMEOUT"
    assert wrd_capture.status_message(20) == "unknown status"
