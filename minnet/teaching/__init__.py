"""The teaching material, kept apart from the framework: it uses minnet's public API only.

- :mod:`.tutorial`: the gradient-checking tutorial's test case and net, with its two bugs;
- :mod:`.bugs`: a catalogue of real backward mistakes, each a small subclass of a right layer;
- :mod:`.demo`: what ``python -m minnet demo`` shows;
- :mod:`.loops`: convolution and pooling as loops over pixels (CS231n's naive versions), which
  the tests compare minnet's layers with.
"""
