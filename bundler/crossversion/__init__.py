"""Cross-version: build environments with other scikit-learn releases, load bundles there, report the matrix.
"""
