"""The latency comparison harness: nvenc_gpu_cffi against nvenc_gpu_pyav, on the NVENC emulator too.

The measurement is ``rfb.benchmark.nvenc_latency``'s. ``engine.py`` chooses what the
routes encode with (real NVENC, else the NVENC emulator on a real GPU, else nothing),
``harness.py`` measures in a fresh process (the dynamic
loader reads ``LD_LIBRARY_PATH`` only at process start), ``report.py`` turns results
into the terminal table and the JSON file. See docs/performance.md.
"""
