"""No installed distribution may be GPL-licensed: DealerCare is Apache-2.0 and ships as one image."""
from __future__ import annotations

import importlib.metadata
import re

_GPL = re.compile(r"GPL|General Public Licen[cs]e", re.IGNORECASE)
_NOT_GPL = re.compile(r"LGPL|Lesser|Library General Public", re.IGNORECASE)
# Exceptions that lift the copyleft from the combined work (e.g. libgfortran inside scipy wheels).
_LINKING_EXCEPTION = re.compile(r"GCC-exception|Runtime Library Exception|Classpath-exception", re.IGNORECASE)


def _is_gpl_term(term: str) -> bool:
    return bool(_GPL.search(term)) and not _NOT_GPL.search(term) and not _LINKING_EXCEPTION.search(term)


def _is_gpl_expression(expression: str) -> bool:
    """True when every alternative of an SPDX-like expression ("MIT OR GPL-2.0") includes a GPL term."""
    alternatives = re.split(r"\s+OR\s+", expression.replace("(", " ").replace(")", " "), flags=re.IGNORECASE)
    return all(
        any(_is_gpl_term(term) for term in re.split(r"\s+AND\s+", alternative, flags=re.IGNORECASE))
        for alternative in alternatives
        if alternative.strip()
    )


def _license_field(value: str) -> str:
    # Some projects put the whole licence text in License (scipy: BSD text, then the notices of
    # bundled libraries); its first non-empty line names the project's own licence.
    lines = [line.strip() for line in value.splitlines() if line.strip()]
    return lines[0] if lines else ""


def gpl_reasons(dist: importlib.metadata.Distribution) -> list[str]:
    """Returns why the distribution counts as GPL-licensed, or nothing."""
    meta = dist.metadata
    reasons = []
    expression = meta.get("License-Expression") or ""
    if expression and _is_gpl_expression(expression):
        reasons.append(f"License-Expression: {expression}")
    license_field = _license_field(meta.get("License") or "")
    if license_field and _is_gpl_expression(license_field):
        reasons.append(f"License: {license_field[:120]}")
    for classifier in meta.get_all("Classifier") or []:
        if classifier.startswith("License ::") and _is_gpl_term(classifier):
            reasons.append(f"Classifier: {classifier}")
    return reasons


def test_no_installed_distribution_is_gpl_licensed() -> None:
    offenders: dict[str, list[str]] = {}
    weak_copyleft: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = f"{dist.metadata['Name']} {dist.version}"
        reasons = gpl_reasons(dist)
        if reasons:
            offenders[name] = reasons
        declared = " ".join([dist.metadata.get("License-Expression") or "", _license_field(dist.metadata.get("License") or "")])
        if _NOT_GPL.search(declared):
            weak_copyleft[name] = declared.strip()

    for name, declared in sorted(weak_copyleft.items()):
        print(f"allowed (LGPL, used unmodified as a library): {name}: {declared}")
    for name, reasons in sorted(offenders.items()):
        print(f"GPL: {name}: {'; '.join(reasons)}")
    assert not offenders, "GPL-licensed distributions installed:\n" + "\n".join(
        f"  {name}: {'; '.join(reasons)}" for name, reasons in sorted(offenders.items())
    )


def test_gpl_detection_tells_gpl_from_lgpl_and_dual_licences() -> None:
    assert _is_gpl_expression("GPL-3.0-or-later")
    assert _is_gpl_expression("AGPL-3.0-only")
    assert _is_gpl_expression("GNU General Public License v2 (GPLv2)")
    assert _is_gpl_expression("MIT AND GPL-2.0-only")
    assert not _is_gpl_expression("LGPL-3.0-only")
    assert not _is_gpl_expression("MIT OR GPL-2.0-or-later")
    assert not _is_gpl_expression("GPL-3.0-or-later WITH GCC-exception-3.1")
    assert not _is_gpl_expression("Apache-2.0")
    assert _is_gpl_term("License :: OSI Approved :: GNU General Public License v3 (GPLv3)")
    assert not _is_gpl_term("License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)")
