"""python -m playground."""

from __future__ import annotations

from playground._cli import main

raise SystemExit(main())
