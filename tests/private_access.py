"""A mypy plugin (pyproject's ``[tool.mypy] plugins``): no module reads, writes or calls a
private attribute (``_name``) of a class defined in another of our packages.

The rule of tests/test_structure.py (which tests this plugin), seen with mypy's types: it
catches ``x._name`` wherever mypy knows the class of ``x`` (parameters, attributes, return
values, ``self`` in a subclass of another package's class) for fields and properties, method
calls (``x._learn(...)``) and class attributes (``Cls._name``). It cannot see through ``Any``
(an untyped value, ``getattr(x, "_name")``), nor a method taken without being called
(``f = x._m``). Dependencies' private attributes are outside it
(tests/test_dependency_privates.py pins those).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mypy.nodes import Context
from mypy.plugin import AttributeContext, CheckerPluginInterface, MethodContext, Plugin
from mypy.types import CallableType, Instance, Type, get_proper_type

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "protocol", "zones", "cache", "sync", "player", "server", "tools")
SUBPACKAGES = ("tools.cli", "tools.sim", "tools.bench")
# Public API spelled with an underscore: namedtuple's methods and enum's sunder names.
PUBLIC = {"_asdict", "_field_defaults", "_fields", "_make", "_replace"}


def package_of(dotted: str) -> str | None:
    """Our package (``tools.sim`` for the simulator) a dotted name belongs to, if any."""
    for sub in SUBPACKAGES:
        if dotted == sub or dotted.startswith(sub + "."):
            return sub
    top = dotted.split(".")[0]
    return top if top in PACKAGES else None


def module_of(path: str) -> str:
    """``tools/sim/_run.py`` -> ``tools.sim._run`` (relative to the repository)."""
    absolute = Path(path).resolve()
    try:
        parts = absolute.relative_to(ROOT).with_suffix("").parts
    except ValueError:
        parts = Path(path).with_suffix("").parts
    return ".".join(parts)


def watched(fullname: str) -> bool:
    """A private attribute of a class of ours (other plugins' hooks stay theirs elsewhere)."""
    owner, _, name = fullname.rpartition(".")
    if name in PUBLIC or name.startswith("__") or not name.startswith("_"):
        return False
    if name.endswith("_") and len(name) > 2:
        return False  # enum's sunder names (_value_, _missing_)
    return package_of(owner) is not None


def _check(fullname: str, api: CheckerPluginInterface, context: Context) -> None:
    owner, _, name = fullname.rpartition(".")
    _report(owner, name, api, context)


def _report(owner: str, name: str, api: CheckerPluginInterface, context: Context) -> None:
    theirs = package_of(owner)
    ours = package_of(module_of(api.path))
    if ours is not None and ours != theirs:
        api.fail(
            f'"{name}" is private to {theirs} ({owner}): give it a public name there '
            "(no package reaches into another's private attributes)",
            context,
        )


class PrivateAccess(Plugin):
    def get_attribute_hook(self, fullname: str) -> Callable[[AttributeContext], Type] | None:
        return self._attribute_check(fullname)

    def get_class_attribute_hook(self, fullname: str) -> Callable[[AttributeContext], Type] | None:
        return self._attribute_check(fullname)

    def get_method_hook(self, fullname: str) -> Callable[[MethodContext], Type] | None:
        if not watched(fullname):
            return None

        def check(ctx: MethodContext) -> Type:
            # Named after the object's class; the rule is about the class that defines it.
            owner, _, name = fullname.rpartition(".")
            receiver = get_proper_type(ctx.type)
            if isinstance(receiver, CallableType) and receiver.is_type_obj():
                receiver = get_proper_type(receiver.ret_type)  # Cls._m(obj)
            if isinstance(receiver, Instance):
                info = receiver.type.get_containing_type_info(name)
                owner = info.fullname if info is not None else owner
            _report(owner, name, ctx.api, ctx.context)
            return ctx.default_return_type

        return check

    def _attribute_check(self, fullname: str) -> Callable[[AttributeContext], Type] | None:
        if not watched(fullname):
            return None

        def check(ctx: AttributeContext) -> Type:
            _check(fullname, ctx.api, ctx.context)
            return ctx.default_attr_type

        return check


def plugin(version: str) -> type[Plugin]:
    return PrivateAccess
