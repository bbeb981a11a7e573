"""Generate docs/API.md, the API reference, from the docstrings of pyloop's public names.

    python tools/gen_api_docs.py            # (re)write docs/API.md
    python tools/gen_api_docs.py --check    # exit 1 if docs/API.md is not what this would write

What is documented: for each module in MODULES, every name in its ``__all__`` (the module's own
promise of what is public), in ``__all__`` order; for a public class, its public methods and
properties that pyloop defines (members inherited from asyncio's base classes are asyncio's
documentation, not ours), in alphabetical order.  A method without a docstring of its own shows
the docstring of the asyncio method it implements (``inspect.getdoc`` looks it up).

Signatures come from ``inspect.signature``; where it has none (functions and methods compiled by
Cython), from the type stub next to the compiled module (``_channels.pyi`` for
``_channels.*.so``), following the stub's base classes.  Every attribute and property gets a
summary: its own docstring, else an attribute docstring in the class's source (a string right
after ``name: type``), else the class docstring's bullet for it (``* ``NAME``: ...``), else the
stub's docstring, else ATTRIBUTE_DOCS below (for attributes of compiled classes, which cannot
carry a docstring without a change to their Cython source).  A toolbox module listed in the
``pyloop`` package's ``__all__`` is shown as a link to its own section.

A module that does not exist yet in this checkout (the toolbox modules are being written) gets
a one-line note instead of a section; once it exists, the next run documents it, and
tests/integration/test_docs.py fails until the file is regenerated.

The output must not depend on the machine: memory addresses in reprs of default values are
dropped, and nothing time- or path-dependent is written.
"""

from __future__ import annotations

import argparse
import ast
import enum
import functools
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
           'pyloop.serving', 'pyloop.gunicorn', 'pyloop.monitor', 'pyloop.monitor.prometheus',
           'pyloop.pytest_plugin']
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


def _signature(obj: Any, owner: type | None = None) -> str:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return _stub_signature(obj, owner) or '(...)'
    params = [p.replace(annotation=_plain(p.annotation)) for p in sig.parameters.values()]
    returns = inspect.Signature.empty if inspect.isclass(obj) else _plain(sig.return_annotation)
    sig = sig.replace(parameters=params, return_annotation=returns)
    return _FORWARD_REF.sub(r'\1', _ADDRESS.sub('', str(sig)))


# ---- type stubs: the signatures of compiled (Cython) functions ---------------------------------

@functools.cache
def _stub(module_name: str) -> dict[str, ast.AST]:
    """The top-level definitions of a module's ``.pyi`` stub, by name ({} if none).

    The stub is looked up in this checkout first (``pyloop/sync/_channels.pyi`` for
    ``pyloop.sync._channels``): an editable install serves the compiled module from its own
    build directory, where no stub lies beside it.  Then beside the module's file."""
    candidates = [os.path.join(ROOT, *module_name.split('.')) + '.pyi']
    path = getattr(sys.modules.get(module_name), '__file__', None)
    if path:
        candidates.append(os.path.join(os.path.dirname(path), os.path.basename(path).split('.')[0] + '.pyi'))
    stub = next((c for c in candidates if os.path.exists(c)), None)
    if stub is None:
        return {}
    with open(stub, encoding='utf-8') as f:
        tree = ast.parse(f.read(), stub)
    return {node.name: node for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def _stub_member(module_name: str, class_name: str, name: str) -> ast.AST | None:
    """``class_name.name`` in the stub, looked up through the stub's own base classes."""
    defs = _stub(module_name)
    cls = defs.get(class_name)
    if not isinstance(cls, ast.ClassDef):
        return None
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return node
    for base in cls.bases:
        base = base.value if isinstance(base, ast.Subscript) else base     # _SenderBase[_T]
        if isinstance(base, ast.Name) and base.id in defs:
            found = _stub_member(module_name, base.id, name)
            if found is not None:
                return found
    return None


def _stub_def(obj: Any, owner: type | None) -> ast.AST | None:
    name = getattr(obj, '__name__', None)
    if name is None:
        return None
    if owner is not None:       # the documented class, then the runtime class defining it
        for klass in owner.__mro__:
            found = _stub_member(klass.__module__, klass.__name__, name)
            if found is not None:
                return found
        return None
    node = _stub(getattr(obj, '__module__', '') or '').get(name)
    return node if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None


def _stub_signature(obj: Any, owner: type | None) -> str | None:
    node = _stub_def(obj, owner)
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    text = f'({ast.unparse(node.args)})'
    if node.returns is not None:
        text += f' -> {ast.unparse(node.returns)}'
    return text


def _type_name(cls: type) -> str:
    if cls.__module__ == 'builtins':
        return cls.__qualname__
    return f'{cls.__module__}.{cls.__qualname__}'


def _kind(obj: Any) -> str:
    if inspect.ismodule(obj):
        return 'module'
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
            kind, sig, doc = 'property', '', inspect.getdoc(static) or _attribute_doc(cls, name)
        elif isinstance(static, (staticmethod, classmethod)) or callable(value):
            func = static.__func__ if isinstance(static, (staticmethod, classmethod)) else value
            kind = ('async method' if inspect.iscoroutinefunction(func)
                    else 'async generator method' if inspect.isasyncgenfunction(func) else 'method')
            if isinstance(static, classmethod):
                kind = 'classmethod'
            elif isinstance(static, staticmethod):
                kind = 'staticmethod'
            sig = _signature(value, cls)
            if kind in ('method', 'async method', 'async generator method'):
                sig = re.sub(r'^\(self(, )?', '(', sig)
            doc = inspect.getdoc(value)
        else:
            # Data attributes: dataclass and NamedTuple fields, enum members, Cython attributes.
            kind, sig, doc = 'attribute', '', _attribute_doc(cls, name)
        members.append(Entry(f'{qualname}.{name}', kind, sig, doc))
    return members


# Summaries of attributes that cannot carry a docstring of their own in the code today: attributes
# and properties of Cython classes without one in their .pyx (move the text there when that file
# is next edited, and drop it here), and slot attributes.  Keyed by module, then attribute name.
ATTRIBUTE_DOCS: dict[str, dict[str, str]] = {
    'pyloop': {
        'slow_callback_duration': 'Seconds a callback may run before debug mode logs it as slow '
                                  '(asyncio\'s attribute; default 0.1).',
    },
    'pyloop.time': {
        'missed_tick': 'The `MissedTick` policy for ticks that were missed; may be changed between '
                       'ticks.',
    },
    'pyloop.sync': {
        'capacity': 'How many values the channel buffers (None on the receiver of an unbounded '
                    'channel).',
        'closed': 'True once this end was closed (``close()``, or leaving ``async with``); '
                  '``is_closed()`` also says whether the other end is closed.',
        'receiver_count': 'How many receivers are subscribed now.',
    },
}


def _owner_module(cls: type) -> str:
    """The public module that documents ``cls`` (``pyloop.sync`` for ``pyloop.sync._channels``)."""
    parts = cls.__module__.split('.')
    public = [p for p in parts if not p.startswith('_')]
    return '.'.join(public)


def _source_attribute_docs(cls: type) -> dict[str, str]:
    """PEP 257 attribute docstrings in the class's source: ``name: type`` then a string."""
    try:
        tree = ast.parse(inspect.cleandoc('\n' + inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for first, second in zip(body, body[1:]):
        target = (first.target if isinstance(first, ast.AnnAssign)
                  else first.targets[0] if isinstance(first, ast.Assign) and len(first.targets) == 1
                  else None)
        if (isinstance(target, ast.Name) and isinstance(second, ast.Expr)
                and isinstance(second.value, ast.Constant) and isinstance(second.value.value, str)):
            docs[target.id] = inspect.cleandoc(second.value.value)
    return docs


def _attribute_doc(cls: type, name: str) -> str | None:
    static = inspect.getattr_static(cls, name, None)
    if type(static).__name__ in ('getset_descriptor', 'member_descriptor') and static.__doc__:
        return inspect.cleandoc(static.__doc__)
    for klass in cls.__mro__:
        if name in vars(klass):
            found = _source_attribute_docs(klass).get(name)
            if found:
                return found
    bullet = re.search(rf'^\s*[*-] ``{re.escape(name)}``:?\s*(.+?)(?=^\s*[*-] ``|\Z|^\s*$)',
                       inspect.getdoc(cls) or '', flags=re.M | re.S)
    if bullet:
        return ' '.join(bullet.group(1).split())
    node = _stub_member(cls.__module__, cls.__name__, name)
    if node is not None and ast.get_docstring(node):
        return ast.get_docstring(node)
    module = _owner_module(cls)
    while module:
        if name in ATTRIBUTE_DOCS.get(module, {}):
            return ATTRIBUTE_DOCS[module][name]
        module = module.rpartition('.')[0]
    return None


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
        if inspect.ismodule(obj):
            out.entries.append(Entry(qualname, 'module', '', inspect.getdoc(obj)))
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
                if not member.doc:
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
    in_doctest = False      # a ``>>>`` session: it runs to the next blank line
    for line in _markdown_text(doc):
        if in_doctest:
            if line.strip():
                lines.append(line)
                continue
            lines += ['```']
            in_doctest = False
        if not in_code and line.startswith('>>>'):
            if lines and lines[-1].strip():
                lines.append('')
            lines += ['```pycon', line]
            in_doctest = True
            continue
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
    if in_doctest:
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
            if entry.kind == 'module':
                target = (f'[`{entry.qualname}`](#{_anchor(entry.qualname)})'
                          if entry.qualname in MODULES else f'`{entry.qualname}`')
                out += [f'*module*, imported on first use: {target}. {_first_paragraph(entry.doc)}',
                        '']
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
