"""``python -m hwmodel.aot``: :func:`hwmodel.aot.build.main`."""

from .build import main

raise SystemExit(main())
