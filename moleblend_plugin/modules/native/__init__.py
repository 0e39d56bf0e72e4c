"""C kernels for CPUs, compiled on first use with the system's C compiler and called
through ctypes; every caller keeps its PyTorch form for when they are not available."""
