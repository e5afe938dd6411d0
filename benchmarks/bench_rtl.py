"""RTL benchmarks: pysim cycles per second of each unit's testbench (``hwmodel rtl sim``).

Run: ``python benchmarks/bench_rtl.py``. Prints one line per unit: cycles, wall seconds
(elaboration included) and simulated cycles per second.
"""

import time

from hwmodel.cli.rtl import UNITS, _scenario


def main() -> None:
    for unit in UNITS:
        start = time.perf_counter()
        agree, cycles, transactions = _scenario(unit, None)
        seconds = time.perf_counter() - start
        print(f"{unit:<10} {transactions:>5} transactions {cycles:>6} cycles {seconds:6.2f} s "
              f"{cycles / seconds:>9,.0f} cycles/s  RTL==reference: {agree}")


if __name__ == "__main__":
    main()
