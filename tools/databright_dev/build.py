"""Compile every deployable Vyper contract into a committed JSON artifact and typed clients.

``python -m databright_dev.build`` writes ``src/databright/chain/artifacts/<name>.json`` for
each ``contracts/*.vy`` (the modules under ``contracts/modules/`` and the interfaces under
``contracts/interfaces/`` are imported, not deployed), and generates
``src/databright/chain/clients.py`` from the same compile: a client class per contract, a
``NamedTuple`` per struct its views return (fields named from the ABI's components), an
``IntEnum`` per group of status constants, an ``IntFlag`` per Vyper ``flag``, and a
``<Contract>Constants`` class holding every constant of the contract and of its own modules as
the compiler folded them, plus the bounds of its parameters (``String[25]`` -> ``NAME_MAX``).
``python -m databright_dev.build --check`` exits non-zero when an artifact or the clients are
missing or stale; the test suite runs the same check.

A full compile takes tens of seconds, so a check that finds everything fresh records a
fingerprint of all it depends on (every file under ``contracts/``, the installed snekmate
sources, the vyper version, this module, and the committed artifacts and clients) in
``.cache/databright-build/fresh`` (ignored by git); while that fingerprint still matches, the
answer is the same and the compile is skipped. Any change to an input or an output changes the
fingerprint and compiles again; ``--no-cache`` (or ``DATABRIGHT_BUILD_CACHE=0``) always compiles.

Only this module imports the compiler: the application reads artifacts, so it runs without
vyper installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from databright.chain.artifacts import ARTIFACTS_DIR

__all__ = [
    "ARTIFACTS_DIR",
    "CLIENTS_PATH",
    "CONTRACTS_DIR",
    "ENUM_GROUPS",
    "FRESH_CACHE",
    "compile_contract",
    "fingerprint",
    "render_clients",
    "stale_artifacts",
    "write_artifacts",
]

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = ROOT / "contracts"
CLIENTS_PATH = ARTIFACTS_DIR.parent / "clients.py"
OUTPUTS = ["abi", "bytecode", "bytecode_runtime", "blueprint_bytecode", "integrity"]
FRESH_CACHE = ROOT / ".cache" / "databright-build" / "fresh"

# Vyper has no enum of plain values (a ``flag`` is a bit set): statuses are ``uint8``
# constants sharing a prefix. Each group here becomes an IntEnum of that name, its members the
# constants ``<PREFIX>_<MEMBER>`` of the type given (which keeps ``STATUS_SHIFT`` out).
ENUM_GROUPS = {"STATUS": ("ProposalStatus", "uint8")}
# The same prefix in another contract names another enum.
ENUM_NAMES = {("WeightSale", "STATUS"): "SaleStatus"}


@dataclass(frozen=True)
class Constant:
    name: str
    value: Any  # int, bool, str, or bytes
    type: str  # the Vyper type; "" for a parameter bound
    note: str = ""


@dataclass(frozen=True)
class Interface:
    """What the ABI does not say, read from the compiler's annotated AST."""

    constants: list[Constant] = field(default_factory=list)
    flags: dict[str, dict[str, int]] = field(default_factory=dict)
    # function name -> one struct tree per output (see ``_struct_tree``)
    returns: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Artifact:
    name: str
    body: dict[str, Any]
    interface: Interface = field(default_factory=Interface, compare=False)

    @property
    def path(self) -> Path:
        return ARTIFACTS_DIR / f"{self.name}.json"

    def dumps(self) -> str:
        return json.dumps(self.body, indent=1, sort_keys=True) + "\n"


def deployables(contracts_dir: Path = CONTRACTS_DIR) -> list[Path]:
    return sorted(contracts_dir.glob("*.vy"))


def compile_contract(source: Path) -> Artifact:
    """Compile ``source`` (the working directory must be its folder, as vyper resolves it)."""
    import vyper
    from vyper.cli.vyper_compile import get_search_paths
    from vyper.compiler import outputs_from_compiler_data
    from vyper.compiler.input_bundle import FileInput, FilesystemInputBundle
    from vyper.compiler.phases import CompilerData
    from vyper.compiler.settings import Settings, get_global_settings

    # What ``vyper.cli.vyper_compile.compile_files`` does, keeping the CompilerData so that its
    # annotated AST can be read too. The search path holds the source's folder (our modules
    # and interfaces); snekmate is found on sys.path, where pip installed it.
    bundle = FilesystemInputBundle(get_search_paths([str(source.parent)], True))
    file = bundle.load_file(Path(source.relative_to(source.parent)))
    assert isinstance(file, FileInput)
    data = CompilerData(file, bundle, settings=get_global_settings() or Settings())
    result = outputs_from_compiler_data(data, OUTPUTS)
    body = {
        "contract_name": source.stem,
        "source_path": str(source.relative_to(ROOT))
        if source.is_relative_to(ROOT)
        else source.name,
        "compiler": f"vyper {vyper.__version__}",
        "source_hash": result["integrity"],
        "abi": result["abi"],
        "bytecode": result["bytecode"],
        "bytecode_runtime": result["bytecode_runtime"],
        "blueprint_bytecode": result["blueprint_bytecode"],
    }
    return Artifact(source.stem, body, _interface(data, source.parent.resolve()))


def _own_modules(module_t: Any, root: Path) -> list[Any]:
    """The contract's module and the modules it imports from our sources (not snekmate)."""
    out, seen, todo = [], set(), [module_t]
    while todo:
        t = todo.pop(0)
        path = Path(t._module.resolved_path)
        if id(t) in seen or not path.resolve().is_relative_to(root):
            continue
        seen.add(id(t))
        out.append(t)
        todo.extend(info.module_t for info in t.imported_modules.values())
    return out


def _folded(node: Any) -> Any:
    import vyper.ast.nodes as vy

    value = node.get_folded_value()
    if isinstance(value, vy.Hex):
        return bytes.fromhex(value.value.removeprefix("0x"))
    if isinstance(value, vy.Int | vy.NameConstant | vy.Str | vy.Bytes):
        return value.value
    raise TypeError(f"constant of unsupported kind {type(value).__name__}")


def _interface(data: Any, root: Path) -> Interface:
    from vyper.semantics.types import BytesT, DArrayT, FlagT, StringT

    module_t = data.annotated_vyper_module._metadata["type"]
    constants: dict[str, Constant] = {}

    def add(c: Constant) -> None:
        prior = constants.get(c.name)
        if prior is not None and prior.value != c.value:
            raise ValueError(f"{c.name} is {prior.value!r} in one module, {c.value!r} in another")
        constants.setdefault(c.name, c)

    flags: dict[str, dict[str, int]] = {}
    for t in _own_modules(module_t, root):
        for name, var in t.variables.items():
            if var.modifiability.name == "CONSTANT":
                add(Constant(name.lstrip("_"), _folded(var.decl_node.value), str(var.typ)))
        for node in t.flag_defs:
            flag = FlagT.from_FlagDef(node)
            flags[flag._id] = {m: 1 << i for m, i in flag._flag_members.items()}
    for fn in module_t.exposed_functions:
        for arg in fn.arguments:
            if isinstance(arg.typ, StringT | BytesT | DArrayT):
                bound = arg.typ.count if isinstance(arg.typ, DArrayT) else arg.typ.length
                name = f"{arg.name.strip('_').upper()}_MAX"
                add(Constant(name, bound, "", f"{fn.name}({arg.name}: {arg.typ})"))
    returns = {
        fn.name: _struct_tree(fn.return_type)
        for fn in module_t.exposed_functions
        if fn.return_type is not None
    }
    return Interface(list(constants.values()), flags, returns)


def _struct_tree(typ: Any) -> Any:
    """The struct names inside a type, shaped like its ABI: ``{"struct": name, "members":
    [...]}`` for a struct, ``{"items": tree}`` for an array, ``{"members": [...]}`` for a tuple,
    ``None`` for anything else."""
    from vyper.semantics.types import DArrayT, SArrayT, StructT, TupleT

    if isinstance(typ, StructT):
        return {"struct": typ._id, "members": [_struct_tree(t) for t in typ.tuple_members()]}
    if isinstance(typ, DArrayT | SArrayT):
        items = _struct_tree(typ.value_type)
        return None if items is None else {"items": items}
    if isinstance(typ, TupleT):
        members = [_struct_tree(t) for t in typ.member_types]
        return {"members": members} if any(m is not None for m in members) else None
    return None


def _compile_all() -> list[Artifact]:
    cwd = os.getcwd()
    os.chdir(CONTRACTS_DIR)  # vyper resolves the input file relative to the working directory
    try:
        return [compile_contract(CONTRACTS_DIR / p.name) for p in deployables()]
    finally:
        os.chdir(cwd)


# --- clients.py --------------------------------------------------------------------------

_PY_TYPES = {"address": "str", "bool": "bool", "string": "str"}
_SHADOWS = "  # type: ignore[assignment]  # a field named like a tuple method (index, count)"
_RAW = "@raw@"  # stands for the decoded value while a conversion is being spelled


@dataclass
class _Render:
    """The module being generated: NamedTuples are shared by name across contracts."""

    structs: dict[str, tuple[list[tuple[str, str]], str]] = field(default_factory=dict)
    struct_order: list[str] = field(default_factory=list)

    def py_type(self, spec: dict[str, Any], tree: Any = None) -> str:
        t: str = spec["type"]
        if t.endswith("]"):
            inner = dict(spec, type=t[: t.rindex("[")])
            return f"list[{self.py_type(inner, tree['items'] if tree else None)}]"
        if t == "tuple":
            members = tree["members"] if tree else [None] * len(spec["components"])
            if tree and "struct" in tree:
                return self.struct(tree["struct"], spec["components"], members)
            parts = [self.py_type(c, m) for c, m in zip(spec["components"], members, strict=True)]
            return f"tuple[{', '.join(parts)}]"
        if t in _PY_TYPES:
            return _PY_TYPES[t]
        if t.startswith(("uint", "int")):
            return "int"
        if t.startswith("bytes"):
            return "bytes"
        return "Any"

    def struct(self, name: str, components: list[dict[str, Any]], members: list[Any]) -> str:
        fields = [(c["name"], self.py_type(c, m)) for c, m in zip(components, members, strict=True)]
        convert = self.converter(components, members)
        known = self.structs.get(name)
        if known is not None and known[0] != fields:
            raise ValueError(f"two different structs are called {name}")
        if known is None:
            self.structs[name] = (fields, convert)
            self.struct_order.append(name)
        return name

    def convert(self, spec: dict[str, Any], tree: Any, expr: str, depth: int = 0) -> str:
        """An expression turning ``expr`` (as ContractClient.call decodes it) into the type
        ``py_type`` names: structs become their NamedTuple, at any depth."""
        if tree is None:
            return expr
        t: str = spec["type"]
        if t.endswith("]"):
            inner = dict(spec, type=t[: t.rindex("[")])
            var = f"v{depth}"
            return f"[{self.convert(inner, tree['items'], var, depth + 1)} for {var} in {expr}]"
        if "struct" in tree:
            return f"{tree['struct']}.from_abi({expr})"
        parts = [
            self.convert(c, m, f"{expr}[{i}]", depth)
            for i, (c, m) in enumerate(zip(spec["components"], tree["members"], strict=True))
        ]
        return f"({', '.join(parts)},)"

    def converter(self, components: list[dict[str, Any]], members: list[Any]) -> str:
        if all(m is None for m in members):
            return "cls(*value)"
        parts = [
            self.convert(c, m, f"value[{i}]")
            for i, (c, m) in enumerate(zip(components, members, strict=True))
        ]
        return f"cls({', '.join(parts)})"

    def render_structs(self) -> str:
        out = []
        for name in self.struct_order:
            fields, convert = self.structs[name]
            lines = [
                f"class {name}(NamedTuple):",
                f'    """``struct {name}``, as the views that return it decode it."""',
                "",
                *(f"    {n}: {t}{_SHADOWS if n in dir(tuple) else ''}" for n, t in fields),
                "",
                "    @classmethod",
                f"    def from_abi(cls, value: Any) -> {name}:",
                f"        return {convert}",
            ]
            out.append("\n".join(lines))
        return "\n\n\n".join(out)


def _literal(value: Any) -> str:
    if isinstance(value, bytes):
        return f'bytes.fromhex("{value.hex()}")'
    if isinstance(value, bool) or not isinstance(value, int):
        return repr(value)
    if (value >= 0xFF and value & (value + 1) == 0) or (
        value >= 2**32 and value & (value - 1) == 0
    ):
        return hex(value)  # masks, maxima and high bits read better in hex
    return f"{value:_}"


def _constants_class(name: str, constants: list[Constant]) -> str:
    lines = [
        f"class {name}Constants:",
        f'    """{name}\'s constants as the compiler folded them (those of its modules and the',
        "    private ones too, without a leading ``_``), and the bounds of its parameters",
        '    (``<PARAM>_MAX``). Read them here; never restate them."""',
        "",
    ]
    for c in constants:
        note = f"  # {c.note}" if c.note else ""
        lines.append(f"    {c.name}: Final = {_literal(c.value)}{note}")
    return "\n".join(lines)


def _enums(artifacts: list[Artifact]) -> list[str]:
    out: dict[str, str] = {}
    for a in artifacts:
        for prefix, (default_name, vyper_type) in ENUM_GROUPS.items():
            enum_name = ENUM_NAMES.get((a.name, prefix), default_name)
            members = [
                (c.name[len(prefix) + 1 :], c.value)
                for c in a.interface.constants
                if c.name.startswith(prefix + "_") and c.type == vyper_type
            ]
            if not members:
                continue
            text = "\n".join(
                [
                    f"class {enum_name}(IntEnum):",
                    f'    """``{prefix}_*`` constants of {a.name}."""',
                    "",
                    *(f"    {m} = {v}" for m, v in members),
                ]
            )
            if out.get(enum_name, text) != text:
                raise ValueError(f"{enum_name} differs between contracts")
            out[enum_name] = text
        for flag, members_ in a.interface.flags.items():
            text = "\n".join(
                [
                    f"class {flag}(IntFlag):",
                    f'    """``flag {flag}`` of {a.name}."""',
                    "",
                    *(f"    {m} = {v}" for m, v in members_.items()),
                ]
            )
            if out.get(flag, text) != text:
                raise ValueError(f"flag {flag} differs between contracts")
            out[flag] = text
    return list(out.values())


def _client_class(a: Artifact, r: _Render) -> str:
    lines = [
        f"class {a.name}Client(ContractClient):",
        f'    """Typed client of {a.name} (generated from its artifact)."""',
        "",
    ]
    seen: set[str] = set()
    functions = (e for e in a.body["abi"] if e.get("type") == "function")
    for fn in sorted(functions, key=lambda e: e["name"]):
        if fn["name"] in seen:  # overloads: the generic call/transact handle them
            continue
        seen.add(fn["name"])
        params = [(p["name"] or f"arg{i}", r.py_type(p)) for i, p in enumerate(fn["inputs"])]
        sig = ", ".join(["self", *(f"{n}: {t}" for n, t in params)])
        args = ", ".join([f'"{fn["name"]}"', *(n for n, _ in params)])
        if fn.get("stateMutability") in ("view", "pure"):
            outs = fn.get("outputs", [])
            tree = a.interface.returns.get(fn["name"])
            call = f"self.call({args})"
            if not outs:
                lines += [f"    def {fn['name']}({sig}) -> None:", f"        {call}", ""]
                continue
            spec = outs[0] if len(outs) == 1 else {"type": "tuple", "components": outs}
            ret = r.py_type(spec, tree)
            converted = r.convert(spec, tree, _RAW)
            if converted == _RAW:
                body = [f"return cast({ret!r}, {call})"]
            elif converted.count(_RAW) == 1:
                body = [f"return {converted.replace(_RAW, call)}"]
            else:
                body = [f"value = {call}", f"return {converted.replace(_RAW, 'value')}"]
            lines += [f"    def {fn['name']}({sig}) -> {ret}:", *(f"        {b}" for b in body), ""]
        else:
            payable = fn.get("stateMutability") == "payable"
            extra = ", value: int = 0" if payable else ""
            pass_value = ", value=value" if payable else ""
            lines += [
                f"    def {fn['name']}({sig}{extra}, gas: int | None = None) -> Receipt:",
                f"        return self.transact({args}{pass_value}, gas=gas)",
                "",
            ]
    return "\n".join(lines)


def render_clients(artifacts: list[Artifact]) -> str:
    r = _Render()
    clients = [_client_class(a, r) for a in artifacts]  # collects the structs as it goes
    enums = _enums(artifacts)
    constants = [_constants_class(a.name, a.interface.constants) for a in artifacts]
    names = [f"{a.name}Client" for a in artifacts] + [f"{a.name}Constants" for a in artifacts]
    names += [e.split("(", 1)[0].removeprefix("class ") for e in enums] + r.struct_order
    header = [
        '"""Typed contract clients, generated from the artifacts by ``databright_dev.build``.',
        "",
        "Do not edit: run ``make artifacts``. A test fails when this file is stale.",
        '"""',
        "",
        "# ruff: noqa",
        "from __future__ import annotations",
        "",
        "from enum import IntEnum, IntFlag",
        "from typing import Any, Final, NamedTuple, cast",
        "",
        "from databright.chain.contract import ContractClient",
        "from databright.chain.events import Receipt",
        "",
        f"__all__ = {sorted(names)!r}",
    ]
    blocks = [*constants, *enums, r.render_structs(), *clients]
    return "\n".join(header) + "\n\n\n" + "\n\n\n".join(b for b in blocks if b).rstrip() + "\n"


def write_artifacts() -> list[Path]:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    artifacts = _compile_all()
    names = {a.name for a in artifacts}
    for old in ARTIFACTS_DIR.glob("*.json"):
        if old.stem not in names:
            old.unlink()
    for a in artifacts:
        a.path.write_text(a.dumps())
    CLIENTS_PATH.write_text(render_clients(artifacts))
    if _cache_enabled(True):
        _remember_fresh()  # written from this very compile: fresh by construction
    return [a.path for a in artifacts] + [CLIENTS_PATH]


def _hash_tree(h: Any, label: str, folder: Path) -> None:
    h.update(f"\0tree {label}\0".encode())
    if not folder.is_dir():
        h.update(b"missing")
        return
    for path in sorted(
        p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    ):
        h.update(f"\0{path.relative_to(folder).as_posix()}\0".encode())
        h.update(path.read_bytes())


def fingerprint() -> str:
    """A digest of everything a freshness verdict depends on: the compiler's inputs (our
    contracts, snekmate's sources, the vyper version, this module's code) and the committed
    outputs (artifacts and clients). Equal digests give equal verdicts."""
    import vyper

    h = hashlib.sha256()
    h.update(f"vyper {vyper.__version__}\0".encode())
    h.update(Path(__file__).read_bytes())
    _hash_tree(h, "contracts", CONTRACTS_DIR)
    try:
        import snekmate

        for folder in sorted(snekmate.__path__):
            _hash_tree(h, "snekmate", Path(folder))
    except ImportError:
        h.update(b"\0no snekmate")
    _hash_tree(h, "artifacts", ARTIFACTS_DIR)
    h.update(b"\0clients\0")
    h.update(CLIENTS_PATH.read_bytes() if CLIENTS_PATH.exists() else b"missing")
    return h.hexdigest()


def _cache_enabled(use_cache: bool) -> bool:
    return use_cache and os.environ.get("DATABRIGHT_BUILD_CACHE", "1") != "0"


def _remember_fresh() -> None:
    """Record that the current inputs and outputs agree (best effort: a read-only checkout
    just compiles every time)."""
    try:
        FRESH_CACHE.parent.mkdir(parents=True, exist_ok=True)
        tmp = FRESH_CACHE.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(fingerprint() + "\n")
        tmp.replace(FRESH_CACHE)
    except OSError:
        pass


def stale_artifacts(use_cache: bool = True) -> list[str]:
    """Names of contracts whose committed artifact differs from a fresh compile (or is missing),
    and ``clients.py`` when the generated clients differ. A fresh verdict is remembered by its
    :func:`fingerprint`, and reused (no compile) while nothing it depends on changed."""
    cached = _cache_enabled(use_cache)
    if cached:
        try:
            if FRESH_CACHE.read_text().strip() == fingerprint():
                return []
        except OSError:
            pass
    compiled = _compile_all()
    fresh = {a.name: a for a in compiled}
    stale = [n for n, a in fresh.items() if not a.path.exists() or a.path.read_text() != a.dumps()]
    stale += [p.stem for p in ARTIFACTS_DIR.glob("*.json") if p.stem not in fresh]
    if not CLIENTS_PATH.exists() or CLIENTS_PATH.read_text() != render_clients(compiled):
        stale.append("clients.py")
    if cached and not stale:
        _remember_fresh()
    return sorted(stale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if any artifact is stale")
    parser.add_argument(
        "--no-cache", action="store_true", help="always compile (ignore a remembered verdict)"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_artifacts(use_cache=not args.no_cache)
        if stale:
            print(f"stale artifacts: {', '.join(stale)}; run `make artifacts` and commit them")
            return 1
        print("artifacts are fresh")
        return 0
    for path in write_artifacts():
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
