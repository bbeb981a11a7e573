"""Generate docs/API.md, the API reference, from the docstrings of pyloop's public names.

    python tools/gen_api_docs.py            # (re)write docs/API.md
    python tools/gen_api_docs.py --check    # exit 1 if docs/API.md is not what this would write

What is documented: for each module in MODULES, every name in its ``__all__`` (the module's own
promise of what is public), in ``__all__`` order; for a public class, its public methods and
properties that pyloop defines (members inherited from asyncio's base classes are asyncio's
documentation, not ours), in alphabetical order.  A method without a docstring of its own shows
the docstring of the asyncio method it implements (``inspect.getdoc`` looks it up).

A module that does not exist yet in this checkout (the toolbox modules are being written) gets
a one-line note instead of a section; once it exists, the next run documents it, and
tests/integration/test_docs.py fails until the file is regenerated.

The output must not depend on the machine: memory addresses in reprs of default values are
dropped, and nothing time- or path-dependent is written.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import inspect
import os
import re
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, 'docs', 'API.md')
MODULES = ['pyloop', 'pyloop.task', 'pyloop.time', 'pyloop.sync', 'pyloop.fs', 'pyloop.net',
           'pyloop.serving']
REGENERATE = 'python tools/gen_api_docs.py'

_ADDRESS = re.compile(r' at 0x[0-9a-fA-F]+')
_FORWARD_REF = re.compile(r"ForwardRef\('([^']+)'\)")


@dataclass
class Entry:
    """One public name of a module."""

    qualname: str                       # 'pyloop.serving.serve'
    kind: str                           # 'class', 'function', 'async function', 'data', ...
    signature: str
    doc: str | None
    members: list['Entry'] = field(default_factory=list)


@dataclass
class Module:
    name: str
    doc: str | None = None
    entries: list[Entry] = field(default_factory=list)
    missing: str | None = None          # why the module is not documented


# ---- collecting ------------------------------------------------------------------------------

class _Annotation:
    """An annotation kept as source text (``from __future__ import annotations``): shown as
    written, not as the repr of a string."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _plain(annotation: Any) -> Any:
    return _Annotation(annotation) if isinstance(annotation, str) else annotation


def _signature(obj: Any) -> str:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return '(...)'
    params = [p.replace(annotation=_plain(p.annotation)) for p in sig.parameters.values()]
    returns = inspect.Signature.empty if inspect.isclass(obj) else _plain(sig.return_annotation)
    sig = sig.replace(parameters=params, return_annotation=returns)
    return _FORWARD_REF.sub(r'\1', _ADDRESS.sub('', str(sig)))


def _type_name(cls: type) -> str:
    if cls.__module__ == 'builtins':
        return cls.__qualname__
    return f'{cls.__module__}.{cls.__qualname__}'


def _kind(obj: Any) -> str:
    if inspect.isclass(obj):
        return 'exception' if issubclass(obj, BaseException) else 'class'
    if inspect.iscoroutinefunction(obj):
        return 'async function'
    if inspect.isasyncgenfunction(obj):
        return 'async generator function'
    if callable(obj):
        return 'function'
    return 'data'


def _defined_in_pyloop(cls: type, name: str) -> bool:
    for klass in cls.__mro__:
        if name in vars(klass):
            return (getattr(klass, '__module__', '') or '').split('.')[0] == 'pyloop'
    return False


def _class_members(cls: type, qualname: str) -> list[Entry]:
    members = []
    for name in sorted(dir(cls)):
        if name.startswith('_') or not _defined_in_pyloop(cls, name):
            continue
        static = inspect.getattr_static(cls, name)
        value = getattr(cls, name, None)
        if isinstance(static, property):
            kind, sig, doc = 'property', '', inspect.getdoc(static)
        elif isinstance(static, (staticmethod, classmethod)) or callable(value):
            func = static.__func__ if isinstance(static, (staticmethod, classmethod)) else value
            kind = ('async method' if inspect.iscoroutinefunction(func)
                    else 'async generator method' if inspect.isasyncgenfunction(func) else 'method')
            if isinstance(static, classmethod):
                kind = 'classmethod'
            elif isinstance(static, staticmethod):
                kind = 'staticmethod'
            sig = _signature(value)
            if kind in ('method', 'async method', 'async generator method'):
                sig = re.sub(r'^\(self(, )?', '(', sig)
            doc = inspect.getdoc(value)
        else:
            # Data attributes (dataclass fields, cdef public attributes) are described by the
            # class docstring; list them without a docstring of their own.
            kind, sig, doc = 'attribute', '', None
        members.append(Entry(f'{qualname}.{name}', kind, sig, doc))
    return members


def collect(name: str) -> Module:
    """Import ``name`` and describe its public names; a missing module is noted, not fatal."""
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:            # the module exists but something it imports does not
            raise
        return Module(name, missing='not part of this checkout yet')
    return describe(module)


def describe(module: ModuleType) -> Module:
    out = Module(module.__name__, doc=inspect.getdoc(module))
    public = getattr(module, '__all__', None)
    if public is None:
        public = [n for n, v in vars(module).items()
                  if not n.startswith('_') and getattr(v, '__module__', None) == module.__name__]
    for name in public:
        obj = getattr(module, name)
        qualname = f'{module.__name__}.{name}'
        if name.startswith('__') and name.endswith('__'):
            # __version__ and the like: a value, not an API with a docstring; the value itself
            # is left out so that a version bump does not make the reference stale.
            out.entries.append(Entry(qualname, 'data', '', None))
            continue
        kind = _kind(obj)
        doc = inspect.getdoc(obj) if kind != 'data' else None
        signature = _signature(obj) if kind != 'data' else ''
        if inspect.isclass(obj) and (signature == '(...)' or issubclass(obj, enum.Enum)):
            # No signature worth showing (a C type, an exception using BaseException's, an
            # enum's functional API): show what it derives from instead, which is what a
            # reader needs to catch, compare or subclass it.
            bases = [b for b in obj.__bases__ if b is not object]
            signature = f'({", ".join(_type_name(b) for b in bases)})' if bases else ''
        entry = Entry(qualname, kind, signature, doc)
        if inspect.isclass(obj):
            entry.members = _class_members(obj, qualname)
        out.entries.append(entry)
    return out


def missing_docstrings(modules: list[Module]) -> list[str]:
    """Public module-level names (functions, classes) without a docstring of their own."""
    missing = []
    for module in modules:
        if module.missing:
            continue
        if not module.doc:
            missing.append(module.name)
        for entry in module.entries:
            if entry.kind != 'data' and not entry.doc:
                missing.append(entry.qualname)
            for member in entry.members:
                if member.kind not in ('attribute',) and not member.doc:
                    missing.append(member.qualname)
    return missing


# ---- rendering -------------------------------------------------------------------------------

def _anchor(text: str) -> str:
    return re.sub(r'[^a-z0-9_-]', '', text.lower().replace(' ', '-'))


def _first_paragraph(doc: str | None) -> str:
    if not doc:
        return ''
    return _ROLE.sub(r'`\1`', ' '.join(doc.split('\n\n')[0].split()))


_ROLE = re.compile(r':(?:func|class|meth|attr|mod|exc|data|obj):`~?([^`]+)`')
_UNDERLINE = re.compile(r'^([-=~^])\1{2,}$')


def _markdown_text(doc: str) -> list[str]:
    """reST habits of docstrings, in markdown: roles become code, underlined headings become
    level-4 headings (below the ### of the documented name)."""
    src = [_ROLE.sub(r'`\1`', line) for line in doc.splitlines()]
    out: list[str] = []
    for i, line in enumerate(src):
        nxt = src[i + 1] if i + 1 < len(src) else ''
        if (line.strip() and not line.startswith(' ') and _UNDERLINE.match(nxt.strip())
                and len(nxt.strip()) == len(line.strip())):
            out.append(f'#### {line.strip()}')
            continue
        if _UNDERLINE.match(line.strip()) and out and out[-1].startswith('#### '):
            continue
        out.append(line)
    return out


def _doc_block(doc: str | None) -> list[str]:
    """A docstring as markdown: indented blocks (examples) become fenced code."""
    if not doc:
        return ['*(no docstring)*', '']
    lines: list[str] = []
    in_code = False
    for line in _markdown_text(doc):
        indented = line.startswith('    ') or (in_code and not line.strip())
        if indented and not in_code:
            intro = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].strip()), None)
            if intro is not None and lines[intro].endswith('::'):
                lines[intro] = lines[intro][:-1]        # reST's "Example::" becomes "Example:"
            if lines and lines[-1].strip():
                lines.append('')
            lines.append('```python')
            in_code = True
        elif not indented and in_code:
            while lines and not lines[-1].strip():
                lines.pop()
            lines.append('```')
            lines.append('')
            in_code = False
        lines.append(line[4:] if in_code else line)
    if in_code:
        while lines and not lines[-1].strip():
            lines.pop()
        lines.append('```')
    lines.append('')
    return lines


def render(modules: list[Module]) -> str:
    out = ['# pyloop API reference', '',
           f'Generated from the docstrings by `tools/gen_api_docs.py`; do not edit by hand. '
           f'After changing a public name or its docstring, run `{REGENERATE}` '
           f'(`tests/integration/test_docs.py` checks that this file is current).', '']
    for module in modules:
        if module.missing:
            out.append(f'- `{module.name}` — {module.missing}')
        else:
            out.append(f'- [`{module.name}`](#{_anchor(module.name)})')
    out.append('')
    for module in modules:
        if module.missing:
            continue
        out += [f'## {module.name}', '']
        out += _doc_block(module.doc)
        for entry in module.entries:
            out += [f'### {entry.qualname}', '']
            if entry.kind == 'data':
                out += [f'*{entry.kind}*', '']
                continue
            prefix = {'class': 'class ', 'exception': 'class ', 'async function': 'async def ',
                      'async generator function': 'async def '}.get(entry.kind, 'def ')
            out += ['```python', f'{prefix}{entry.qualname.rsplit(".", 1)[1]}{entry.signature}',
                    '```', '']
            out += _doc_block(entry.doc)
            if entry.members:
                out += ['| member | kind | summary |', '| --- | --- | --- |']
                for m in entry.members:
                    short = m.qualname.rsplit('.', 1)[1]
                    sig = m.signature if m.kind not in ('property', 'attribute') else ''
                    summary = _first_paragraph(m.doc).replace('|', '\\|')
                    out.append(f'| `{short}{sig}` | {m.kind} | {summary} |'.replace('`|', '`\\|'))
                out.append('')
    return '\n'.join(out).rstrip() + '\n'


def generate() -> tuple[str, list[Module]]:
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    modules = [collect(name) for name in MODULES]
    return render(modules), modules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--check', action='store_true',
                        help='exit 1 if the file is out of date instead of writing it')
    parser.add_argument('--output', default=OUTPUT, help='where to write (default docs/API.md)')
    args = parser.parse_args(argv)
    text, modules = generate()
    if args.check:
        try:
            with open(args.output, encoding='utf-8') as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current != text:
            print(f'{args.output} is out of date; run: {REGENERATE}', file=sys.stderr)
            return 1
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, 'w', encoding='utf-8') as f:
        f.write(text)
    missing = missing_docstrings(modules)
    documented = sum(len(m.entries) for m in modules if not m.missing)
    print(f'wrote {args.output}: {documented} public names in '
          f'{sum(not m.missing for m in modules)} modules'
          + (f'; without a docstring: {", ".join(missing)}' if missing else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
