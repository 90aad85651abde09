"""The tutorial's multi-dimensional gradient check, reproduced with minnet, then improved.

The tutorial's net (LINEAR -> RELU -> LINEAR -> RELU -> LINEAR -> SIGMOID) has two bugs in its
backward pass: dW2 doubled and db1 times four. ``minnet.teaching.tutorial`` rebuilds its test case
(``np.random.seed(1)``, batch-first) and puts the bugs into a ``Linear`` subclass.

Run: python examples/gradient_check_nd.py
"""

from minnet.teaching.demo import gradient_check_demo

if __name__ == "__main__":
    gradient_check_demo()
