"""The container: the zip archive (reader with safety limits, atomic writer) and the manifest schema.
"""
