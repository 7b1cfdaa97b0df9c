"""Analysis over every valid request (z3): ``analyze``, ``prove``; and the impact of a change: ``diff``, ``replay``.

Needs the ``analysis`` extra (``pip install 'facegate[analysis]'``, z3-solver) for ``analyze`` and
``prove``; ``diff`` and ``replay`` work without it.
"""
