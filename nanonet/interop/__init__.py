"""Bridges to other tools: PyTorch weights (``torch_weights``) and ONNX export (``onnx_export``).

Nothing here imports torch or onnx when nanonet is imported: each function
imports what it needs when called, and says which extra installs it.
"""

from .torch_weights import load_torch_state_dict, to_torch_state_dict

__all__ = ["load_torch_state_dict", "to_torch_state_dict"]
