"""hwmodel: hardware modelling of wafer-scale GPUs serving Mixture-of-Experts LLMs.

The library has three faces, all built from one component graph:

* Amaranth RTL of the units the study adds to each die (ATU, PDU, command processors),
  with simulation testbenches and Python twins proven equal to them;
* a system model that replays recorded expert-selection traces on a wafer of dies;
* architecture diagrams rendered by Graphviz.
"""

__version__ = "0.1.0"
