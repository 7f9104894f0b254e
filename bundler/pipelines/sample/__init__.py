"""Stored samples: the input a model was checked on at pack time, and what it gave, kept without pickle.

The behaviour check (``bundler.pipelines.behaviour``) needs the very input the model saw, rebuilt as the same type:
a text pipeline wants a list of str, a ``ColumnTransformer`` a DataFrame with the same dtypes, a sparse model a
sparse matrix of the same format. This package stores such inputs as plain ``.npy`` members and a JSON description,
and reads them back; nothing in it ever unpickles.

Modules: ``storage`` (``.npy`` members and the one-array encodings), ``inputs`` (the input kinds), ``compare``
(what "the same output" means).

Layout, version 2 (the manifest's ``sample`` object; ``format`` is the layout version)::

    sample = {format: 1 | 2, rows, input: INPUT, methods: {METHOD: {outputs: [OUTPUT...]}}, skipped: {METHOD: why},
              tolerance: {rtol, atol, rule}, numpy_version, [pandas_version], [scipy_version]}
    OUTPUT = {member, dtype, shape, compare: "exact" | "allclose"}           # sample/<method>[.<i>].npy
    INPUT  = {kind: "array", rows, member, dtype, shape}                      # a 2-D numpy array (also format 1)
           | {kind: "ndarray", rows, values: V}                               # a 1-D or 2-D numpy array, any dtype
           | {kind: "list" | "tuple", rows, values: V}                        # e.g. a list of str (read back as one)
           | {kind: "series", rows, name, column: C, index: I}                # a pandas Series
           | {kind: "dataframe", rows, columns: [{name, ...C}], index: I}     # a pandas DataFrame
           | {kind: "sparse", rows, format, stored_as, container: "matrix" | "array", shape, parts: {PART: A}}
    V = {encoding: "npy", ...A}                                               # numeric, bool, fixed-width text, dates
      | {encoding: "objects", shape, codes: A, [strings: A, offsets: A], [ints: A], [floats: A]}
    C = {dtype: NAME, values: V}                    # NAME = str(pandas dtype); zoned datetimes stored as UTC
      | {dtype: "category", ordered, codes: A, categories: C}                 # code -1 = missing
    I = {kind: "range", start, stop, step, name} | {kind: "values", name, column: C}
    A = {member: "sample/<stem>.npy", dtype: numpy dtype string, shape}       # np.save(allow_pickle=False)

In the ``objects`` encoding every element has a code (0 str, 1 int, 2 float, 3 bool, 4 None, 5 pandas.NA,
6 pandas.NaT); strings are UTF-8 bytes cut at ``offsets``, integers and booleans are int64, floats float64, each kind
in element order. Sparse parts are ``data, indices, indptr`` (CSR, CSC), ``data, row, col`` (COO); any other format
is stored as CSR and converted back to it. Member stems: ``input``, ``input.col<i>``, ``input.index``, plus
``.codes``, ``.utf8``, ``.offsets``, ``.ints``, ``.floats``, ``.categories``; sparse ``input.<part>``.

Format 1 (bundlers before this layout) is read as it was: ``array`` as above, and ``dataframe`` as one ``.npy`` per
column with a ``pandas_dtype``. A 2-D numpy array is still written as format 1, so older bundlers can check it.
"""

__all__: list[str] = []  # a namespace: its modules are the API
