"""Finding the sky130 liberty file, and telling the user how to get what is missing.

Search order (the first that names a file wins; an explicit path that does not exist is an
error, never silently replaced):

1. ``--liberty PATH`` (``dqt report``, ``dqt flow``);
2. ``$DQT_LIBERTY``;
3. a PDK installed by ``ciel`` or ``volare`` under ``$PDK_ROOT`` (default ``~/.ciel``, then
   ``~/.volare``): the enabled ``sky130A`` tree, else the newest installed version under
   ``ciel/sky130/versions/*`` or ``volare/sky130/versions/*``, file
   ``sky130A/libs.ref/sky130_fd_sc_hd/lib/sky130_fd_sc_hd__tt_025C_1v80.lib``;
4. ``../shared/pdk/sky130_fd_sc_hd__tt_025C_1v80.lib.gz`` beside the checkout.

``DQT_NO_LIBERTY=1`` hides every liberty (what a fresh clone without a PDK sees), except
one given with ``--liberty``. Both ``dqt report`` and ``dqt flow`` use :func:`find_liberty`; without a liberty (or without
OpenSTA) the report's sky130 (or energy) columns are null and :func:`missing_hints` gives the
commands that add what is missing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from golden.formats import DQTValueError

__all__ = ["Liberty", "find_liberty", "missing_hints", "LIBERTY_FILE", "PDK_INSTALL", "STA_INSTALL"]

#: The typical-corner sky130 high-density library every sky130 figure is measured with.
LIBERTY_FILE = "sky130_fd_sc_hd__tt_025C_1v80.lib"
_IN_PDK = Path("sky130A", "libs.ref", "sky130_fd_sc_hd", "lib", LIBERTY_FILE)
_BESIDE_CHECKOUT = Path(__file__).resolve().parents[2] / "shared" / "pdk" / (LIBERTY_FILE + ".gz")

#: What installs the sky130 PDK (ciel, the successor of volare; PDK_ROOT defaults to ~/.ciel).
PDK_INSTALL = ("python3 -m pip install ciel && ciel enable --pdk-family=sky130 "
               "$(ciel ls-remote --pdk-family=sky130 | head -n 1)")
#: What installs OpenSTA on Debian and Ubuntu.
STA_INSTALL = "sudo apt-get install opensta"


@dataclass(frozen=True)
class Liberty:
    """A liberty file and where it was found (``--liberty``, ``$DQT_LIBERTY``, ``$PDK_ROOT``,
    ``~/.ciel``, ``~/.volare`` or ``../shared/pdk``)."""

    path: Path
    source: str


def _pdk_roots():
    env = os.environ.get("PDK_ROOT")
    if env:
        return [(Path(env), "$PDK_ROOT")]
    home = Path.home()
    return [(home / ".ciel", "~/.ciel"), (home / ".volare", "~/.volare")]


def _in_pdk_root(root: Path):
    cand = root / _IN_PDK
    if cand.is_file():
        return cand
    versions = []
    for manager in ("ciel", "volare"):
        versions += [p for p in (root / manager / "sky130" / "versions").glob(f"*/{_IN_PDK}")
                     if p.is_file()]
    return max(versions, key=lambda p: p.stat().st_mtime) if versions else None


def find_liberty(explicit=None) -> Liberty | None:
    """The liberty to use (module docstring for the order), or None when there is none.
    Raises :class:`DQTValueError` when ``explicit`` or ``$DQT_LIBERTY`` names a missing file."""
    hidden = bool(os.environ.get("DQT_NO_LIBERTY"))  # what a fresh clone without a PDK sees
    for value, source in ((explicit, "--liberty"), (os.environ.get("DQT_LIBERTY"), "$DQT_LIBERTY")):
        if value and not (hidden and source != "--liberty"):
            p = Path(value)
            if not p.is_file():
                raise DQTValueError(f"{source} {str(p)!r}: no such liberty file (give a .lib or "
                                    ".lib.gz" + (", or unset DQT_LIBERTY)" if source[0] == "$" else ")"))
            return Liberty(p, source)
    if hidden:
        return None
    for root, source in _pdk_roots():
        p = _in_pdk_root(root)
        if p is not None:
            return Liberty(p, source)
    if _BESIDE_CHECKOUT.is_file():
        return Liberty(_BESIDE_CHECKOUT, "../shared/pdk")
    return None


def missing_hints(liberty: Liberty | None, sta_found: bool) -> list[str]:
    """One line per missing piece: what stays empty and the command that adds it."""
    out = []
    if liberty is None:
        where = os.environ.get("PDK_ROOT") or "~/.ciel"
        out.append(f"no sky130 liberty ({LIBERTY_FILE} not under --liberty, $DQT_LIBERTY, "
                   f"{where}): sky130 area, timing and activity-based energy are empty; "
                   f"install the PDK with: {PDK_INSTALL}")
    if not sta_found:
        out.append(f"sta not found (OpenSTA): timing and activity-based energy are empty; "
                   f"install it with: {STA_INSTALL}")
    return out
