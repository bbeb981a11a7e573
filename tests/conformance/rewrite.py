"""Recompile a CPython test method with small textual replacements.

Used by adaptations that must change one statement inside a test (a private
attribute read, say) while keeping the rest of CPython's test verbatim.
"""

import inspect


class AdaptationError(Exception):
    """An adaptation no longer matches CPython's test source."""


def defining_class(cls, name):
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass
    raise AdaptationError(f"{cls.__name__} has no attribute {name!r}")


def rewrite_method(cls, name, replacements, extra_globals=None):
    """Recompile CPython's method `name` (as found in cls's MRO) with textual
    replacements, and install it on `cls`.

    Each (old, new) pair must match at least once, so an adaptation fails
    loudly (the test errors with AdaptationError) instead of silently doing
    nothing when CPython's test changes.  The function is compiled in its
    module's globals and with a ``__class__`` cell of the class that defined
    it, so zero-argument super() inside it behaves as in the original.
    `extra_globals` are names the replacement code needs; the function then
    gets a copy of its module's globals with them added.
    """
    owner = defining_class(cls, name)
    func = vars(owner)[name]
    if isinstance(func, (staticmethod, classmethod)):
        func = func.__func__
    # Replace in the source exactly as it is in the file, so replacement
    # texts can be copied from it verbatim.  The source is not re-indented:
    # a method is indented already, which is all a body of the wrapper below
    # needs, and re-indenting would change multi-line string literals.
    src = inspect.getsource(func)
    for old, new in replacements:
        if old not in src:
            raise AdaptationError(
                f"{owner.__qualname__}.{name}: expected text not found: {old!r}")
        src = src.replace(old, new)
    indent = src[:len(src) - len(src.lstrip(" "))]
    if not indent:
        raise AdaptationError(f"{name}: not a method (no indentation)")
    # Compile as a closure over __class__ (what the compiler gives methods
    # defined in a class body); line numbers are kept for tracebacks.
    # co_firstlineno is the line of the first decorator, where getsource
    # starts too.
    lineno = func.__code__.co_firstlineno
    wrapper = ("def __conformance_factory(__class__):\n" + src.rstrip("\n")
               + f"\n{indent}return {name}\n")
    wrapper = "\n" * max(lineno - 2, 0) + wrapper
    code = compile(wrapper, inspect.getsourcefile(func) + " (adapted)", "exec")
    module_globals = func.__globals__
    if extra_globals:
        module_globals = dict(module_globals, **extra_globals)
    local_ns = {}
    exec(code, module_globals, local_ns)
    new = local_ns["__conformance_factory"](owner)
    try:
        new.__qualname__ = f"{cls.__qualname__}.{name}"
    except AttributeError:
        pass
    setattr(cls, name, new)
    return new
