"""The example banks: labelled patient messages in YAML that the clinic can read and extend.

A bank file names its group and, per label, what the label means and its examples. Loading checks every
entry and fails with the file and line of the first bad one, so a typo stops start-up instead of quietly
teaching the model something wrong.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

BANKS_DIR = Path(__file__).parent / "banks"
GROUPS = ("emergency", "crisis", "not_emergency", "guard", "intent", "fact", "question", "qtype")
MIN_CHARS, MAX_CHARS = 2, 400


class BankError(ValueError):
    """A bank file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Example:
    """One labelled message, with where it was written."""

    text: str
    label: str  # "<group>.<label>", e.g. "emergency.cauda_equina"
    file: str
    line: int

    @property
    def group(self) -> str:
        """The label's group ("emergency", "guard", ...)."""
        return self.label.split(".", 1)[0]


@dataclass(frozen=True)
class Banks:
    """Every example of every bank, and a fingerprint of their content (for caches)."""

    examples: tuple[Example, ...]
    meanings: dict[str, str]
    fingerprint: str

    def of(self, *groups: str) -> list[Example]:
        """The examples of these groups."""
        return [e for e in self.examples if e.group in groups]


def _fail(path: Path, node: yaml.Node | None, why: str) -> BankError:
    line = node.start_mark.line + 1 if node is not None else 1
    return BankError(f"{path}:{line}: {why}")


def _get(mapping: yaml.MappingNode, key: str) -> yaml.Node | None:
    return next((v for k, v in mapping.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)


def load_file(path: Path) -> tuple[list[Example], dict[str, str]]:
    """The examples of one bank file; BankError with file:line for anything malformed."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BankError(f"{path}:{mark.line + 1 if mark else 1}: not valid YAML ({exc})") from exc
    if not isinstance(root, yaml.MappingNode):
        raise _fail(path, root, "a bank is a mapping with 'group' and 'labels'")
    group_node = _get(root, "group")
    if not isinstance(group_node, yaml.ScalarNode) or group_node.value not in GROUPS:
        raise _fail(path, group_node or root, f"'group' must be one of {', '.join(GROUPS)}")
    labels = _get(root, "labels")
    if not isinstance(labels, yaml.MappingNode) or not labels.value:
        raise _fail(path, labels or root, "'labels' must map each label to its 'means' and 'examples'")
    examples: list[Example] = []
    meanings: dict[str, str] = {}
    for key, body in labels.value:
        name = f"{group_node.value}.{key.value}"
        if not isinstance(body, yaml.MappingNode):
            raise _fail(path, body, f"label {key.value!r} needs 'means' and 'examples'")
        means = _get(body, "means")
        meanings[name] = means.value if isinstance(means, yaml.ScalarNode) else ""
        items = _get(body, "examples")
        if not isinstance(items, yaml.SequenceNode) or not items.value:
            raise _fail(path, items or body, f"label {key.value!r} has no examples")
        seen: set[str] = set()
        for item in items.value:
            if not isinstance(item, yaml.ScalarNode):
                raise _fail(path, item, "an example is one quoted message")
            text = " ".join(item.value.split())
            if len(text) < MIN_CHARS:
                raise _fail(path, item, "an empty example")
            if len(text) > MAX_CHARS:
                raise _fail(path, item, f"an example longer than {MAX_CHARS} characters")
            if text.lower() in seen:
                continue  # a repeat teaches nothing; not worth stopping the clinic's bot over
            seen.add(text.lower())
            examples.append(Example(text, name, path.name, item.start_mark.line + 1))
    return examples, meanings


def load_banks(folder: Path = BANKS_DIR) -> Banks:
    """Every *.yaml bank in a folder; an example under two labels is an error naming both places."""
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise BankError(f"{folder}: no example banks (*.yaml) found")
    examples: list[Example] = []
    meanings: dict[str, str] = {}
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
        found, means = load_file(path)
        examples.extend(found)
        meanings.update(means)
    first: dict[tuple[str, str], Example] = {}
    for ex in examples:
        if ex.group == "qtype":  # question types label the same messages along another axis
            continue
        key = ("main", ex.text.lower())
        other = first.setdefault(key, ex)
        if other.label != ex.label:
            raise BankError(f"{path_of(folder, ex)}:{ex.line}: the same example is labelled {other.label} at "
                            f"{other.file}:{other.line}; keep it under one label")
    return Banks(tuple(examples), meanings, digest.hexdigest()[:16])


def path_of(folder: Path, ex: Example) -> Path:
    """Where an example was written."""
    return folder / ex.file
