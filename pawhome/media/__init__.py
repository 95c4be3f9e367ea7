"""Media: uploads (direct, chunked, instant), processing into served variants, and the checks
other domains make before attaching media (docs/media.md).
"""
