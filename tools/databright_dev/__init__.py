"""Development tools of a DataBright source checkout: not part of the installed package.

``build`` compiles the Vyper contracts into the committed artifacts and typed clients (it needs
the ``dev`` extra's vyper); ``anvil`` launches the npm-installed anvil for tests and benchmarks.
Tests find this package through pytest's ``pythonpath``; scripts add ``tools/`` to ``sys.path``.
"""
