"""Compare a cffi FFI's declarations with a vendor's official C header, through C.

Both of our bindings (nvencffi, nvjpegffi) run cffi in out-of-line ABI mode, where no
compiler ever checks the declarations: a wrong field would only show as garbage in the
driver. So we walk the FFI (every struct and union with fields, tagged or anonymous,
recursively through nested structs, unions and arrays of them) and generate a C program
that prints, computed by the C compiler from the OFFICIAL header: sizes, alignments,
the offset and size of every field, whether each field's C type is compatible with the
type we declared (so function-pointer signatures and element types are checked too),
and, for every bit-field, which bytes of the zeroed struct turn non-zero when the
bit-field is set to all ones. Python computes the same facts from the FFI;
:func:`compare` lists every difference.

Also available, each one call: enumerator values (every enum typedef we declare),
integer ``#define`` values, the bytes of any object (GUIDs), any integer expression
(version words), and the C type of the library's exported functions.

A binding's test builds its :class:`Expectations` from these pieces, then
:func:`run_probe` compiles the probe against the official header and :func:`compare`
says what differs. The per-binding tests stay thin: tests/nvencffi/abi_check.py and
tests/nvjpegffi/test_abi.py.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Expectations:
    """What our side claims, keyed like the probe's output lines."""

    values: dict[str, str] = field(default_factory=dict)
    c_lines: list[str] = field(default_factory=list)  # statements in main()

    def expect(self, key: str, value: Any, c_expr: str, fmt: str = "%llu", cast: str = "(unsigned long long)") -> None:
        """Claim that the C expression ``c_expr`` evaluates to ``value``."""
        self.values[key] = str(value)
        self.c_lines.append(f'printf("%s\\t{fmt}\\n", "{key}", {cast}({c_expr}));')

    def expect_bytes(self, key: str, raw: bytes, c_object: str) -> None:
        """Claim that the C object ``c_object`` (an lvalue) holds exactly ``raw``."""
        self.values[key] = raw.hex()
        self.c_lines.append(f'hexdump("{key}", &{c_object}, sizeof {c_object});')

    def kinds(self) -> set[str]:
        """The kinds of fact claimed ('sizeof', 'enum', ...): the first word of each key."""
        return {key.split()[0] for key in self.values}


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
    """(C name, ctype) of every non-opaque struct and union.

    Tagged ones are named ``struct _TAG`` / ``union _TAG``; anonymous ones reached
    through a typedef (``typedef struct {...} nvjpegImage_t;``) by the typedef name.
    """
    typedefs, structs, unions = ffi.list_types()
    out = []
    for kind, names in (("struct", structs), ("union", unions)):
        for tag in names:
            ctype = ffi.typeof(f"{kind} {tag}")
            if _is_complete(ffi, ctype):
                out.append((f"{kind} {tag}", ctype))
    for name in typedefs:
        ctype = ffi.typeof(name)
        if ctype.kind in ("struct", "union") and ffi.getctype(ctype) == name and _is_complete(ffi, ctype):
            out.append((name, ctype))
    return out


def opaque_types(ffi: Any) -> list[str]:
    """Tags of the structs we declare without fields (handles the library owns)."""
    _, structs, _ = ffi.list_types()
    return [tag for tag in structs if not _is_complete(ffi, ffi.typeof(f"struct {tag}"))]


def enum_typedefs(ffi: Any) -> list[str]:
    """Every typedef name of ours that names an enum."""
    typedefs, _, _ = ffi.list_types()
    return [name for name in typedefs if ffi.typeof(name).kind == "enum"]


def header_enums(header_text: str) -> dict[str, list[str]]:
    """Enumerator names of every typedef'd enum in a header's text, by typedef name."""
    text = re.sub(r"/\*.*?\*/", "", header_text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    enums: dict[str, list[str]] = {}
    for m in re.finditer(r"typedef\s+enum\s+\w*\s*\{(.*?)\}\s*(\w+)\s*;", text, flags=re.S):
        body, name = m.group(1), m.group(2)
        names = [re.match(r"\s*(\w+)", item).group(1) for item in body.split(",") if item.strip()]
        enums[name] = names
    return enums


def defines_in(text: str) -> list[str]:
    """Names of the ``#define NAME value`` lines of a header's text."""
    return re.findall(r"^#define\s+(\w+)\s", text, flags=re.M)


def exports_in(text: str, return_type: str) -> dict[str, str]:
    """Our one-line function declarations returning ``return_type``, as C function-pointer
    type names: ``{"f": "ret (*)(args)"}``. Read from the header text, so ``const`` is
    kept exactly as we wrote it (cffi drops it)."""
    out = {}
    pattern = rf"^({re.escape(return_type)})\s+(\w+)\((.*)\);"
    for ret, name, args in re.findall(pattern, text, flags=re.M):
        out[name] = f"{ret} (*)({args})"
    return out


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


def _path_parts(path: str) -> list[str]:
    return re.findall(r"[A-Za-z_]\w*|\[\d+\]", path)


def _offset_args(path: str) -> list[Any]:
    """ffi.offsetof(type, 'a', 'b', 0, 'c') arguments for the dotted path 'a.b[0].c'."""
    return [int(p[1:-1]) if p.startswith("[") else p for p in _path_parts(path)]


def _set_path(obj: Any, path: str, value: int) -> None:
    parts = _path_parts(path)
    target = obj
    for part in parts[:-1]:
        target = target[int(part[1:-1])] if part.startswith("[") else getattr(target, part)
    setattr(target, parts[-1], value)


def _nonzero_span(data: bytes) -> str:
    nz = [i for i, b in enumerate(data) if b]
    if not nz:
        return "none"
    return f"{nz[0]}:{data[nz[0] : nz[-1] + 1].hex()}"


def expect_layouts(ex: Expectations, ffi: Any) -> None:
    """Size, alignment and every field (offset, size, type, bit-field bits) of every
    complete struct and union we declare."""
    for cname, ctype in composite_types(ffi):
        label = cname.split()[-1]
        ex.expect(f"sizeof {label}", ffi.sizeof(ctype), f"sizeof({cname})")
        ex.expect(f"alignof {label}", ffi.alignof(ctype), f"_Alignof({cname})")
        for path, fld, ftype in _walk(ffi, ctype, ""):
            key = f"{label}.{path}"
            if fld.bitsize >= 0:
                probe = ffi.new(f"{cname} *")
                signed = not ffi.getctype(ftype).startswith("u")
                _set_path(probe, path, -1 if signed else (1 << fld.bitsize) - 1)
                ex.values[f"bits {key}"] = _nonzero_span(ffi.buffer(probe)[:])
                ex.c_lines.append(
                    f'{{ {cname} v; memset(&v, 0, sizeof v); v.{path} = -1; span("bits {key}", &v, sizeof v); }}'
                )
                continue
            ex.expect(f"offsetof {key}", ffi.offsetof(ctype, *_offset_args(path)), f"offsetof({cname}, {path})")
            ex.expect(f"sizeof {key}", ffi.sizeof(ftype), f"sizeof((({cname} *)0)->{path})")
            ex.expect(f"type {key}", 1, _compatible(f"__typeof__((({cname} *)0)->{path})", ffi.getctype(ftype)))


def expect_enums(ex: Expectations, ffi: Any) -> None:
    """The value of every enumerator of every enum typedef we declare."""
    for enum_name in enum_typedefs(ffi):
        for name, value in sorted(ffi.typeof(enum_name).relements.items()):
            ex.expect(f"enum {enum_name}.{name}", value, name, "%lld", "(long long)")


def expect_defines(ex: Expectations, names: Iterable[str], consts: Any) -> None:
    """Our integer ``#define`` values (``consts``: where cffi exposes them, ``ffi.dlopen(None)``)."""
    for name in names:
        ex.expect(f"define {name}", getattr(consts, name), name)


def expect_exports(ex: Expectations, exports: dict[str, str]) -> None:
    """That each exported function's C type is compatible with the one we declared."""
    for name, c_type in exports.items():
        ex.expect(f"export {name}", 1, _compatible(f"__typeof__(&{name})", c_type))


PRELUDE = r"""
#include <stddef.h>
#include <stdio.h>
#include <string.h>
{includes}

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


def run_probe(
    ex: Expectations,
    *,
    headers: Sequence[str],
    include_dirs: Sequence[Path],
    workdir: Path,
    cc: str = "cc",
) -> dict[str, str]:
    """Compile the probe against the official ``headers`` (found in ``include_dirs``),
    run it, and return its output as a dict."""
    source = workdir / "abi_probe.c"
    includes = "\n".join(f'#include "{name}"' for name in headers)
    body = "\n    ".join(ex.c_lines)
    source.write_text(PRELUDE.replace("{includes}", includes) + f"\nint main(void) {{\n    {body}\n    return 0;\n}}\n")
    binary = workdir / "abi_probe"
    compiled = subprocess.run(
        [cc, "-std=gnu11", "-w", *(f"-I{d}" for d in include_dirs), str(source), "-o", str(binary)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if compiled.returncode != 0:
        raise AssertionError(
            f"the ABI probe does not compile against {', '.join(headers)} in {[str(d) for d in include_dirs]}:\n"
            f"{compiled.stderr[-4000:]}"
        )
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
