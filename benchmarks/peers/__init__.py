"""The CAC-2023 pack for the engines facegate is compared with, and their adapters.

One policy file and one adapter per engine, each exposing ``decide(request) -> (effect,
determining)``: ``cac2023.cedar`` + ``cac2023_cedar.py`` (cedarpy), ``cac2023.rego`` +
``cac2023_rego.py`` (regopy), ``cac2023_casbin.conf``/``.csv`` + ``cac2023_casbin.py``
(pycasbin), and ``cac2023_hand.py`` (plain Python, the floor).  ``benchmarks/run.py`` checks
that every one answers like facegate before it times any of them.
"""
