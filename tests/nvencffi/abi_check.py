"""Compare a cffi FFI's NVENC declarations with NVIDIA's official header, through C.

We walk the FFI (every struct and union with fields, recursively through nested structs,
unions and arrays of them) and generate a C program that prints, computed by the C
compiler from the OFFICIAL header: sizes, alignments, the offset and size of every
field, whether each field's C type is compatible with the type we declared (so function
pointer signatures and element types are checked too), and, for every bit-field, which
bytes of the zeroed struct turn non-zero when the bit-field is set to all ones. Python
computes the same facts from the FFI; ``compare`` lists every difference.

Also compared: enumerator values (and that each of our enums lists exactly the header's
enumerators), our integer #defines, struct version words, GUID bytes and the exported
entry points' signatures.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER_NAME = "nvEncodeAPI.h"


@dataclass
class Expectations:
    """What our side claims, keyed like the probe's output lines."""

    values: dict[str, str] = field(default_factory=dict)
    c_lines: list[str] = field(default_factory=list)  # statements in main()

    def expect(self, key: str, value: Any, c_expr: str, fmt: str = "%llu", cast: str = "(unsigned long long)") -> None:
        self.values[key] = str(value)
        self.c_lines.append(f'printf("%s\\t{fmt}\\n", "{key}", {cast}({c_expr}));')


def _c_type_name(ffi: Any, ctype: Any) -> str:
    """How C spells a cffi type (typedef names and tags are the header's own)."""
    return ffi.getctype(ctype)


def _compatible(c_type: str, ours: str) -> str:
    """C expression: 1 if ``c_type`` is compatible with our type ``ours``.

    cffi does not keep ``const`` in its types (``const char *`` reads back as
    ``char *``), so where our type has a ``char *`` the const-qualified spelling is
    accepted too; no other difference is.
    """
    expr = f"__builtin_types_compatible_p({c_type}, {ours})"
    if "char *" in ours:
        expr += f" || __builtin_types_compatible_p({c_type}, {ours.replace('char *', 'const char *')})"
    return f"({expr})"


def _walk(ffi: Any, ctype: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    """(path, field, type) of every field, nested ones included."""
    out: list[tuple[str, Any, Any]] = []
    for name, fld in ctype.fields:
        path = f"{prefix}.{name}" if prefix else name
        out.append((path, fld, fld.type))
        if fld.bitsize >= 0:
            continue
        t = fld.type
        if t.kind in ("struct", "union") and _is_complete(ffi, t):
            out.extend(_walk(ffi, t, path))
        elif t.kind == "array" and t.item.kind in ("struct", "union") and _is_complete(ffi, t.item):
            out.extend(_walk(ffi, t.item, path + "[0]"))
    return out


def _nonzero_span(data: bytes) -> str:
    nz = [i for i, b in enumerate(data) if b]
    if not nz:
        return "none"
    return f"{nz[0]}:{data[nz[0]:nz[-1] + 1].hex()}"


def _set_path(ffi: Any, obj: Any, path: str, value: int) -> None:
    parts = re.findall(r"[A-Za-z_]\w*|\[\d+\]", path)
    target = obj
    for part in parts[:-1]:
        target = target[int(part[1:-1])] if part.startswith("[") else getattr(target, part)
    setattr(target, parts[-1], value)


def _is_complete(ffi: Any, ctype: Any) -> bool:
    # sizeof() first: it completes lazily-built types (reading .fields of an incomplete
    # type trips an assertion in cffi's backend) and fails for opaque ones.
    incomplete = (getattr(ffi, "error", ValueError), ValueError)  # out-of-line vs in-line FFI
    try:
        ffi.sizeof(ctype)
    except incomplete:
        return False
    return True


def composite_types(ffi: Any) -> list[tuple[str, Any]]:
    """('struct _TAG' / 'union _TAG', ctype) of every non-opaque struct and union."""
    _, structs, unions = ffi.list_types()
    out = []
    for kind, names in (("struct", structs), ("union", unions)):
        for tag in names:
            ctype = ffi.typeof(f"{kind} {tag}")
            if _is_complete(ffi, ctype):
                out.append((f"{kind} {tag}", ctype))
    return out


def opaque_types(ffi: Any) -> list[str]:
    _, structs, _ = ffi.list_types()
    return [tag for tag in structs if not _is_complete(ffi, ffi.typeof(f"struct {tag}"))]


def header_enums(header_text: str) -> dict[str, list[str]]:
    """Enumerator names of every typedef'd enum in the official header, by typedef name."""
    text = re.sub(r"/\*.*?\*/", "", header_text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    enums: dict[str, list[str]] = {}
    for m in re.finditer(r"typedef\s+enum\s+\w*\s*\{(.*?)\}\s*(\w+)\s*;", text, flags=re.S):
        body, name = m.group(1), m.group(2)
        names = [re.match(r"\s*(\w+)", item).group(1) for item in body.split(",") if item.strip()]
        enums[name] = names
    return enums


def build_expectations(ffi: Any, *, defines: list[str], consts: Any, struct_versions: dict[str, int],
                       api_version: int, guid_bytes: dict[str, bytes], exports: dict[str, str]) -> Expectations:
    ex = Expectations()
    for cname, ctype in composite_types(ffi):
        label = cname.split()[1]
        ex.expect(f"sizeof {label}", ffi.sizeof(ctype), f"sizeof({cname})")
        ex.expect(f"alignof {label}", ffi.alignof(ctype), f"_Alignof({cname})")
        for path, fld, ftype in _walk(ffi, ctype, ""):
            key = f"{label}.{path}"
            if fld.bitsize >= 0:
                probe = ffi.new(f"{cname} *")
                signed = not ffi.getctype(ftype).startswith("u")
                _set_path(ffi, probe, path, -1 if signed else (1 << fld.bitsize) - 1)
                ex.values[f"bits {key}"] = _nonzero_span(ffi.buffer(probe)[:])
                ex.c_lines.append(
                    f"{{ {cname} v; memset(&v, 0, sizeof v); v.{path} = -1; "
                    f'span("bits {key}", &v, sizeof v); }}'
                )
                continue
            ex.expect(f"offsetof {key}", ffi.offsetof(ctype, *_offset_args(path)), f"offsetof({cname}, {path})")
            ex.expect(f"sizeof {key}", ffi.sizeof(ftype), f"sizeof((({cname} *)0)->{path})")
            ex.expect(f"type {key}", 1, _compatible(f"__typeof__((({cname} *)0)->{path})", _c_type_name(ffi, ftype)))
    for enum_name in _enum_typedefs(ffi):
        for name, value in sorted(ffi.typeof(enum_name).relements.items()):
            ex.expect(f"enum {enum_name}.{name}", value, name, "%lld", "(long long)")
    for name in defines:
        ex.expect(f"define {name}", getattr(consts, name), name)
    ex.expect("define NVENCAPI_VERSION", api_version, "NVENCAPI_VERSION")
    for name, value in struct_versions.items():
        ex.expect(f"version {name}", value, name)
    for name, raw in guid_bytes.items():
        ex.values[f"guid {name}"] = raw.hex()
        ex.c_lines.append(f'hexdump("guid {name}", &{name}, sizeof {name});')
    for name, c_type in exports.items():
        ex.expect(f"export {name}", 1, _compatible(f"__typeof__(&{name})", c_type))
    return ex


def _offset_args(path: str) -> list[Any]:
    """ffi.offsetof(type, 'a', 'b', 0, 'c') arguments for the dotted path 'a.b[0].c'."""
    args: list[Any] = []
    for part in re.findall(r"[A-Za-z_]\w*|\[\d+\]", path):
        args.append(int(part[1:-1]) if part.startswith("[") else part)
    return args


def _enum_typedefs(ffi: Any) -> list[str]:
    typedefs, _, _ = ffi.list_types()
    return [name for name in typedefs if ffi.typeof(name).kind == "enum"]


PRELUDE = r"""
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "nvEncodeAPI.h"

static void hexdump(const char *key, const void *p, size_t n) {
    const unsigned char *b = p;
    printf("%s\t", key);
    for (size_t i = 0; i < n; i++) printf("%02x", b[i]);
    printf("\n");
}

static void span(const char *key, const void *p, size_t n) {
    const unsigned char *b = p;
    size_t first = n, last = 0;
    for (size_t i = 0; i < n; i++) if (b[i]) { if (first == n) first = i; last = i; }
    if (first == n) { printf("%s\tnone\n", key); return; }
    printf("%s\t%zu:", key, first);
    for (size_t i = first; i <= last; i++) printf("%02x", b[i]);
    printf("\n");
}
"""


def run_probe(ex: Expectations, header_dir: Path, workdir: Path, cc: str = "cc") -> dict[str, str]:
    """Compile and run the probe against the official header; its output as a dict."""
    source = workdir / "abi_probe.c"
    body = "\n    ".join(ex.c_lines)
    source.write_text(f"{PRELUDE}\nint main(void) {{\n    {body}\n    return 0;\n}}\n")
    binary = workdir / "abi_probe"
    compiled = subprocess.run(
        [cc, "-std=gnu11", "-w", "-I", str(header_dir), str(source), "-o", str(binary)],
        capture_output=True, text=True, timeout=300,
    )
    if compiled.returncode != 0:
        raise AssertionError(f"the ABI probe does not compile against {header_dir / HEADER_NAME}:\n{compiled.stderr[-4000:]}")
    ran = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60, check=True)
    out: dict[str, str] = {}
    for line in ran.stdout.splitlines():
        key, _, value = line.partition("\t")
        out[key] = value
    return out


def compare(ex: Expectations, actual: dict[str, str]) -> list[str]:
    """Every key whose value differs (or is missing), as 'key: ours=... header=...'."""
    problems = []
    for key, ours in ex.values.items():
        theirs = actual.get(key)
        if theirs != ours:
            problems.append(f"{key}: ours={ours} header={theirs}")
    return problems
