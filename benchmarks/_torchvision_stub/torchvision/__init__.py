"""A stand-in for `torchvision`, only what Lucent imports (benchmarks/featviz.py).

Lucent's `optvis.transform` imports `torchvision.transforms.Normalize` at module
level and uses it only for `render_vis(preprocess=True)`, which the benchmark
switches off; installing torchvision itself would pull a second, CUDA-sized
torch build. `benchmarks/featviz.py` puts this folder first on `sys.path`.
"""

__version__ = "0.0.0+stub"
