"""What ``python -m minnet demo`` shows: the tutorial's checks through minnet, then more."""

from __future__ import annotations

from .gradcheck import GradcheckReport
from .tutorial import TutorialBCELoss, tutorial_case, tutorial_net

TUTORIAL_SETTINGS = {"epsilon": 1e-7, "threshold": 2e-7}


def tutorial_line(report: GradcheckReport) -> str:
    """The tutorial's one-line verdict."""
    if report.passed:
        return f"Backpropagation is correct! difference = {report.difference}"
    return f"Backpropagation has errors! difference = {report.difference}"


def gradient_check_demo(print_=print) -> None:
    """The tutorial's model checks, then the per-layer and per-parameter diagnosis."""
    X, Y, weights = tutorial_case()

    print_("== 1. The tutorial's check through minnet (epsilon=1e-7, threshold=2e-7) ==")
    buggy = tutorial_net(weights, bugs=True, loss=TutorialBCELoss())
    buggy_report = buggy.gradcheck(X, Y, **TUTORIAL_SETTINGS)
    print_("With the two backward bugs (dW2 doubled, db1 times four):")
    print_("  " + tutorial_line(buggy_report))
    fixed = tutorial_net(weights, loss=TutorialBCELoss())
    print_("Bugs fixed, with the tutorial's cost formula:")
    print_("  " + tutorial_line(fixed.gradcheck(X, Y, **TUTORIAL_SETTINGS)))

    stable = tutorial_net(weights)
    print_("Bugs fixed, with minnet's stable loss (computed from the logits), same epsilon:")
    print_("  " + tutorial_line(stable.gradcheck(X, Y, **TUTORIAL_SETTINGS)))
    print_("  The tutorial's 1.19e-07 is rounding in log(1 - A3), not an error in backprop.")

    print_("\n== 2. Where the bugs are: the model check, parameter by parameter ==")
    print_(str(buggy.gradcheck(X, Y)))

    print_("\n== 3. Each layer on its own, at the input it sees in the net ==")
    x = X
    for i, layer in enumerate(buggy.layers):
        report = layer.gradcheck(x)
        worst = report.worst_parameter
        status = "ok   " if report.passed else "WRONG"
        print_(
            f"  layer {i}: {status} {type(layer).__name__:<17} "
            f"worst {worst} = {report.by_parameter[worst]:.3g}"
        )
        x = layer(x)

    print_("\n== 4. The corrected net with minnet's defaults (adaptive step, threshold 1e-6) ==")
    print_(str(stable.gradcheck(X, Y)))


def main(argv: list[str] | None = None) -> int:
    gradient_check_demo()
    return 0


__all__ = ["gradient_check_demo", "main", "tutorial_line"]
