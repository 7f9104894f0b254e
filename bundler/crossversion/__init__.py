"""Cross-version: "if I bundle under scikit-learn X, will it load and predict the same under Y?", by experiment.

One module per job, imports pointing down this list:

- ``cells``: a result (bundled under X, loaded under Y) and its status, silent drift apart from loud failures;
- ``selfwheel``: a wheel of the running bundler, to install into the test environments without a source tree;
- ``environments``: what a test environment gets (the bundle's verified pins, one package changed) and building it
  with binary wheels only;
- ``worker``: what runs inside a test environment (verify, forced load, behaviour findings), one process per bundle;
- ``runner``: verifying the bundles first, then planning, building and running, cell by cell;
- ``reports``: JSON, Markdown and PNG, the silent kind first;
- ``merge``: joining cells written by separate CI jobs;
- ``cli``: the ``bundler matrix`` verb and its exit codes.

Only the standard library, packaging and bundler's own lower layers are imported at module level; matplotlib is
optional (the ``plot`` extra).
"""

__all__: list[str] = []  # a namespace: its modules are the API
