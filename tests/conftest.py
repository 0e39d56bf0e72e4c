import os
import sys

import torch

# Test helper modules (model_inputs.py, ...) import as top-level modules.
sys.path.insert(0, os.path.dirname(__file__))
# The tests run small tensors: one thread avoids thread contention on shared CI cores.
torch.set_num_threads(1)
