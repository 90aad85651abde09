"""The tutorial's 1-D gradient check, J(theta) = theta * x, as one call of minnet.check_function.

Run: python examples/gradient_check_1d.py
"""

from minnet import check_function


def forward_propagation(x, theta):
    """J(theta) = theta * x."""
    return theta * x


def backward_propagation(x, theta):
    """dJ/dtheta = x."""
    return x


def main():
    x, theta = 2, 4
    report = check_function(
        lambda t: forward_propagation(x, t),
        theta,
        backward_propagation(x, theta),
        epsilon=1e-7,  # the tutorial's step and threshold
        threshold=1e-7,
    )
    print("Gradient is correct!" if report.passed else "Gradient is incorrect!")
    print("difference = " + str(report.difference))
    return report


if __name__ == "__main__":
    main()
