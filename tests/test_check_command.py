"""``python -m minnet check FILE``: every Layer subclass of the file gets a line; a missing or
misspelled backward fails, a base class that needs what its subclasses define is skipped, and
the exit code is 1 exactly when a layer does not pass. The files are generated: random mixes
of right layers, wrong ones, misspellings and helper bases."""

from __future__ import annotations

import contextlib
import io
import random
import textwrap

import pytest

from minnet.testing import check_file, main_check

SQUARE = """
class {{name}}({{base}}):
    def forward(self, x):
        self.x = x
        return x ** 2

    def {method}(self, g):
        return {factor} * self.x * g
"""
RIGHT = SQUARE.format(method="backward", factor=2)
WRONG = SQUARE.format(method="backward", factor=3)
MISSPELLED = SQUARE.format(method="{typo}", factor=2)
NO_BACKWARD = """
class {name}({base}):
    def forward(self, x):
        return x ** 2
"""
# Helper bases: forward (and backward) call methods the subclasses give.
BASE_ATTRIBUTE = """
class {name}({base}):
    def forward(self, x):
        self.x = x
        return self.f(x)

    def backward(self, g):
        return g * self.df(self.x)
"""
BASE_NOT_IMPLEMENTED = """
class {name}({base}):
    def forward(self, x):
        self.x = x
        return self.f(x)

    def backward(self, g):
        return g * self.df(self.x)

    def f(self, x):
        raise NotImplementedError

    def df(self, x):
        raise NotImplementedError
"""
BASE_ABSTRACT_FORWARD = """
class {name}({base}):
    def forward(self, x):
        raise NotImplementedError("subclasses compute forward")

    def backward(self, g):
        return g * self.df(self.x)
"""
CUBE_CHILD = """
class {name}({base}):
    def forward(self, x):
        self.x = x
        return x ** 3

    def f(self, x):
        return x ** 3

    def df(self, x):
        return {factor} * x ** 2
"""
TYPOS = ["backwards", "Backward", "backword", "bakward", "backward_pass"]


def _write_file(rng: random.Random, tmp_path) -> tuple[str, dict[str, str]]:
    """A file of random layers and the status each must get."""
    parts, expected = ["import numpy as np", "import minnet"], {}
    for i in range(rng.randint(1, 6)):
        kind = rng.choice(["right", "wrong", "misspelled", "none", "base"])
        name = f"L{i}{kind.title()}"
        if kind == "right":
            parts.append(RIGHT.format(name=name, base="minnet.Layer"))
            expected[name] = "passed"
        elif kind == "wrong":
            parts.append(WRONG.format(name=name, base="minnet.Layer"))
            expected[name] = "failed"
        elif kind == "misspelled":
            parts.append(MISSPELLED.format(name=name, base="minnet.Layer", typo=rng.choice(TYPOS)))
            expected[name] = "failed"
        elif kind == "none":
            parts.append(NO_BACKWARD.format(name=name, base="minnet.Layer"))
            expected[name] = "failed"
        else:
            template = rng.choice([BASE_ATTRIBUTE, BASE_NOT_IMPLEMENTED, BASE_ABSTRACT_FORWARD])
            parts.append(template.format(name=name, base="minnet.Layer"))
            expected[name] = "skipped"
            for j in range(rng.randint(1, 2)):
                right = rng.random() < 0.6
                child = f"{name}Child{j}"
                parts.append(CUBE_CHILD.format(name=child, base=name, factor=3 if right else 2))
                expected[child] = "passed" if right else "failed"
    path = tmp_path / f"layers_{rng.random():.6f}.py"
    path.write_text("\n".join(parts))
    return str(path), expected


@pytest.mark.parametrize("seed", range(12))
def test_every_layer_gets_a_line_and_the_exit_code_says_whether_one_does_not_pass(seed, tmp_path):
    rng = random.Random(seed)
    path, expected = _write_file(rng, tmp_path)
    results = check_file(path, fast=True)
    assert [r.name for r in results] == list(expected)
    assert {r.name: r.status for r in results} == expected
    for result in results:
        if result.status == "skipped":
            assert result.detail.startswith("base class:")
        if result.name.endswith(("Misspelled", "None")):
            assert "does not define backward(grad_output)" in result.detail
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main_check(path, fast=True)
    assert code == (0 if set(expected.values()) <= {"passed", "skipped"} else 1)
    lines = [line for line in out.getvalue().splitlines()[: len(expected)]]
    assert [line.split()[:2] for line in lines] == [
        [name, status.upper()] for name, status in expected.items()
    ]


@pytest.mark.parametrize("typo", TYPOS)
def test_a_misspelled_backward_is_named(typo, tmp_path):
    path = tmp_path / "typo.py"
    path.write_text(
        "import minnet\n" + MISSPELLED.format(name="Square", base="minnet.Layer", typo=typo)
    )
    (result,) = check_file(path)
    assert result.status == "failed"
    assert result.detail == (
        f"Square does not define backward(grad_output): it defines {typo!r}; did you mean "
        "'backward'?"
    )


def test_a_layer_without_forward_that_nothing_builds_on_fails(tmp_path):
    path = tmp_path / "noforward.py"
    source = """
        import minnet
        class Mixin(minnet.Layer):
            def describe(self):
                return "helper"
        class Double(Mixin):
            def forward(self, x):
                return 2 * x
            def backward(self, g):
                return 2 * g
        class Forgot(minnet.Layer):
            def forwad(self, x):
                return 2 * x
            def backward(self, g):
                return 2 * g
        """
    path.write_text(textwrap.dedent(source))
    results = {r.name: (r.status, r.detail) for r in check_file(path)}
    assert set(results) == {"Double", "Forgot"}  # Mixin: a base without forward, no line
    assert results["Double"][0] == "passed"
    assert results["Forgot"] == (
        "failed",
        "Forgot does not define forward(x): it defines 'forwad'; did you mean 'forward'?",
    )


def test_a_subclassed_layer_that_runs_on_its_own_is_checked_not_skipped(tmp_path):
    path = tmp_path / "concrete_base.py"
    path.write_text(
        "import minnet\n"
        + WRONG.format(name="Base", base="minnet.Layer")
        + RIGHT.format(name="Child", base="Base")
    )
    assert {r.name: r.status for r in check_file(path)} == {"Base": "failed", "Child": "passed"}
