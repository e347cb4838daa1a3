"""Attribution methods as function transforms: `method(fn, ...)(x, target)`.

See `interp.attribution._core` for the conventions every method follows.
"""
